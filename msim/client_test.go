package msim

import (
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim/markup"
	"go.uber.org/goleak"
)

func TestClientLogin(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		cfg.Status, cfg.StatusText = StatusAway, "out to lunch / back 1pm"
	})

	// What the client sent after lc 2, in Pidgin's order and form.
	own := fc.expectPersist(PersistOwnProfile)
	if own.Body.Str("UserID") != "1001" {
		t.Errorf("own profile body got %v, want UserID=1001", own.Body)
	}
	fc.expectPersist(PersistOwnIMInfo)
	st := fc.expect("status")
	if code, _ := st.TypeInt(); code != int(StatusAway) || st.StrOr("statstring", "") != "out to lunch / back 1pm" {
		t.Errorf("status got %s, want 5 with the text", st)
	}
	fc.expectPersist(PersistContactList)
	bl := fc.expect("blocklist")
	if l, _ := bl.List("idlist"); !reflect.DeepEqual(l, List{"w1", "c1"}) {
		t.Errorf("blocklist got %q, want w1|c1", l)
	}
	if p := fc.expectPersist(PersistProfile); p.Body.Str("UserID") != "2001" {
		t.Errorf("profile lookup got %v, want UserID=2001 (the contact without a user name)", p.Body)
	}

	self := c.Self()
	want := Profile{UID: fakeUID, UserName: "alice", DisplayName: "Alice", Location: "Providence",
		LastLogin: time.Date(2009, 8, 24, 16, 3, 0, 0, time.UTC)}
	if !reflect.DeepEqual(self, want) {
		t.Errorf("Self got %+v, want %+v", self, want)
	}
	if c.UID() != fakeUID {
		t.Errorf("UID got %v, want %v", c.UID(), fakeUID)
	}
	wantContacts := []Contact{
		{UID: 2001, UserName: "bob", DisplayName: "Bob", Group: "Friends", ImageURL: "http://x/b.png", Status: StatusAway, StatusText: "lunch"},
		{UID: 2002, UserName: "carol", DisplayName: "Carol"},
		{UID: 2003, UserName: "spammer", Blocked: true},
	}
	if got := c.Contacts(); !reflect.DeepEqual(got, wantContacts) {
		t.Errorf("Contacts got %+v, want %+v", got, wantContacts)
	}
	wantGroups := []Group{{1, "Friends", 1}, {2, "IM Friends", 2}}
	if got := c.Groups(); !reflect.DeepEqual(got, wantGroups) {
		t.Errorf("Groups got %+v, want %+v", got, wantGroups)
	}
	// The presence that came before the contact list is an event too.
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, PresenceEvent{UID: 2001, Status: StatusAway, Text: "lunch"}) {
		t.Errorf("first event got %#v, want bob's presence", ev)
	}
}

// TestClientLoginWithoutUniquenick: an lc 2 without uniquenick is a
// login, not an account without a user name: only a uniquenick equal to
// the uid says that (spec §3.7; Pidgin compares the field's number with
// the uid). The user name comes with the own profile.
// TestClientLoginNameStartingWithUID: a user name that starts with the
// uid's digits ("1001abc" for uid 1001) is a user name; only the uid
// itself as uniquenick means the account has none (spec §3.7).
func TestClientLoginNameStartingWithUID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		nick    string
		unnamed bool
	}{{"1001abc", false}, {"1001", true}} {
		f := newFake(t)
		ch := dialAsync(testConfig(t, f.addr())) // no ChooseUserName: that flow fails the login
		f.accept().login(tc.nick)
		_, err := waitDial(t, ch)
		if unnamed := errors.Is(err, ErrNoUserName); unnamed != tc.unnamed || !unnamed && err != nil {
			t.Errorf("uniquenick %q: Dial got %v, want the account unnamed %v", tc.nick, err, tc.unnamed)
		}
	}
}

func TestClientLoginWithoutUniquenick(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ch := dialAsync(testConfig(t, f.addr())) // no ChooseUserName: that flow would fail the login
	f.accept().login("")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if got := c.Self().UserName; got != "alice" {
		t.Errorf("own user name: got %q, want alice from the own profile", got)
	}
}

