package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/internal/capture"
)

func loadCapture(t testing.TB) []capture.Message {
	t.Helper()
	msgs, err := capture.Messages()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// The identities of the capture's second session.
const (
	capKey      = "267577152"
	capUID      = "3656574"
	capTestUser = "15187323"
)

// captureBodyKeys returns the keys of the body items the capture holds in
// full (a truncated message's last item is left out).
func captureBodyKeys(wire string) []string {
	_, body, ok := strings.Cut(wire, `\body\`)
	if !ok {
		return nil
	}
	complete := strings.HasSuffix(body, `\final\`)
	body = strings.TrimSuffix(body, `\final\`)
	items := strings.Split(body, "\x1c")
	if !complete {
		items = items[:len(items)-1]
	}
	var keys []string
	for _, it := range items {
		if k, _, ok := strings.Cut(it, "="); ok && k != "\u0080" {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestCaptureReplay replays the client side of the capture's second session
// (every complete client message, with the session key and uids of this
// server) and checks that each reply has the shape of the 2007 server's:
// the same first key, the same cmd/dsn/lid/rid, and the same body keys.
func TestCaptureReplay(t *testing.T) {
	srv, addr := startServer(t, Config{Demo: true}, NewMemStore())
	uid := addAccount(t, srv, "myspace@xyzzy.cjb.net", "Secret1", "shellreef")
	testUID := addAccount(t, srv, "testuser@example.com", "pw", "testuser")
	err := srv.store.UpdateAccount(testUID, func(a *Account) error { a.DisplayName = "testuserguy"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	capt := loadCapture(t)
	byN := func(n int) capture.Message { return capt[n] }

	c := dial(t, addr)
	lc := c.tryLogin("myspace@xyzzy.cjb.net", "Secret1")
	want, _ := msim.ParseMessage([]byte(byN(27).Wire))
	sameKeys(t, "lc 2", lc, want, false)
	if p, _ := lc.Str("proof"); p != "shellreef" || c.nick != "shellreef" {
		t.Errorf("proof/uniquenick: got %q/%q, want shellreef (as in the capture)", p, c.nick)
	}

	subst := strings.NewReplacer(capKey, itoa(c.key), capUID, uid.String(), capTestUser, testUID.String())
	// Which capture message shows the 2007 server's answer to each request
	// (by client n); requests absent from this map get no reply.
	replies := map[int][]int{
		29: {36}, 30: {32, 35}, 33: {38}, 34: {9}, 39: {77}, 40: {76}, 45: {46}, 47: {48},
		49: {52, 53}, 55: {77}, 57: {59}, 60: {64}, 61: {65}, 66: {77}, 67: {80}, 68: {81},
		70: {73}, 71: {72}, 74: {76}, 75: {77}, 78: {80}, 79: {81},
	}
	replayed := 0
	for _, cm := range capt {
		if cm.Session != 2 || cm.Dir != "client" || !cm.Complete || cm.N == 26 {
			continue
		}
		req, err := msim.ParseMessage([]byte(subst.Replace(cm.Wire)))
		if err != nil {
			t.Fatalf("n %d: %v", cm.N, err)
		}
		c.send(req)
		replayed++
		for _, rn := range replies[cm.N] {
			wantMsg, err := msim.ParseMessage([]byte(completeWire(byN(rn).Wire)))
			if err != nil {
				t.Fatalf("capture n %d: %v", rn, err)
			}
			got := c.expect("reply to n "+itoa(cm.N), sameKind(req, wantMsg))
			sameKeys(t, "reply to n "+itoa(cm.N), got, wantMsg, !byN(rn).Complete)
			// Alerts (n 76) depend on what happened to the account.
			if keys := captureBodyKeys(byN(rn).Wire); keys != nil && rn != 76 {
				body, _ := got.Dict("body")
				for _, k := range keys {
					if _, ok := body.Get(k); !ok {
						t.Errorf("reply to n %d: body lacks %s (capture n %d has it): %v", cm.N, k, rn, body)
					}
				}
			}
			checkCaptureValues(t, rn, got)
		}
	}
	if replayed != 29 {
		t.Errorf("replayed %d client messages, want all 29 complete ones after login2", replayed)
	}
	c.sync()
	none(t, c.takeSeen(), "error", func(m *msim.Message) bool { return m.Is("error") })
}

// completeWire closes a truncated capture message at its last complete field
// so it can be parsed for its first key and header fields.
func completeWire(w string) string {
	if strings.HasSuffix(w, `\final\`) {
		return w
	}
	i := strings.LastIndex(w, `\body\`)
	if i < 0 {
		i = strings.LastIndexByte(w, '\\')
	}
	return w[:i] + `\final\`
}

// sameKind matches the reply to req that corresponds to the capture's want.
func sameKind(req, want *msim.Message) func(*msim.Message) bool {
	return func(m *msim.Message) bool {
		if m.Type() != want.Type() {
			return false
		}
		switch {
		case m.Is("persistr"):
			p, err := msim.ParsePersist(m)
			wp, _ := msim.ParsePersist(want)
			if wp.Kind() == msim.PersistWebChallenge {
				return err == nil && p.Kind() == wp.Kind()
			}
			rid, _ := req.Int("rid")
			return err == nil && p.RID == rid
		case m.Is("bm"):
			t1, _ := m.TypeInt()
			t2, _ := want.TypeInt()
			return t1 == t2
		}
		return true
	}
}

// sameKeys checks the first key and the header fields of a reply against
// the capture: the same keys in the same order (for a truncated capture
// message, as far as it goes), and for persistr the same cmd, dsn and lid.
func sameKeys(t *testing.T, what string, got, want *msim.Message, truncated bool) {
	t.Helper()
	var gk, wk []string
	for _, f := range got.Fields() {
		gk = append(gk, f.Key)
	}
	for _, f := range want.Fields() {
		wk = append(wk, f.Key)
	}
	if truncated && len(gk) > len(wk) {
		gk = gk[:len(wk)]
	}
	if !slices.Equal(gk, wk) {
		t.Errorf("%s: keys %v, want %v (capture)", what, gk, wk)
	}
	if got.Is("persistr") {
		p, _ := msim.ParsePersist(got)
		wp, _ := msim.ParsePersist(want)
		if p.Kind() != wp.Kind() || p.Cmd != wp.Cmd {
			t.Errorf("%s: cmd %d dsn %d lid %d, want cmd %d dsn %d lid %d", what, p.Cmd, p.DSN, p.LID, wp.Cmd, wp.DSN, wp.LID)
		}
	}
}

// checkCaptureValues checks values the capture fixes for the demo network.
func checkCaptureValues(t *testing.T, n int, got *msim.Message) {
	t.Helper()
	switch n {
	case 35:
		if m, _ := got.Raw("msg"); m != "|s|1|ss|:-)|ls||ip|0|p|0" {
			t.Errorf("Tom's presence: got %q, want the capture's", m)
		}
	case 53:
		if m, _ := got.Raw("msg"); m != "|s|0|ss|Offline" {
			t.Errorf("offline presence: got %q, want |s|0|ss|Offline", m)
		}
	case 64:
		body, _ := got.Dict("body")
		for _, kv := range [][2]string{{"UserID", "6221"}, {"DisplayName", "Tom"}, {"UserName", "tom"}, {"BandName", "Sherwood"}, {"SongName", "The Only Song"}} {
			if body.Str(kv[0]) != kv[1] {
				t.Errorf("Tom's profile %s: got %q, want %q", kv[0], body.Str(kv[0]), kv[1])
			}
		}
	case 73:
		body, _ := got.Dict("body")
		if len(body) != 1 || body.Str("UserName") != "testuser2222222222" {
			t.Errorf("lookup of a nonexistent user: got %v, want only the echoed UserName", body)
		}
	case 46:
		body, _ := got.Dict("body")
		if body.Str("DisplayName") != "testuserguy" || body.Str("ImageURL") != noPic {
			t.Errorf("lookup of testuser: got %v", body)
		}
	}
}

func itoa[T ~int](n T) string { return msim.UID(n).String() }
