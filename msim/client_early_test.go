package msim

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// loginAfter runs the handshake as login does, with msgs sent after the
// challenge and before lc 2 (none when refuse is set: the server refuses
// the login with err 260 instead), then serves persist requests.
func (fc *fakeConn) loginAfter(refuse bool, msgs ...*Message) {
	fc.t.Helper()
	fc.challenge()
	for _, m := range msgs {
		fc.write(m)
	}
	if m := fc.read(); !m.Is("login2") {
		fc.t.Fatalf("got %s, want login2", m)
	}
	if refuse {
		fc.write(ErrorMessage(ErrCodeBadPassword, true, "The password provided is incorrect."))
		return
	}
	fc.write(NewInt("lc", 2).AddInt("sesskey", fakeSessKey).AddInt("proof", int(fakeUID)).
		AddInt("userid", int(fakeUID)).AddInt("profileid", int(fakeUID)).
		Add("uniquenick", "alice").AddInt("id", 1))
	go fc.serve()
}

// earlyIM is an IM from from, sent before the login ends.
func earlyIM(from UID, text string) *Message {
	return NewInt("bm", BMIM).AddInt("f", int(from)).Add("msg", text)
}

// TestIMBeforeLoginReplyIsKept: an IM the server sends before lc 2 is an
// event of the session once it is up, with Notify and without, as one
// sent during the login's setup is. (The handshake dropped it with a debug
// log: the server counts it delivered.)
func TestIMBeforeLoginReplyIsKept(t *testing.T) {
	t.Parallel()
	for _, notify := range []bool{true, false} {
		f := newFake(t)
		cfg := testConfig(t, f.addr())
		cfg.closeGrace = time.Millisecond // the fake does not answer the logout
		if notify {
			cfg.Notify = func() {}
		}
		ch := dialAsync(cfg)
		f.accept().loginAfter(false, earlyIM(2001, "before lc 2"))
		c, err := waitDial(t, ch)
		if err != nil {
			t.Fatalf("notify %v: Dial: %v", notify, err)
		}
		var im IMEvent
		if notify {
			for _, ev := range c.TakeEvents(nil) {
				if e, ok := ev.(IMEvent); ok {
					im = e
				}
			}
		} else {
			for ok := false; !ok; {
				im, ok = nextEvent(t, c).(IMEvent)
			}
		}
		if im.From != 2001 || im.Text != "before lc 2" {
			t.Errorf("notify %v: got %#v, want the IM from 2001 sent before lc 2", notify, im)
		}
	}
}

// TestIMBeforeRefusedLoginComesWithTheError: an IM the server sent before
// it refused the login comes with the login's error (UndeliveredError),
// which is still the refusal.
func TestIMBeforeRefusedLoginComesWithTheError(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ch := dialAsync(testConfig(t, f.addr()))
	f.accept().loginAfter(true, earlyIM(2001, "before the refusal"))
	_, err := waitDial(t, ch)
	if !errors.Is(err, ErrBadPassword) {
		t.Fatalf("Dial got %v, want ErrBadPassword", err)
	}
	evs := Undelivered(err)
	if len(evs) != 1 {
		t.Fatalf("got %#v with the error, want the IM", evs)
	}
	if im, ok := evs[0].(IMEvent); !ok || im.From != 2001 || im.Text != "before the refusal" {
		t.Errorf("got %#v with the error, want the IM from 2001", evs[0])
	}
}

// TestIMsBeforeLoginReplyPastTheBacklog: IMs sent before lc 2 past the
// event backlog fail the login as an overflow during its setup does: the
// IMs queued come with the error, and the one dropped is counted and named.
func TestIMsBeforeLoginReplyPastTheBacklog(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.Notify = func() {}
	cfg.EventBacklog = 2
	ch := dialAsync(cfg)
	f.accept().loginAfter(false, earlyIM(2001, "one"), earlyIM(2001, "two"), earlyIM(2002, "past the backlog"))
	c, err := waitDial(t, ch)
	if c != nil {
		c.Close()
		t.Fatal("Dial succeeded past the backlog, want an overflow")
	}
	if !errors.Is(err, ErrEventOverflow) {
		t.Fatalf("Dial got %v, want an overflow", err)
	}
	var ue *UndeliveredError
	if !errors.As(err, &ue) {
		t.Fatalf("Dial got %v, want an UndeliveredError", err)
	}
	if len(ue.Events) != 2 || ue.DroppedIMs != 1 || !slices.Equal(ue.DroppedFrom, []UID{2002}) {
		t.Errorf("got %d IMs and %d dropped from %v, want 2 and 1 from [2002]", len(ue.Events), ue.DroppedIMs, ue.DroppedFrom)
	}
}
