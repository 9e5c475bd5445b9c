package channel_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim/server"
)

// TestMetricsUsersAttached: over real sockets, an attached IRC user and
// their logged-in account are counted while the session runs, and no
// longer once the bridge has shut it down.
func TestMetricsUsersAttached(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := startStack(t, func(c *channel.Config, _ *server.Server) { c.Metrics = reg })
	login(t, st, "alice")
	login(t, st, "bob")
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"msimircd_users_attached", nil, 2},
		{"msimircd_msim_accounts", []string{"state", "online"}, 2},
		{"msimircd_msim_logins_total", []string{"result", "ok"}, 2},
	} {
		if got := promtest.Value(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v with two users in: got %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.bridge.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
	}{
		{"msimircd_users_attached", nil},
		{"msimircd_msim_accounts", []string{"state", "online"}},
		{"msimircd_msim_accounts", []string{"state", "offline"}},
	} {
		if got := promtest.Value(t, reg, tc.name, tc.labels...); got != 0 {
			t.Errorf("%s%v after shutdown: got %v, want 0", tc.name, tc.labels, got)
		}
	}
}