func TestClientLoginErrors(t *testing.T) {
	t.Parallel()
	errMsg := func(code int, text string) func(fc *fakeConn) {
		return func(fc *fakeConn) {
			fc.challenge()
			fc.read()
			fc.write(ErrorMessage(code, true, text))
		}
	}
	tests := []struct {
		name   string
		cfg    func(*ClientConfig)
		script func(fc *fakeConn)
		want   error
		code   int
		text   string // the exact Error() when set
	}{
		{name: "bad password", script: errMsg(260, "The password provided is incorrect."), want: ErrBadPassword, code: 260,
			text: "msim: login failed: incorrect password (err 260): The password provided is incorrect"},
		{name: "unknown account", script: errMsg(259, "No such account."), want: ErrUnknownAccount, code: 259},
		{name: "parse error", script: errMsg(1, "There was an error parsing an incoming request."), want: ErrServer, code: 1},
		{name: "bad nonce", script: func(fc *fakeConn) {
			fc.write(NewInt("lc", 1).AddBase64("nc", []byte("short")).AddInt("id", 1))
		}, want: ErrServer, text: "msim: login failed: server error: challenge nonce is not 64 bytes"},
		{name: "no user name", script: func(fc *fakeConn) { fc.login("1001") }, want: ErrNoUserName},
		{name: "user name declined", cfg: func(cfg *ClientConfig) {
			cfg.ChooseUserName = func(context.Context, string) (string, error) { return "", errors.New("no thanks") }
		}, script: func(fc *fakeConn) { fc.login("1001") }, want: ErrNoUserName},
		{name: "invalid user name", cfg: func(cfg *ClientConfig) {
			cfg.ChooseUserName = func(context.Context, string) (string, error) { return "12345", nil }
		}, script: func(fc *fakeConn) { fc.login("1001") }, want: ErrNoUserName},
		{name: "closed during login", script: func(fc *fakeConn) {
			fc.challenge()
			fc.read()
			fc.nc.Close()
		}, want: io.EOF},
		{name: "silent during login", cfg: func(cfg *ClientConfig) { cfg.DialTimeout = 200 * time.Millisecond },
			script: func(fc *fakeConn) { fc.challenge() }, want: context.DeadlineExceeded},
		{name: "contact list never comes", cfg: func(cfg *ClientConfig) { cfg.RequestTimeout = 200 * time.Millisecond },
			script: func(fc *fakeConn) { fc.override(PersistContactList, nil); fc.login("alice") }, want: ErrTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			cfg := testConfig(t, f.addr())
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			ch := dialAsync(cfg)
			tc.script(f.accept())
			c, err := waitDial(t, ch)
			if c != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Dial got (%v, %v), want error %v", c, err, tc.want)
			}
			var le *LoginError
			if isLogin := errors.As(err, &le); isLogin != (tc.want != io.EOF && tc.want != context.DeadlineExceeded && tc.want != ErrTimeout) {
				t.Fatalf("error %v: *LoginError got %v", err, isLogin)
			}
			if le != nil && le.Code != tc.code {
				t.Errorf("LoginError.Code got %d, want %d", le.Code, tc.code)
			}
			if tc.text != "" && err.Error() != tc.text {
				t.Errorf("Error() got %q, want %q", err.Error(), tc.text)
			}
			if strings.Contains(err.Error(), fakePassword) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestClientChooseUserName(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	var suggestions []string
	cfg.ChooseUserName = func(_ context.Context, suggested string) (string, error) {
		suggestions = append(suggestions, suggested)
		if len(suggestions) == 1 {
			return "taken", nil
		}
		return "alice_x", nil
	}
	ch := dialAsync(cfg)
	fc := f.accept()
	var setName string
	fc.override(PersistLookup, func(_ *fakeConn, p *Persist) Dict {
		if p.Body.Str("UserName") == "taken" {
			return Dict{{"UserID", "5"}, {"UserName", "taken"}}
		}
		return p.Body
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
		t.Fatalf("Dial: %v", err)
	}
	if want := []string{"alice", "taken2"}; !reflect.DeepEqual(suggestions, want) {
		t.Errorf("suggestions got %q, want %q", suggestions, want)
	}
	si := fc.expect("setinfo")
	if d, _ := si.Dict("info"); d.Str("UserName") != "alice_x" {
		t.Errorf("setinfo got %s, want UserName=alice_x", si)
	}
	if got := c.Self().UserName; got != "alice_x" {
		t.Errorf("Self().UserName got %q, want alice_x", got)
	}
}

func TestClientIncomingEvents(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, PresenceEvent{UID: 2001, Status: StatusAway, Text: "lunch"}) {
		t.Fatalf("first event got %#v", ev)
	}
	bm := func(typ int, from UID, msg string) *Message {
		return NewInt("bm", typ).AddInt("f", int(from)).AddInt("cv", 697).Add("msg", msg)
	}
	body := `<p><f f='Times' h='16'>a/b\c &amp; <i n="happy"/></f></p>`
	fc.write(bm(BMIM, 1<<31, "from a uid past 31 bits"))
	fc.write(bm(BMIM, 2001, body))
	fc.write(bm(BMIM, 2002, "offline hi").AddInt("date", 1250263988))
	fc.write(New("ka", ""))
	fc.write(bm(BMAction, 2001, markup.Typing))
	fc.write(bm(BMAction, 2001, markup.StopTyping))
	fc.write(bm(BMAction, 2001, markup.ZapSmooch.Payload()))
	fc.write(bm(BMAction, 2001, "<p>web client</p>"))
	fc.write(bm(BMAction, 2001, "!!!ExitChat"))        // group chat: ignored
	fc.write(bm(BMMedia, 2001, ""))                    // ignored
	fc.write(presenceMsg(2002, Status(7), "new code")) // unknown code ⇒ online
	fc.write(ErrorMessage(2, false, "not logged in?"))
	fc.write((&Persist{Cmd: 257, DSN: 7, LID: 18, RID: 99, Body: Dict{{"FriendRequest", "On"}, {"\u0080", ""}}}).Reply())

	before := time.Now()
	wantSeq := []Event{
		ErrorEvent{Unreadable: true, Message: `an IM arrived that could not be read (its sender "2147483648" is no user ID): from a uid past 31 bits`},
		IMEvent{From: 2001, Text: `a/b\c & :)`, Markup: body},
		IMEvent{From: 2002, Text: "offline hi", Markup: "offline hi", Time: time.Unix(1250263988, 0), Offline: true},
		TypingEvent{From: 2001, Typing: true},
		TypingEvent{From: 2001, Typing: false},
		ZapEvent{From: 2001, Zap: markup.ZapSmooch},
		IMEvent{From: 2001, Text: "web client", Markup: "<p>web client</p>", Action: true},
		PresenceEvent{UID: 2002, Status: StatusOnline, Text: "new code"},
		ErrorEvent{Code: 2, Message: "not logged in?"},
		AlertEvent{Alerts: []string{"FriendRequest"}},
	}
	for i, want := range wantSeq {
		got := nextEvent(t, c)
		if im, ok := got.(IMEvent); ok && !im.Offline {
			if im.Time.Before(before.Add(-time.Second)) || im.Time.After(time.Now()) {
				t.Errorf("event %d: receipt time %v not now", i, im.Time)
			}
			im.Time = time.Time{}
			got = im
		}
		if z, ok := got.(ZapEvent); ok {
			if z.Time.Before(before.Add(-time.Second)) || z.Time.After(time.Now()) {
				t.Errorf("event %d: zap's receipt time %v not now", i, z.Time)
			}
			z.Time = time.Time{}
			got = z
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: got %#v, want %#v", i, got, want)
		}
	}
	if got := c.Contacts()[1]; got.Status != StatusOnline || got.StatusText != "new code" {
		t.Errorf("carol after presence got %+v, want online with text", got)
	}
}

func TestClientSends(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	ctx := context.Background()
	text := "hi <b>you</b> & \\final\\ a/b :)\nline two"
	if err := c.SendIM(ctx, 2001, text); err != nil {
		t.Fatal(err)
	}
	m := fc.expect("bm")
	if typ, _ := m.TypeInt(); typ != BMIM || m.StrOr("t", "") != "2001" || m.StrOr("cv", "") != "697" || m.StrOr("sesskey", "") != "424242" {
		t.Errorf("IM got %s, want bm 1 to 2001 with sesskey and cv", m)
	}
	if got := m.StrOr("msg", ""); got != markup.FromPlain(text) || markup.ToPlain(got) != text {
		t.Errorf("IM body got %q, want %q", got, markup.FromPlain(text))
	}
	spans := []markup.Span{{Text: "a ", Style: 0}, {Text: "b/<c>", Style: markup.Bold | markup.Italic}}
	if err := c.SendStyledIM(ctx, 2001, "a \x02\x1db/<c>", spans); err != nil {
		t.Fatal(err)
	}
	m = fc.expect("bm")
	if typ, _ := m.TypeInt(); typ != BMIM || m.StrOr("t", "") != "2001" {
		t.Errorf("styled IM got %s, want bm 1 to 2001", m)
	}
	if got, want := m.StrOr("msg", ""), markup.FromSpans(spans); got != want {
		t.Errorf("styled IM body got %q, want %q", got, want)
	}
	checkBM := func(typ int, msg string) {
		t.Helper()
		m := fc.expect("bm")
		if got, _ := m.TypeInt(); got != typ || m.StrOr("msg", "") != msg || m.StrOr("t", "") != "2002" {
			t.Errorf("got %s, want bm %d to 2002 with %q", m, typ, msg)
		}
	}
	if err := c.SendTyping(ctx, 2002, true); err != nil {
		t.Fatal(err)
	}
	checkBM(BMAction, "%typing%")
	if err := c.SendTyping(ctx, 2002, false); err != nil {
		t.Fatal(err)
	}
	checkBM(BMAction, "%stoptyping%")
	if err := c.SendZap(ctx, 2002, markup.ZapTorch); err != nil {
		t.Fatal(err)
	}
	checkBM(BMAction, "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_2")

	for _, tc := range []struct {
		s    Status
		text string
		wire int
	}{{StatusInvisible, "hidden", 0}, {StatusIdle, "", 2}, {StatusOnline, "back", 1}} {
		if err := c.SetStatus(ctx, tc.s, tc.text); err != nil {
			t.Fatal(err)
		}
		m := fc.expect("status")
		if code, _ := m.TypeInt(); code != tc.wire || m.StrOr("statstring", "x") != tc.text || !m.Has("locstring") {
			t.Errorf("SetStatus(%v) got %s, want status %d", tc.s, m, tc.wire)
		}
	}
	if err := c.SetStatus(ctx, Status(42), ""); err == nil {
		t.Error("SetStatus(42) got nil error")
	}
	if err := c.SendIM(ctx, 0, "x"); err == nil {
		t.Error("SendIM to uid 0 got nil error")
	}
}

// expectSeq checks the types of the next messages the client sent.
func expectSeq(t *testing.T, fc *fakeConn, want ...string) []*Message {
	t.Helper()
	var got []*Message
	for _, w := range want {
		m := fc.next()
		if !m.Is(w) {
			t.Fatalf("client sent %s, want %s", m, w)
		}
		got = append(got, m)
	}
	return got
}

func TestClientBuddyOps(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	ctx := context.Background()
	nextEvent(t, c) // bob's presence
	// Drain what login sent, up to the last login-time lookup.
	fc.expectPersist(PersistProfile)

	if err := c.AddBuddy(ctx, 2004, ""); err != nil {
		t.Fatal(err)
	}
	ms := expectSeq(t, fc, "addbuddy", "persist", "blocklist", "persist")
	if ms[0].StrOr("newprofileid", "") != "2004" || !ms[0].Has("reason") {
		t.Errorf("addbuddy got %s", ms[0])
	}
	p, _ := ParsePersist(ms[1])
	wantRec := Dict{{"ContactID", "2004"}, {"GroupName", "IM Friends"}, {"Position", "1000"}, {"Visibility", "1"}, {"NickName", ""}, {"NameSelect", "0"}}
	if p.Kind() != PersistSetContact || p.Cmd != 514 || !reflect.DeepEqual(p.Body, wantRec) {
		t.Errorf("contact put got %+v, want 514/0/9 %v", p, wantRec)
	}
	if l, _ := ms[2].List("idlist"); !reflect.DeepEqual(l, List{"a+", "2004", "b-", "2004"}) {
		t.Errorf("blocklist got %q", l)
	}
	wantDave := Contact{UID: 2004, UserName: "dave", DisplayName: "Dave", Group: "IM Friends"}
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, ContactEvent{ContactAdded, wantDave}) {
		t.Errorf("event got %#v, want dave added", ev)
	}

	if err := c.RemoveBuddy(ctx, 2004); err != nil {
		t.Fatal(err)
	}
	ms = expectSeq(t, fc, "delbuddy", "persist", "blocklist")
	if p, _ := ParsePersist(ms[1]); p.Cmd != 515 || p.Kind() != PersistDeleteContact || p.Body.Str("ContactID") != "2004" {
		t.Errorf("contact delete got %+v", p)
	}
	if l, _ := ms[2].List("idlist"); !reflect.DeepEqual(l, List{"a-", "2004", "b-", "2004"}) {
		t.Errorf("blocklist got %q", l)
	}
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, ContactEvent{ContactRemoved, wantDave}) {
		t.Errorf("event got %#v, want dave removed", ev)
	}

	if err := c.Block(ctx, 2002); err != nil {
		t.Fatal(err)
	}
	ms = expectSeq(t, fc, "delbuddy", "blocklist", "persist")
	if l, _ := ms[1].List("idlist"); !reflect.DeepEqual(l, List{"a-", "2002", "b+", "2002"}) {
		t.Errorf("blocklist got %q", l)
	}
	if p, _ := ParsePersist(ms[2]); p.Cmd != 514 || !reflect.DeepEqual(p.Body, Dict{{"ContactID", "2002"}, {"Visibility", "2"}}) {
		t.Errorf("block put got %+v", p)
	}
	wantCarol := Contact{UID: 2002, UserName: "carol", DisplayName: "Carol", Blocked: true}
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, ContactEvent{ContactUpdated, wantCarol}) {
		t.Errorf("event got %#v, want carol blocked", ev)
	}

	// Carol was a buddy: unblocked, she is one again, subscribed anew; the
	// presence the server sends with its answer to addbuddy is kept.
	fc.override(PersistSetContact, func(fc *fakeConn, p *Persist) Dict {
		if p.Body.Str("Visibility") == "1" {
			fc.write(presenceMsg(2002, StatusIdle, "back"))
		}
		return p.Body
	})
	if err := c.Allow(ctx, 2002); err != nil {
		t.Fatal(err)
	}
	ms = expectSeq(t, fc, "addbuddy", "persist", "blocklist", "persist")
	if ms[0].StrOr("newprofileid", "") != "2002" {
		t.Errorf("addbuddy got %s", ms[0])
	}
	wantRec = Dict{{"ContactID", "2002"}, {"GroupName", "IM Friends"}, {"Position", "1000"}, {"Visibility", "1"}, {"NickName", ""}, {"NameSelect", "0"}}
	if p, _ := ParsePersist(ms[1]); p.Cmd != 514 || !reflect.DeepEqual(p.Body, wantRec) {
		t.Errorf("unblock put got %+v, want 514/0/9 %v", p, wantRec)
	}
	if l, _ := ms[2].List("idlist"); !reflect.DeepEqual(l, List{"a+", "2002", "b-", "2002"}) {
		t.Errorf("blocklist got %q", l)
	}
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, PresenceEvent{UID: 2002, Status: StatusIdle, Text: "back"}) {
		t.Errorf("event got %#v, want carol's presence", ev)
	}
	wantCarol = Contact{UID: 2002, UserName: "carol", DisplayName: "Carol", Group: "IM Friends", Status: StatusIdle, StatusText: "back"}
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, ContactEvent{ContactUpdated, wantCarol}) {
		t.Errorf("event got %#v, want carol unblocked with her presence", ev)
	}

	// Dave is no longer a contact: blocked and unblocked, he leaves the list.
	if err := c.Block(ctx, 2004); err != nil {
		t.Fatal(err)
	}
	expectSeq(t, fc, "delbuddy", "blocklist", "persist")
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, ContactEvent{ContactAdded, Contact{UID: 2004, Blocked: true}}) {
		t.Errorf("event got %#v, want 2004 blocked", ev)
	}
	if err := c.Allow(ctx, 2004); err != nil {
		t.Fatal(err)
	}
	ms = expectSeq(t, fc, "persist", "blocklist")
	if p, _ := ParsePersist(ms[0]); p.Cmd != 515 || p.Body.Str("ContactID") != "2004" {
		t.Errorf("unblock delete got %+v", p)
	}
	if l, _ := ms[1].List("idlist"); !reflect.DeepEqual(l, List{"a-", "2004", "b-", "2004"}) {
		t.Errorf("blocklist got %q", l)
	}
	if ev := nextEvent(t, c); !reflect.DeepEqual(ev, ContactEvent{ContactRemoved, Contact{UID: 2004, Blocked: true}}) {
		t.Errorf("event got %#v, want 2004 removed", ev)
	}
	var uids []UID
	for _, ct := range c.Contacts() {
		uids = append(uids, ct.UID)
	}
	if want := []UID{2001, 2002, 2003}; !reflect.DeepEqual(uids, want) {
		t.Errorf("Contacts after the edits got %v, want %v", uids, want)
	}
}

