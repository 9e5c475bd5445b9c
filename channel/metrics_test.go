package channel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

func TestLoginResult(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&msim.LoginError{Code: 260, Err: msim.ErrBadPassword}, "bad_password"},
		{&msim.LoginError{Code: 259, Err: msim.ErrUnknownAccount}, "unknown_account"},
		{&msim.LoginError{Err: msim.ErrNoUserName}, "no_user_name"},
		{&msim.LoginError{Err: msim.ErrUserNameTaken}, "no_user_name"},
		{&msim.LoginError{Code: 6, Err: msim.ErrLoggedInElsewhere}, "kicked"},
		{&msim.LoginError{Message: "expected lc 2", Err: msim.ErrServer}, "server_error"},
		{fmt.Errorf("msim: login a@b: %w (%w)", context.DeadlineExceeded, errors.New("read")), "timeout"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{fmt.Errorf("msim: dial x: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), "network"},
		{errors.New("EOF"), "network"},
	} {
		if got := loginResult(tc.err); got != tc.want {
			t.Errorf("loginResult(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// metricsRig is a rig whose bridge counts into a registry of its own.
func metricsRig(t *testing.T) (*rig, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	r := newRig(t, func(c *Config) { c.Metrics = reg })
	r.s.mem.met = r.s.b.met // the rig's memory is made without the bridge
	return r, reg
}

// accountsIn returns the accounts gauge by state, failing unless they add
// up to want accounts.
func accountsIn(t *testing.T, reg prometheus.Gatherer, want float64) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	sum := 0.0
	for _, l := range stateLabel {
		got[l] = promtest.Value(t, reg, "msimircd_msim_accounts", "state", l)
		sum += got[l]
	}
	if sum != want {
		t.Fatalf("accounts by state %v add up to %v, want %v", got, sum, want)
	}
	return got
}

// TestMetricsLinkStates: the accounts gauge follows the link through a
// failed login, a retry, a login and a kick, and forgets the account once
// the session lets it go; logins, reconnects and lost links are counted.
func TestMetricsLinkStates(t *testing.T) {
	r, reg := metricsRig(t)
	inState := func(what, state string) {
		t.Helper()
		if got := accountsIn(t, reg, 1); got[state] != 1 {
			t.Fatalf("%s: accounts %v, want the one %s", what, got, state)
		}
	}
	inState("made", "offline")
	r.failDial()
	r.s.start()
	inState("dialling", "connecting")
	r.step()
	inState("after a failed dial", "retrying")
	cl := &fakeMSIM{}
	r.okDial(cl)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	inState("logged in", "online")
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectKicked, Err: errors.New("logged in elsewhere")})
	r.stepUntil("kicked", func() bool { return r.a.state == linkStopped })
	inState("kicked", "stopped")
	r.s.release(r.a, "as you disconnected")
	accountsIn(t, reg, 0)

	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"msimircd_msim_logins_total", []string{"result", "network"}, 1},
		{"msimircd_msim_logins_total", []string{"result", "ok"}, 1},
		{"msimircd_msim_logins_total", []string{"result", "bad_password"}, 0},
		{"msimircd_msim_reconnects_total", nil, 1},
		{"msimircd_msim_links_lost_total", []string{"reason", "kicked"}, 1},
		{"msimircd_msim_links_lost_total", []string{"reason", "network"}, 0},
	} {
		if got := promtest.Value(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v: got %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestMetricsTraffic: IMs, zaps, typing and presence are counted in each
// direction as they cross, and IMs queued, refused, held and dropped as
// each happens, each once.
func TestMetricsTraffic(t *testing.T) {
	r, reg := metricsRig(t)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })

	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hi"})
	r.s.onIRC(ircd.Input{Command: "TAGMSG", Target: "bob", Tags: map[string]string{"+typing": "active"}})
	r.s.onAway("lunch")
	r.s.command(replyCtx{a: r.a, target: r.a.channel}, "zap bob")
	r.stepUntil("the zap sent", func() bool { return len(r.irc.said("Sent bob a zap")) == 1 })
	cl.push(msim.IMEvent{From: 7, Text: "hello"}, msim.ZapEvent{From: 7},
		msim.TypingEvent{From: 7, Typing: true}, msim.PresenceEvent{UID: 7, Status: msim.StatusAway, Text: "out"})
	r.stepUntil("bob's events shown", func() bool { return len(r.irc.said("sends you a zap")) == 1 })
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	for i := range 4 { // the queue takes 3
		r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: fmt.Sprintf("q%d", i)})
	}
	// The next login is refused for good: the queue is dropped, told.
	r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
		return nil, &msim.LoginError{Code: 260, Err: msim.ErrBadPassword}
	}
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("login refused", func() bool { return r.a.state == linkStopped })
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "while stopped"})
	for range maxHeld + 1 { // the last one cannot be held
		r.s.holdIM(r.a, msim.IMEvent{From: 7, Text: "late"})
	}

	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"msimircd_ims_bridged_total", []string{"direction", "to_msim"}, 1},
		{"msimircd_ims_bridged_total", []string{"direction", "to_irc"}, 1},
		{"msimircd_zaps_total", []string{"direction", "to_msim"}, 1},
		{"msimircd_zaps_total", []string{"direction", "to_irc"}, 1},
		{"msimircd_typing_total", []string{"direction", "to_msim"}, 1},
		{"msimircd_typing_total", []string{"direction", "to_irc"}, 1},
		{"msimircd_presence_updates_total", []string{"direction", "to_msim"}, 1},
		{"msimircd_presence_updates_total", []string{"direction", "to_irc"}, 1},
		{"msimircd_msim_links_lost_total", []string{"reason", "network"}, 1},
		{"msimircd_msim_logins_total", []string{"result", "bad_password"}, 1},
		{"msimircd_ims_queued_total", nil, 3},
		{"msimircd_ims_refused_total", nil, 2}, // over the queue's limit, and while stopped
		{"msimircd_ims_held_total", nil, maxHeld},
		{"msimircd_ims_dropped_total", nil, 3 + 1}, // the queue, and one over maxHeld
	} {
		if got := promtest.Value(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v: got %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestMetricsOff: a bridge without a registry counts nothing and works.
func TestMetricsOff(t *testing.T) {
	r := newRig(t, nil)
	if r.s.b.met != nil {
		t.Fatalf("bridge without Metrics: got collectors %v, want none", r.s.b.met)
	}
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hi"})
	if len(cl.sent) != 1 {
		t.Errorf("sent %q, want hi", cl.sent)
	}
}
