package cluster

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// TestDeliverCodec: a deliver payload reads back as written; truncated or
// out-of-range input is an error. Between nodes of before and after the
// deadline, a request is dropped or refused, never delivered garbled: an
// older node reads the deadline as a sender uid out of range, and a
// request without a deadline reads as one long past it.
func TestDeliverCodec(t *testing.T) {
	wire := []byte(`\bm\1\f\1000000\msg\hi\final\`)
	deadline := time.Unix(1700000000, 123456789)
	b := encodeDeliver(deadline, 1000000, wire)
	if b[0] != opDeliver {
		t.Fatalf("got op %q, want %q", b[0], opDeliver)
	}
	d, from, got, err := decodeDeliver(b[1:])
	if err != nil || !d.Equal(deadline) || from != 1000000 || !bytes.Equal(got, wire) {
		t.Errorf("got %v %d %q %v, want %v 1000000 %q nil", d, from, got, err, deadline, wire)
	}
	if first, _ := binary.Uvarint(b[1:]); first <= maxUID {
		t.Errorf("the deadline reads as uid %d to an older node, want one out of range", first)
	}
	older := append(binary.AppendUvarint(nil, 1000000), wire...) // sender uid, bm
	if d, from, got, err := decodeDeliver(older); err == nil {
		t.Errorf("a request without a deadline reads as deadline %v, from %d, bm %q; want an error", d, from, got)
	}
	at := func(deadline, uid uint64, rest ...byte) []byte {
		return append(binary.AppendUvarint(binary.AppendUvarint(nil, deadline), uid), rest...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"no sender", binary.AppendUvarint(nil, 5)},
		{"no message", encodeDeliver(deadline, 5, nil)[1:]},
		{"not a bm", at(5, 5, 'b', 'm')},
		{"uid zero", at(5, 0, wire...)},
		{"uid too large", at(5, 1<<40, wire...)},
		{"deadline too large", at(1<<63, 5, wire...)},
		{"truncated deadline", []byte{0x80}},
		{"truncated uid", append(binary.AppendUvarint(nil, 5), 0x80)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := decodeDeliver(tc.in); err == nil {
				t.Errorf("decodeDeliver(%q): got no error, want one", tc.in)
			}
		})
	}
}

// TestStateCodec: a state reads back as written, and is refused for
// another uid, without a node, or when it does not parse.
func TestStateCodec(t *testing.T) {
	st := &server.PeerState{
		UID: 7, Version: server.Version{Epoch: 42, Node: "n1-ab"}, Seq: 3, Online: true, Announced: true,
		Presence: msim.Presence{Status: msim.StatusAway, Text: "lunch"}, Hide: []msim.UID{9}, OnlyList: true, Listed: []msim.UID{8},
	}
	got, err := decodeState(encodeState(st), 7)
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != st.UID || got.Version != st.Version || got.Seq != st.Seq || got.Presence.Text != "lunch" ||
		!got.Online || !got.Announced || !got.OnlyList || len(got.Hide) != 1 || len(got.Listed) != 1 {
		t.Errorf("got %+v, want %+v", got, st)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		uid  msim.UID
	}{
		{"other uid", encodeState(st), 8},
		{"no node", []byte(`{"uid":7}`), 7},
		{"negative uid", []byte(`{"uid":-7,"Node":"x"}`), 0},
		{"not JSON", []byte(`{"uid":`), 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeState(tc.in, tc.uid); err == nil {
				t.Errorf("decodeState(%s): got no error, want one", tc.in)
			}
		})
	}
}

// TestSubjects: subject names and the uid read back from them; prefixes
// with wildcards or empty tokens are refused.
func TestSubjects(t *testing.T) {
	p := subjects("msimd")
	for _, tc := range []struct{ got, want string }{
		{p.user(1000000), "msimd.u.1000000"},
		{p.presence(6221), "msimd.p.6221"},
		{p.heartbeat(), "msimd.hb"},
		{p.fence(), "msimd.fence"},
		{p.alert(), "msimd.alert"},
	} {
		if tc.got != tc.want {
			t.Errorf("got subject %q, want %q", tc.got, tc.want)
		}
	}
	if uid, err := uidOf("msimd.p.6221"); err != nil || uid != 6221 {
		t.Errorf("uidOf: got %d %v, want 6221", uid, err)
	}
	for _, s := range []string{"msimd.p.x", "msimd.p.0", "msimd.p.-1", "msimd.p.99999999999", "msimd.p.+6221", "msimd.p.06221"} {
		if _, err := uidOf(s); err == nil {
			t.Errorf("uidOf(%q): got no error, want one", s)
		}
	}
	for prefix, ok := range map[string]bool{"msimd": true, "net.a": true, "": false, "a..b": false, "a.*": false, "a.>": false, "a b": false} {
		if got := validPrefix(prefix); got != ok {
			t.Errorf("validPrefix(%q) = %v, want %v", prefix, got, ok)
		}
	}
}

// FuzzDecode: no cluster message, however malformed, panics a decoder,
// and what one accepts is well formed. Every decoder of a payload, a reply
// or a subject is here.
func FuzzDecode(f *testing.F) {
	v := server.Version{Epoch: 1, Node: "n"}
	st := &server.PeerState{UID: 7, Version: v}
	f.Add(encodeDeliver(time.Unix(1700000000, 0), 1000000, []byte(`\bm\1\f\1000000\msg\hi\final\`)))
	f.Add(encodeState(st))
	f.Add(encodeJSON(opAlert, alertMsg{UID: 7, Key: "FriendRequest", Node: "n"}))
	f.Add(encodeJSON(opAlertTaken, alertMsg{UID: 7, Node: "n"}))
	f.Add(encodeJSON(opKick, v))
	f.Add(encodeJSON(opHandOn, handOnMsg{To: v, State: st}))
	f.Add(encodeJSON(opHeartbeat, beat{Node: "n-01234567"}))
	f.Add(encodeJSON(opBye, beat{Node: "n-01234567"}))
	f.Add([]byte("msimd.u.1000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, from, wire, err := decodeDeliver(b); err == nil && (d.UnixNano() < 0 || from <= 0 || from > maxUID || len(wire) == 0 || wire[0] != '\\') {
			t.Fatalf("decodeDeliver(%q) = %v %d %q, want an error", b, d, from, wire)
		}
		if st, err := decodeState(b, 0); err == nil && (st.UID <= 0 || st.UID > maxUID || st.Node == "") {
			t.Fatalf("decodeState(%q) = %+v, want an error", b, st)
		}
		if v, err := decodeVersion(b); err == nil && v.Node == "" {
			t.Fatalf("decodeVersion(%q) = %+v, want an error", b, v)
		}
		if len(b) > 0 {
			uid := msim.UID(b[0]) + 1
			if to, st, err := decodeHandOn(b[1:], uid); err == nil && (to.Node == "" || st == nil || st.UID != uid || st.Node == "") {
				t.Fatalf("decodeHandOn(%q, %d) = %+v %+v, want an error", b[1:], uid, to, st)
			}
		}
		if op, bt, err := decodeBeat(b); err == nil && (op != opHeartbeat && op != opBye || bt.Node == "") {
			t.Fatalf("decodeBeat(%q) = %q %+v, want an error", b, op, bt)
		}
		if op, a, err := decodeAlert(b); err == nil && (a.UID <= 0 || a.UID > maxUID || op != opAlertTaken && (op != opAlert || a.Key == "")) {
			t.Fatalf("decodeAlert(%q) = %q %+v, want an error", b, op, a)
		}
		// A subject's uid is its last token, written as NATS routes it:
		// one subject per user.
		if uid, err := uidOf(string(b)); err == nil {
			if want := subjects("msimd").user(uid); uid <= 0 || uid > maxUID || !strings.HasSuffix(string(b), want[len("msimd.u"):]) && string(b) != want[len("msimd.u."):] {
				t.Fatalf("uidOf(%q) = %d, want an error", b, uid)
			}
		}
	})
}

// TestLiveness steps the liveness table by hand: peers die after
// deadAfter of silence, a dead peer stays dead (and must be fenced), this
// node is lost after fenceAfter without a flushed heartbeat, and refresh
// and reset void the judgement of a node that was cut off.
func TestLiveness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	l := newLiveness(5*time.Second, 4*time.Second, t0)
	l.heard("a", t0)
	l.heard("b", at(3*time.Second))
	steps := []struct {
		name string
		do   func() any
		want any
	}{
		{"both alive at 4s", func() any { return len(l.sweep(at(4 * time.Second))) }, 0},
		{"a dead at 5s", func() any { return l.sweep(at(5 * time.Second)) }, []string{"a"}},
		{"a heard again: must fence", func() any { return l.heard("a", at(6*time.Second)) }, false},
		{"a still dead", func() any { return l.count() }, 1},
		{"not lost at 3s", func() any { return l.lost(at(3 * time.Second)) }, false},
		{"lost at 4s", func() any { return l.lost(at(4 * time.Second)) }, true},
		{"refreshed after a cut: b not dead at 9s", func() any { l.refresh(at(7 * time.Second)); return len(l.sweep(at(9 * time.Second))) }, 0},
		{"b says goodbye", func() any { return l.bye("b", at(9*time.Second)) }, true},
		{"no peers left", func() any { return l.count() }, 0},
		{"reset forgets the dead", func() any { l.reset(at(10 * time.Second)); return l.heard("a", at(10*time.Second)) }, true},
		{"a dead again at 20s", func() any { return l.sweep(at(20 * time.Second)) }, []string{"a"}},
		{"and told to fence", func() any { return l.heard("a", at(21*time.Second)) }, false},
		{"dead names forgotten in time", func() any {
			later := at(20*time.Second + forgetAfter*5*time.Second)
			l.sweep(later)
			return l.heard("a", later)
		}, true},
	}
	for _, s := range steps {
		got := s.do()
		if gs, ok := got.([]string); ok {
			if len(gs) != 1 || gs[0] != s.want.([]string)[0] {
				t.Errorf("%s: got %v, want %v", s.name, gs, s.want)
			}
			continue
		}
		if got != s.want {
			t.Errorf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}