func TestClientLookups(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	ctx := context.Background()
	p, err := c.LookupUser(ctx, "bob")
	if err != nil || p.UID != 2001 || p.UserName != "bob" {
		t.Errorf("LookupUser(bob) got (%+v, %v)", p, err)
	}
	if p, err := c.LookupUser(ctx, "bob@example.com"); err != nil || p.UID != 2001 {
		t.Errorf("LookupUser by e-mail got (%+v, %v)", p, err)
	}
	if _, err := c.LookupUser(ctx, "nobody"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("LookupUser(nobody) got %v, want ErrNoSuchUser", err)
	}
	if p, err := c.Profile(ctx, 2004); err != nil || p.UserName != "dave" || p.Age != 30 {
		t.Errorf("Profile(2004) got (%+v, %v)", p, err)
	}
	if _, err := c.Profile(ctx, 9999); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Profile(9999) got %v, want ErrNoSuchUser", err)
	}
	ct, err := c.ContactInfo(ctx, 2002)
	want := Contact{UID: 2002, UserName: "carol", DisplayName: "Carol", Group: "Work", NickName: "cc"}
	if err != nil || ct != want {
		t.Errorf("ContactInfo(2002) got (%+v, %v), want %+v", ct, err, want)
	}
	if _, err := c.ContactInfo(ctx, 9999); !errors.Is(err, ErrNotContact) {
		t.Errorf("ContactInfo(9999) got %v, want ErrNotContact", err)
	}
	if a, err := c.CheckAlerts(ctx); err != nil || !slices.Equal(a, []string{"Mail", "FriendRequest"}) {
		t.Errorf("CheckAlerts got (%q, %v), want Mail, FriendRequest", a, err)
	}

	// An error reply to a lookup is "no such user", with the details.
	fc.override(PersistLookup, func(fc *fakeConn, p *Persist) Dict {
		fc.reply(p, p.Cmd|CmdError, Dict{{"ErrorMessage", "No such user"}})
		return nil
	})
	_, err = c.LookupUser(ctx, "bob")
	var pe *PersistError
	if !errors.Is(err, ErrNoSuchUser) || !errors.As(err, &pe) || pe.Message != "No such user" || pe.DSN != 5 || pe.LID != 7 {
		t.Errorf("LookupUser with an error reply got %v, want ErrNoSuchUser and *PersistError", err)
	}
	// A reply split with mtf is put back together.
	fc.override(PersistAlerts, func(fc *fakeConn, p *Persist) Dict {
		part := &Persist{Cmd: 257, DSN: 7, LID: 18, UID: p.UID, RID: p.RID, Body: Dict{{"Mail", "On"}}}
		fc.write(part.Reply().AddInt("mtf", 1))
		return Dict{{"ProfileComment", "On"}}
	})
	if a, err := c.CheckAlerts(ctx); err != nil || !slices.Equal(a, []string{"Mail", "ProfileComment"}) {
		t.Errorf("CheckAlerts (split reply) got (%q, %v)", a, err)
	}
}

