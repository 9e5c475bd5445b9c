package channel

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// TestFailedLoginBringsItsIMs: a login that failed after the MSIM server
// had handed over stored IMs (msim.UndeliveredError; the server keeps
// them no longer) shows them, in order, and then retries. The sender, not
// yet known by name, takes the nick its name gives once the next login
// brings the contact list, as a NICK change.
func TestFailedLoginBringsItsIMs(t *testing.T) {
	r := newRig(t, nil)
	r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
		return nil, &msim.UndeliveredError{Err: context.DeadlineExceeded, Events: []msim.Event{
			msim.IMEvent{From: 42, Text: "stored first"},
			msim.ZapEvent{From: 42},
			msim.IMEvent{From: 42, Text: "stored second"},
		}}
	}
	r.s.start()
	r.stepUntil("the stored IMs shown", func() bool { return len(r.irc.said("stored second")) == 1 })
	first, second := -1, -1
	r.irc.mu.Lock()
	for i, l := range r.irc.lines {
		switch {
		case strings.Contains(l, "stored first"):
			first = i
		case strings.Contains(l, "stored second"):
			second = i
		}
	}
	r.irc.mu.Unlock()
	if first < 0 || first > second {
		t.Errorf("got the stored IMs at lines %d and %d, want both, in order", first, second)
	}
	r.stepUntil("the retry", func() bool { return len(r.clock.Pending()) == 1 })
	if got := r.irc.said("Cannot connect to MSIM"); len(got) != 1 {
		t.Errorf("got %q, want the failure told once", got)
	}
	before := r.a.buddy(42).nick
	r.okDial(&fakeMSIM{buddies: []msim.Contact{{UID: 42, UserName: "bob", Status: msim.StatusOnline}}})
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := r.a.buddy(42).nick; got != "bob" {
		t.Errorf("the sender's nick once the contact list came: got %q, want bob", got)
	}
	if got := r.irc.said("NICK " + before + ": bob"); len(got) != 1 {
		t.Errorf("got renames %q, want %s renamed bob once", got, before)
	}
}

// nickedIRC is a connection whose client goes by its own nick.
type nickedIRC struct {
	*fakeIRC
	nick string
}

func (f *nickedIRC) Nick() string { return f.nick }

// TestNamedBuddyAvoidsEveryClientsNick: the nick a buddy takes once its
// names are known is none the user goes by in any attached client, not
// only the first one's.
func TestNamedBuddyAvoidsEveryClientsNick(t *testing.T) {
	r := newRig(t, nil)
	phone := newAttachment(&nickedIRC{fakeIRC: newFakeIRC(), nick: "bob"}, r.s, nil)
	r.s.cl.add(phone)
	r.s.countAttached(1)
	r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
		return nil, &msim.UndeliveredError{Err: context.DeadlineExceeded, Events: []msim.Event{msim.IMEvent{From: 42, Text: "stored"}}}
	}
	r.s.start()
	r.stepUntil("the stored IM shown", func() bool { return len(r.irc.said("stored")) == 1 })
	r.stepUntil("the retry", func() bool { return len(r.clock.Pending()) == 1 })
	r.okDial(&fakeMSIM{buddies: []msim.Contact{{UID: 42, UserName: "bob", Status: msim.StatusOnline}}})
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	got := r.a.buddy(42).nick
	if nickKey(got) == nickKey("bob") || strings.HasPrefix(got, "u") {
		t.Errorf("the sender's nick: got %q, want one from its name that is not the phone's nick bob", got)
	}
	if bd := r.s.buddyByNick(nickKey(got)); bd == nil || bd.UID() != 42 {
		t.Errorf("the nick index: %q gives %v, want the buddy 42", got, bd)
	}
}

// TestLoginEndingWithTheSessionKeepsItsIMs: a login that ends after its
// session has (the user left while it was under way) keeps the IMs the
// MSIM server handed it, whether its result was posted to the ended
// session or not.
func TestLoginEndingWithTheSessionKeepsItsIMs(t *testing.T) {
	for range 20 {
		r := newRig(t, nil)
		started, release := make(chan struct{}), make(chan struct{})
		r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
			close(started)
			<-release
			return nil, &msim.UndeliveredError{Err: context.Canceled, Events: []msim.Event{msim.IMEvent{From: 42, Text: "stored"}}}
		}
		r.s.start()
		<-started
		r.s.cancel()
		close(release)
		r.s.shutdown() // waits for the login's goroutine
		held := r.s.mem.heldFor(r.a.cfg.Email)
		if len(held) != 1 || held[0].ev.(msim.IMEvent).Text != "stored" {
			t.Fatalf("held after the session ended: %d IMs, want the login's one", len(held))
		}
	}
}

