package msim

import (
	"context"
	"testing"
)

// TestChooseUserNameLookupTimedOut: in the choose-a-user-name flow the
// availability check (persist 1/5/7) answered with the 2007 server's
// "Request timeout" error reply says nothing about the name; the set
// request (2/9/14) is what decides, and it succeeds. The login must not
// fail because the check timed out.
func TestChooseUserNameLookupTimedOut(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.ChooseUserName = func(context.Context, string) (string, error) { return "alice_x", nil }
	ch := dialAsync(cfg)
	fc := f.accept()
	var setName string
	fc.override(PersistLookup, func(fc *fakeConn, p *Persist) Dict {
		fc.reply(p, p.Cmd|CmdError, append(p.Body, Pair{"ErrorMessage", "Request timeout"}))
		return nil
	})
	fc.override(PersistSetUserName, func(_ *fakeConn, p *Persist) Dict {
		setName = p.Body.Str("UserName")
		return Dict{{"UserName", setName}, {"Code", "0"}}
	})
	fc.override(PersistOwnProfile, func(_ *fakeConn, p *Persist) Dict {
		return Dict{{"UserID", "1001"}, {"UserName", setName}}
	})
	fc.login("1001")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: got %v, want a session (the set request decides whether the name is free)", err)
	}
	if got := c.Self().UserName; got != "alice_x" {
		t.Errorf("Self().UserName: got %q, want alice_x", got)
	}
}