// TestTimedOutReplyIsNoNegativeAnswer: the 2007 server answered requests
// about users that exist (contact info of 6221 and 15187323, capture n 83
// and 84) with an error reply saying it had timed them out. Such a reply
// says nothing of the user: Profile, LookupUser and ContactInfo report a
// timeout (ErrTimeout, with the *PersistError), not ErrNoSuchUser.
func TestTimedOutReplyIsNoNegativeAnswer(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	ctx := context.Background()
	for _, text := range []string{"Request timeout", "Request time elapsed configured has passed."} {
		timedOut := func(fc *fakeConn, p *Persist) Dict {
			fc.reply(p, p.Cmd|CmdError, append(p.Body, Pair{"ErrorMessage", text}))
			return nil
		}
		fc.override(PersistProfile, timedOut)
		fc.override(PersistLookup, timedOut)
		fc.override(PersistContactInfo, timedOut)
		for name, call := range map[string]func() error{
			"Profile":     func() error { _, err := c.Profile(ctx, 2001); return err },
			"LookupUser":  func() error { _, err := c.LookupUser(ctx, "bob"); return err },
			"ContactInfo": func() error { _, err := c.ContactInfo(ctx, 2002); return err },
		} {
			err := call()
			var pe *PersistError
			if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNoSuchUser) || !errors.As(err, &pe) || pe.Message != text {
				t.Errorf("%s answered %q: got %v, want ErrTimeout and the *PersistError, not ErrNoSuchUser", name, text, err)
			}
		}
	}
}

