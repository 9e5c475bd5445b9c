package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msimircd/msimircd/msim"
)

// pair starts a server with alice and bob, who list each other, both logged
// in and online.
func pair(t *testing.T, cfg Config) (srv *Server, addr string, alice, bob *client) {
	t.Helper()
	srv, addr = startServer(t, cfg, NewMemStore())
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	for _, p := range [][2]msim.UID{{aUID, bUID}, {bUID, aUID}} {
		if err := srv.store.PutContact(p[0], Contact{UID: p[1], GroupName: "IM Friends", Position: 1000, Visibility: 1}); err != nil {
			t.Fatal(err)
		}
	}
	alice = login(t, addr, "alice@example.com", "Secret1")
	alice.status(msim.StatusOnline, "")
	bob = login(t, addr, "bob@example.com", "hunter2")
	bob.expect("alice's presence at login", isPresence(aUID, msim.StatusOnline))
	bob.status(msim.StatusOnline, "")
	alice.expect("bob online", isPresence(bUID, msim.StatusOnline))
	return srv, addr, alice, bob
}

// exchange asserts that an IM from a reaches b.
func exchange(t *testing.T, a, b *client, text string) {
	t.Helper()
	a.bm(msim.BMIM, b.uid, text)
	m := b.expect("IM "+text, isBM(msim.BMIM, a.uid))
	if got, _ := m.Str("msg"); got != text {
		t.Fatalf("IM body: got %q, want %q", got, text)
	}
}

func TestPresenceIMTypingZap(t *testing.T) {
	_, _, alice, bob := pair(t, Config{})

	bob.status(msim.StatusAway, "out to lunch / back 1pm")
	m := alice.expect("bob away", isPresence(bob.uid, msim.StatusAway))
	l, _ := m.List("msg")
	if p, _ := msim.ParsePresence(l); p.Text != "out to lunch / back 1pm" {
		t.Errorf("status text: got %q, want %q", p.Text, "out to lunch / back 1pm")
	}
	bob.status(msim.StatusIdle, "")
	alice.expect("bob idle", isPresence(bob.uid, msim.StatusIdle))

	exchange(t, alice, bob, "<p><f f='Times' h='16'>hello/world\\</f></p>")
	exchange(t, bob, alice, "hi alice")

	// The server sets f itself.
	bob.send(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", bob.key).AddInt("t", int(alice.uid)).
		AddInt("f", 424242).Add("msg", "forged?"))
	if m := alice.expect("IM with f", isType("bm", msim.BMIM)); m.StrOr("f", "") != bob.uid.String() {
		t.Errorf("f: got %q, want %v", m.StrOr("f", ""), bob.uid)
	}

	for _, body := range []string{"%typing%", "%stoptyping%", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3"} {
		alice.bm(msim.BMAction, bob.uid, body)
		m := bob.expect(body, isBM(msim.BMAction, alice.uid))
		if got, _ := m.Str("msg"); got != body {
			t.Errorf("bm 121: got %q, want %q", got, body)
		}
		if got, _ := m.Int("cv"); got != 673 {
			t.Errorf("bm 121 cv: got %d, want 673", got)
		}
	}

	// Invisible is offline to others; logout too.
	bob.status(msim.StatusOffline, "")
	m = alice.expect("bob invisible", isPresence(bob.uid, msim.StatusOffline))
	if got, _ := m.Str("msg"); got != "|s|0|ss|Offline" {
		t.Errorf("offline presence: got %q, want |s|0|ss|Offline", got)
	}
	bob.status(msim.StatusOnline, "back")
	alice.expect("bob back", isPresence(bob.uid, msim.StatusOnline))
	bob.send(msim.New("logout", "").AddInt("sesskey", bob.key))
	bob.expectClosed()
	alice.expect("bob logged out", isPresence(bob.uid, msim.StatusOffline))
}