// TestRenameOutlivesAClientsNick: a buddy whose remembered nick (a rename)
// is the nick the user's client goes by at login shows under another for
// the session, and the rename is still remembered for the next login.
func TestRenameOutlivesAClientsNick(t *testing.T) {
	r := newRig(t, nil)
	key := buddyKey{r.a.cfg.Email, 42}
	r.s.mem.setNick(key, "robert", false) // rename bob robert, at an earlier login
	phone := newAttachment(&nickedIRC{fakeIRC: newFakeIRC(), nick: "robert"}, r.s, nil)
	r.s.cl.add(phone)
	r.s.countAttached(1)
	r.okDial(&fakeMSIM{buddies: []msim.Contact{{UID: 42, UserName: "bob", Status: msim.StatusOnline}}})
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := r.a.buddy(42).nick; nickKey(got) == nickKey("robert") {
		t.Errorf("the buddy's nick: got %q, the client's own", got)
	}
	if got, ok := r.s.mem.nick(key); !ok || got != "robert" {
		t.Errorf("the remembered nick: got %q, %v; want the rename robert", got, ok)
	}
}

// ownNickIRC is a connection whose client goes by its own nick, which
// ircd refuses to a virtual user, as it does.
type ownNickIRC struct{ *nickedIRC }

func (f ownNickIRC) AddUser(u ircd.User) error {
	if nickKey(u.Nick) == nickKey(f.nick) {
		return errors.New("nick in use")
	}
	return f.nickedIRC.AddUser(u)
}

// TestRenameOutlivesAnAttachingClientsNick: a renamed buddy whose nick is
// the one a client attaching to the running session goes by shows under
// another for the session, and the rename is still remembered.
func TestRenameOutlivesAnAttachingClientsNick(t *testing.T) {
	r := newRig(t, nil)
	key := buddyKey{r.a.cfg.Email, 42}
	r.s.mem.setNick(key, "robert", false) // rename bob robert, at an earlier login
	r.okDial(&fakeMSIM{buddies: []msim.Contact{{UID: 42, UserName: "bob", Status: msim.StatusOnline}}})
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := r.a.buddy(42).nick; got != "robert" {
		t.Fatalf("the buddy's nick before the phone attaches: %q, want robert", got)
	}
	phone := newAttachment(ownNickIRC{&nickedIRC{fakeIRC: newFakeIRC(), nick: "robert"}}, r.s, nil)
	if err := r.s.attach(phone, nil); err != nil {
		t.Fatal(err)
	}
	if got := r.a.buddy(42).nick; nickKey(got) == nickKey("robert") {
		t.Errorf("the buddy's nick: got %q, the phone's own", got)
	}
	if got, ok := r.s.mem.nick(key); !ok || got != "robert" {
		t.Errorf("the remembered nick: got %q, %v; want the rename robert", got, ok)
	}
}

// TestAttachingClientsNickRenamesForEveryClient: the stand-in nick a buddy
// takes when a client attaches under its nick is shown to the clients
// attached already too, by a NICK, so what the buddy says later comes from
// a nick they know.
func TestAttachingClientsNickRenamesForEveryClient(t *testing.T) {
	r := newRig(t, nil)
	r.okDial(&fakeMSIM{buddies: []msim.Contact{{UID: 42, UserName: "robert", Status: msim.StatusOnline}}})
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	phone := newAttachment(ownNickIRC{&nickedIRC{fakeIRC: newFakeIRC(), nick: "robert"}}, r.s, nil)
	if err := r.s.attach(phone, nil); err != nil {
		t.Fatal(err)
	}
	nick := r.a.buddy(42).nick
	if nickKey(nick) == nickKey("robert") {
		t.Fatalf("the buddy's nick: got %q, the phone's own", nick)
	}
	r.irc.mu.Lock()
	defer r.irc.mu.Unlock()
	if !slices.Contains(r.irc.lines, "NICK robert: "+nick) {
		t.Errorf("the client attached first was not told robert is now %s: %q", nick, r.irc.lines)
	}
}