func TestClientPersistErrorAndTimeout(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.RequestTimeout = 400 * time.Millisecond })
	ctx := context.Background()
	fc.override(PersistSetContact, func(fc *fakeConn, p *Persist) Dict {
		fc.reply(p, p.Cmd|CmdError, Dict{{"ErrorMessage", "Too many contacts"}})
		return nil
	})
	var pe *PersistError
	if err := c.AddBuddy(ctx, 2004, "x"); !errors.As(err, &pe) || pe.Message != "Too many contacts" || pe.Cmd != 514|CmdError {
		t.Errorf("AddBuddy got %v, want *PersistError", err)
	}

	lateCh := make(chan *Persist, 1)
	fc.override(PersistProfile, func(_ *fakeConn, p *Persist) Dict { lateCh <- p; return nil })
	start := time.Now()
	_, err := c.Profile(ctx, 2001)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("Profile with no reply got %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v, want about 400ms", d)
	}
	// The late reply is dropped and the session goes on.
	fc.reply(<-lateCh, 257, Dict{{"UserID", "2001"}})
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.LookupUser(ctx2, "bob"); !errors.Is(err, context.Canceled) {
		t.Errorf("LookupUser with a cancelled ctx got %v", err)
	}
	if p, err := c.LookupUser(ctx, "bob"); err != nil || p.UID != 2001 {
		t.Errorf("LookupUser after the timeout got (%+v, %v)", p, err)
	}
}

