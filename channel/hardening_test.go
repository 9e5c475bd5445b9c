package channel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/msim"
)

// msimUser creates an account on the stack's MSIM server and logs it in
// with a plain MSIM client, as a buddy on another MSIM client would be.
func msimUser(t *testing.T, st *stack, name string) *msim.Client {
	t.Helper()
	if _, err := st.msrv.AddAccount(name+"@example.com", name+"pw", name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := msim.Dial(ctx, msim.ClientConfig{Addr: st.proxy.addr(), Email: name + "@example.com", Password: name + "pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestRawCTCPFromMSIMIsNeutralised: a buddy's text cannot carry CTCP (a DCC
// offer, VERSION), colour codes or other control characters to the IRC
// client, in an IM or a status text; the bridge's own ACTION for /me stays.
func TestRawCTCPFromMSIMIsNeutralised(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	dave := msimUser(t, st, "dave")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := dave.LookupUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ send, want string }{
		{"\x01DCC SEND evil.exe 2130706433 26999 1000\x01", "␁DCC SEND evil.exe 2130706433 26999 1000␁"},
		{"\x01VERSION\x01", "␁VERSION␁"},
		{"\x0304red\x03 and \x02bold\x02\x07", "␃04red␃ and ␂bold␂␇"},
		{"/me waves", "\x01ACTION waves\x01"},
	} {
		if err := dave.SendIM(ctx, p.UID, tc.send); err != nil {
			t.Fatal(err)
		}
		m := alice.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "dave" })
		if m.Trailing() != tc.want {
			t.Errorf("IM %q: got %q, want %q", tc.send, m.Trailing(), tc.want)
		}
	}
	alice.add("&alice", "dave")
	if err := dave.SetStatus(ctx, msim.StatusAway, "\x01VERSION\x01 back\x03 soon"); err != nil {
		t.Fatal(err)
	}
	m := alice.expect("AWAY", func(m *irc.Message) bool { return m.Name == "dave" && len(m.Params) > 0 })
	if got := m.Trailing(); got != "␁VERSION␁ back␃ soon" || strings.ContainsAny(got, "\x01\x03") {
		t.Errorf("status text: got %q", got)
	}
}