func TestOfflineMessageAtLogin(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")

	before := time.Now().Unix()
	alice.bm(msim.BMIM, bUID, "are you there?")
	alice.bm(msim.BMAction, bUID, "%typing%") // not stored
	alice.sync()
	after := time.Now().Unix()
	none(t, alice.takeSeen(), "error", func(m *msim.Message) bool { return m.Is("error") })

	bob := login(t, addr, "bob@example.com", "hunter2")
	m := bob.expect("offline IM", isBM(msim.BMIM, alice.uid))
	if got, _ := m.Str("msg"); got != "are you there?" {
		t.Errorf("offline IM: got %q, want %q", got, "are you there?")
	}
	date, err := m.Int("date")
	if err != nil || int64(date) < before || int64(date) > after {
		t.Errorf("date: got %d (%v), want in [%d, %d]", date, err, before, after)
	}
	bob.sync()
	none(t, bob.takeSeen(), "stored bm 121", isBM(msim.BMAction, alice.uid))

	// Delivered once only.
	bob.send(msim.New("logout", "").AddInt("sesskey", bob.key))
	bob.expectClosed()
	bob = login(t, addr, "bob@example.com", "hunter2")
	bob.sync()
	none(t, bob.takeSeen(), "IM delivered twice", isBM(msim.BMIM, alice.uid))
}

func TestLoginRefused(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	cases := []struct {
		name, email, pw string
		code            int
	}{
		{"wrong password", "alice@example.com", "Secret2", msim.ErrCodeBadPassword},
		{"unknown user", "nobody@example.com", "Secret1", msim.ErrCodeBadPassword},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			m := c.tryLogin(tc.email, tc.pw)
			if code, _ := m.Int("err"); !m.Is("error") || code != tc.code || !m.Has("fatal") {
				t.Fatalf("got %v, want fatal error %d", m, tc.code)
			}
			if text, _ := m.Str("errmsg"); text != textBadLogin {
				t.Errorf("errmsg: got %q, want %q (the same for both)", text, textBadLogin)
			}
			c.expectClosed()
		})
	}
	// The password is matched as the protocol does: first 10 characters, any case.
	c := dial(t, addr)
	if m := c.tryLogin("ALICE@example.com", "SECRET1"); !m.Is("lc") {
		t.Errorf("case-insensitive login: got %v, want lc 2", m)
	}
}

func TestDuplicateLoginKicksFirst(t *testing.T) {
	srv, addr, alice, bob := pair(t, Config{})
	again := login(t, addr, "alice@example.com", "Secret1")
	m := alice.expect("err 6", isError(msim.ErrCodeElsewhere))
	if !m.Has("fatal") {
		t.Errorf("err 6 without fatal: %v", m)
	}
	alice.expectClosed()
	if !srv.Online(again.uid) {
		t.Fatal("alice not online after the second login")
	}
	exchange(t, bob, again, "still there?")
	exchange(t, again, bob, "yes")
	bob.sync()
	none(t, bob.takeSeen(), "offline presence for a kicked session", isPresence(again.uid, msim.StatusOffline))
}

func TestFileStoreRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msim.db")
	run := func(fn func(srv *Server, addr string)) {
		store, err := OpenFileStore(path)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{Demo: true}, store, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ln := listen(t)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx, ln) }()
		fn(srv, ln.Addr().String())
		cancel()
		sctx, stop := context.WithTimeout(context.Background(), testWait)
		defer stop()
		if err := srv.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		<-served
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var aUID, bUID msim.UID
	run(func(srv *Server, addr string) {
		aUID = addAccount(t, srv, "alice@example.com", "Secret1", "")
		bUID = addAccount(t, srv, "bob@example.com", "hunter2", "bob")
		alice := login(t, addr, "alice@example.com", "Secret1")
		if alice.nick != aUID.String() {
			t.Errorf("uniquenick without a user name: got %q, want the uid %v", alice.nick, aUID)
		}
		if r := alice.persist(msim.CmdPut, msim.PersistSetUserName, msim.Dict{{Key: "UserName", Value: "alice"}}); r.Body.Str("Code") != "0" {
			t.Fatalf("set user name: %v", r.Body)
		}
		r := alice.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetContact, msim.Dict{
			{Key: "ContactID", Value: bUID.String()}, {Key: "GroupName", Value: "Work"},
			{Key: "Position", Value: "1000"}, {Key: "Visibility", Value: "1"}, {Key: "NickName", Value: "Bobby"}, {Key: "NameSelect", Value: "0"},
		})
		if r.IsError() {
			t.Fatalf("set contact: %v", r.Body)
		}
		alice.bm(msim.BMIM, bUID, "see you after the restart")
		alice.sync()
	})
	run(func(srv *Server, addr string) {
		if uid := addAccount(t, srv, "carol@example.com", "pw", ""); uid <= bUID {
			t.Errorf("uid after restart: got %v, want > %v", uid, bUID)
		}
		if _, err := srv.AddAccount("bob@example.com", "x", ""); !errors.Is(err, ErrAccountExists) {
			t.Errorf("re-adding bob: got %v, want ErrAccountExists", err)
		}
		bob := login(t, addr, "bob@example.com", "hunter2")
		m := bob.expect("stored IM", isBM(msim.BMIM, aUID))
		if got, _ := m.Str("msg"); got != "see you after the restart" || !m.Has("date") {
			t.Errorf("stored IM: got %v", m)
		}
		alice := login(t, addr, "alice@example.com", "Secret1")
		if alice.nick != "alice" {
			t.Errorf("uniquenick: got %q, want alice", alice.nick)
		}
		recs := alice.persist(msim.CmdGet, msim.PersistContactList, nil).Body.Records("ContactID")
		var found bool
		for _, r := range recs {
			if r.Str("ContactID") == bUID.String() {
				found = true
				if r.Str("GroupName") != "Work" || r.Str("NickName") != "Bobby" || r.Str("UserName") != "bob" {
					t.Errorf("bob's record: got %v", r)
				}
			}
		}
		if !found || len(recs) != 2 { // bob and Tom
			t.Errorf("contact list after restart: got %v, want bob and Tom", recs)
		}
	})
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestNoGoroutineLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := New(Config{Demo: true}, NewMemStore(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	addr := ln.Addr().String()
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	alice := login(t, addr, "alice@example.com", "Secret1")
	alice.status(msim.StatusOnline, "")
	alice.bm(msim.BMIM, TomUID, "hi Tom")
	alice.expect("Tom's answer", isBM(msim.BMIM, TomUID))
	idle := dial(t, addr) // never logs in
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	alice.expectClosed()
	idle.expectClosed()
}

// TestNoIMLostToASlowReader floods a recipient that does not read: the
// server drops the session when its queue overflows, and every IM either
// reached the socket or is stored for the next login. None is lost or
// delivered twice.
func TestNoIMLostToASlowReader(t *testing.T) {
	// No byte caps on offline mail: this test is about the rescue, not them.
	srv, addr := startFlooding(t, Config{SendQ: 8, OfflinePerRecipientBytes: -1, OfflinePerSenderBytes: -1}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	bob := login(t, addr, "bob@example.com", "hunter2")

	const n = 1000
	pad := strings.Repeat("x", 8<<10)
	for i := range n {
		alice.bm(msim.BMIM, bUID, fmt.Sprintf("%d %s", i, pad))
	}
	alice.sync() // every IM has been routed: queued, written or stored
	none(t, alice.takeSeen(), "an IM refused", func(m *msim.Message) bool { return m.Is("error") })
	if srv.Online(bUID) {
		t.Fatal("bob's session survived the flood; the test needs more data")
	}
	got := map[int]int{}
	count := func(c *client) {
		for {
			m, err := c.read()
			if err != nil {
				return
			}
			if isBM(msim.BMIM, alice.uid)(m) {
				body, _ := m.Str("msg")
				var i int
				fmt.Sscanf(body, "%d", &i)
				got[i]++
			}
		}
	}
	count(bob) // what reached bob's socket, up to the close
	live := len(got)
	bob = login(t, addr, "bob@example.com", "hunter2")
	bob.sync()
	for _, m := range bob.takeSeen() {
		if isBM(msim.BMIM, alice.uid)(m) {
			body, _ := m.Str("msg")
			var i int
			fmt.Sscanf(body, "%d", &i)
			got[i]++
		}
	}
	for i := range n {
		if got[i] != 1 {
			t.Errorf("IM %d arrived %d times", i, got[i])
		}
	}
	t.Logf("%d IMs reached the socket, %d were stored for the next login", live, len(got)-live)
}

// TestFullMailboxTellsTheSender: an IM that cannot be stored for an offline
// recipient is refused with an error, never dropped silently.
func TestFullMailboxTellsTheSender(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	for i := range maxOffline {
		alice.bm(msim.BMIM, bUID, fmt.Sprint(i))
	}
	alice.sync()
	none(t, alice.takeSeen(), "an error before the mailbox is full", func(m *msim.Message) bool { return m.Is("error") })
	alice.bm(msim.BMIM, bUID, "one too many")
	m := alice.expect("not stored", isError(ErrCodeNotStored))
	if m.Has("fatal") {
		t.Error("the error is fatal; the sender's session should survive")
	}
	if text, _ := m.Str("errmsg"); !strings.Contains(text, bUID.String()) {
		t.Errorf("errmsg %q does not name the recipient", text)
	}
}

func TestCheckPassword(t *testing.T) {
	srv, _ := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	if err := srv.CheckPassword("alice@example.com", "SECRET1"); err != nil {
		t.Errorf("right password (case-insensitive, as the protocol): got %v", err)
	}
	if err := srv.CheckPassword("alice@example.com", "nope"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: got %v", err)
	}
	if err := srv.CheckPassword("bob@example.com", "x"); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("unknown account: got %v", err)
	}
}

// TestBMRelaysOnlyItsFields: keys a client adds to a bm (a forged lc 2,
// userid…) never reach the recipient.
func TestBMRelaysOnlyItsFields(t *testing.T) {
	_, _, alice, bob := pair(t, Config{})
	alice.send(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", alice.key).AddInt("t", int(bob.uid)).
		AddInt("cv", 697).Add("msg", "hi").AddInt("lc", 2).AddInt("userid", 6221).Add("uniquenick", "evil"))
	m := bob.expect("IM", isBM(msim.BMIM, alice.uid))
	for _, k := range []string{"lc", "userid", "uniquenick", "sesskey", "t"} {
		if m.Has(k) {
			t.Errorf("relayed bm carries %q: %v", k, m)
		}
	}
	if got, _ := m.Str("msg"); got != "hi" {
		t.Errorf("msg: got %q", got)
	}
}

// TestUserNameCannotChange: once set, a user name stays (clients key buddy
// lists by it).
func TestUserNameCannotChange(t *testing.T) {
	_, _, alice, _ := pair(t, Config{})
	p := alice.persist(msim.CmdPut, msim.PersistSetUserName, msim.Dict{{Key: "UserName", Value: "alice2"}})
	if code, _ := p.Body.Int("Code"); code == codeNameOK {
		t.Errorf("renaming alice to alice2: got Code=%d, want a refusal", code)
	}
	p = alice.persist(msim.CmdPut, msim.PersistSetUserName, msim.Dict{{Key: "UserName", Value: "Alice"}})
	if code, _ := p.Body.Int("Code"); code != codeNameOK {
		t.Errorf("setting the same name: got Code=%d, want 0", code)
	}
}