func TestClientDisconnects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		act    func(fc *fakeConn)
		reason DisconnectReason
		want   error
		dead   time.Duration
	}{
		{"server closes", func(fc *fakeConn) { fc.nc.Close() }, DisconnectNetwork, io.EOF, 0},
		{"server silent", func(fc *fakeConn) {}, DisconnectTimeout, ErrDeadLink, 300 * time.Millisecond},
		{"kicked", func(fc *fakeConn) { fc.write(ErrorMessage(6, true, "You logged in from another location.")) },
			DisconnectKicked, ErrLoggedInElsewhere, 0},
		{"fatal error", func(fc *fakeConn) { fc.write(ErrorMessage(3, true, "Invalid session key")) },
			DisconnectServerError, ErrServer, 0},
		{"garbage", func(fc *fakeConn) { fc.writeRaw("HTTP/1.0 400 Bad Request\r\n") }, DisconnectServerError, ErrNoBackslash, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.DeadAfter = tc.dead })
			fc.override(PersistProfile, nil) // a request is pending when the link goes
			res := make(chan error, 1)
			go func() { _, err := c.Profile(context.Background(), 2001); res <- err }()
			fc.expectPersist(PersistProfile) // login-time lookup
			fc.expectPersist(PersistProfile) // ours: now pending
			tc.act(fc)
			d := waitDisconnect(t, c)
			if d.Reason != tc.reason || !errors.Is(d.Err, tc.want) {
				t.Errorf("DisconnectedEvent got %v (%v), want %v (%v)", d.Reason, d.Err, tc.reason, tc.want)
			}
			select {
			case err := <-res:
				if !errors.Is(err, ErrDisconnected) || !errors.Is(err, tc.want) {
					t.Errorf("pending request got %v, want ErrDisconnected wrapping %v", err, tc.want)
				}
				if strings.Count(err.Error(), "msim:") != 1 {
					t.Errorf("pending request's error %q: want the msim: prefix once", err)
				}
			case <-time.After(waitLimit):
				t.Fatal("pending request not failed after the disconnect")
			}
			if err := c.SendIM(context.Background(), 2001, "x"); !errors.Is(err, ErrDisconnected) {
				t.Errorf("SendIM after the disconnect got %v", err)
			}
			fc.waitEOF()
		})
	}
}

func TestClientEventOverflow(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.EventQueue, cfg.EventBacklog = 1, 4 })
	for i := 0; i < 20; i++ {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", "spam"))
	}
	fc.waitEOF() // the client gave up on its own
	n := 0
	for {
		ev := nextEvent(t, c)
		if d, ok := ev.(DisconnectedEvent); ok {
			if d.Reason != DisconnectOverflow || !errors.Is(d.Err, ErrEventOverflow) {
				t.Errorf("got %v (%v), want overflow", d.Reason, d.Err)
			}
			break
		}
		n++
	}
	if n > 1+1+4 { // channel buffer, the pump's hand, the backlog
		t.Errorf("%d events delivered before the overflow, want at most 6", n)
	}
}

// TestClientClose is not parallel: it checks for leaked goroutines.
func TestClientClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the fakes' cleanups
	func() {
		c, fc := loggedIn(t, nil)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close got %v", err)
		}
		if m := fc.expect("logout"); m.StrOr("sesskey", "") != "424242" {
			t.Errorf("logout got %s", m)
		}
		fc.waitEOF()
		if d := waitDisconnect(t, c); d.Reason != DisconnectClosed || !errors.Is(d.Err, ErrClosed) {
			t.Errorf("got %v (%v), want closed", d.Reason, d.Err)
		}
		if err := c.SendIM(context.Background(), 2001, "x"); !errors.Is(err, ErrClosed) {
			t.Errorf("SendIM after Close got %v, want ErrClosed", err)
		}
		fc.nc.Close()
	}()
	// Close while nobody reads a full Events channel.
	func() {
		c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.EventQueue = 2 })
		for i := 0; i < 50; i++ {
			fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", "unread"))
		}
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", "last"))
		if _, err := c.LookupUser(context.Background(), "bob"); err != nil { // barrier: the IMs were read
			t.Fatal(err)
		}
		c.Close()
		if d := waitDisconnect(t, c); d.Reason != DisconnectClosed {
			t.Errorf("got %v, want closed", d.Reason)
		}
		fc.nc.Close()
	}()
	// Close after the server went away.
	func() {
		c, fc := loggedIn(t, nil)
		fc.nc.Close()
		waitDisconnect(t, c)
		c.Close()
		c.Close()
	}()
}

// TestClientOptionalRepliesMayNeverCome: the 2007 server let some requests
// time out (group list, alerts); a login whose own profile, IM info or group
// list is never answered still succeeds, within the login's time.
func TestClientOptionalRepliesMayNeverCome(t *testing.T) {
	t.Parallel()
	for _, k := range []DSNLID{PersistGroupList, PersistOwnProfile, PersistOwnIMInfo} {
		f := newFake(t)
		cfg := testConfig(t, f.addr())
		cfg.DialTimeout = 2 * time.Second // RequestTimeout stays 30 s: the login bounds the wait
		ch := dialAsync(cfg)
		fc := f.accept()
		fc.override(k, nil)
		fc.login("alice")
		c, err := waitDial(t, ch)
		if err != nil {
			t.Fatalf("%v never answered: Dial got %v, want success", k, err)
		}
		c.Close()
	}
}

// TestClientReplyInPartsBounded: a persist reply whose parts (mtf) pass
// maxReplyBytes fails its request at once, with ErrRepliesTooLarge,
// rather than growing the client's memory for as long as the server goes
// on; the parts after are dropped (not taken for unsolicited replies), and
// the link stays up.
func TestClientReplyInPartsBounded(t *testing.T) {
	t.Parallel()
	// The bound, not the timeout, must end the request: the timeout is
	// long enough for 16 MiB to be read under -race on a busy machine.
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.RequestTimeout = 10 * time.Second })
	ctx := context.Background()
	big := strings.Repeat("x", ClientMaxSize/2)
	fc.override(PersistAlerts, func(fc *fakeConn, p *Persist) Dict {
		for range maxReplyBytes/len(big) + 2 {
			part := &Persist{Cmd: 257, DSN: 7, LID: 18, UID: p.UID, RID: p.RID, Body: Dict{{"Mail", big}}}
			fc.write(part.Reply().AddInt("mtf", 1))
		}
		return Dict{{"Mail", "On"}} // the last part, dropped as the rest
	})
	if _, err := c.CheckAlerts(ctx); !errors.Is(err, ErrRepliesTooLarge) {
		t.Fatalf("CheckAlerts with an endless reply got %v, want ErrRepliesTooLarge", err)
	}
	if _, err := c.Profile(ctx, 2001); err != nil { // answered after the last part
		t.Errorf("Profile after the endless reply: %v", err)
	}
	for {
		select {
		case ev := <-c.Events():
			if _, ok := ev.(AlertEvent); ok {
				t.Errorf("the parts after the bound made an event: %+v", ev)
			}
			continue
		default:
		}
		break
	}
}

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

// TestIMWithAnEmptyKey: a message is a list of pairs read by name (spec
// §1.1), so a pair whose key is empty, which no name finds, spoils nothing
// else: an IM carrying one still reaches the owner, and the messages
// after it too.
func TestIMWithAnEmptyKey(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.closeGrace = time.Millisecond })
	defer c.Close()
	fc.writeRaw(`\bm\1\f\2001\\x\msg\hi there\final\` + `\bm\1\f\2002\msg\next\final\`)
	for _, want := range []IMEvent{{From: 2001, Text: "hi there"}, {From: 2002, Text: "next"}} {
		var ev Event
		for {
			if ev = nextEvent(t, c); SenderOf(ev) != 0 {
				break // past the login's presence and contact events
			}
		}
		if im, ok := ev.(IMEvent); !ok || im.From != want.From || im.Text != want.Text {
			t.Fatalf("got %#v, want the IM %q from %d", ev, want.Text, want.From)
		}
	}
}
