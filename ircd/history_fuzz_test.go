package ircd

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

// FuzzHistoryArgs feeds CHATHISTORY and MARKREAD lines to their argument
// parsers: nothing may panic, a failure must be one of the spec's codes
// with parameters that survive a round trip on the wire, and what is
// accepted must be a well-formed request.
func FuzzHistoryArgs(f *testing.F) {
	for _, s := range []string{
		"CHATHISTORY LATEST tom * 10",
		"CHATHISTORY LATEST #chan timestamp=2024-05-06T07:08:09.010Z 50",
		"CHATHISTORY BEFORE tom msgid=abc 5",
		"CHATHISTORY AFTER tom timestamp=2024-05-06T07:08:09Z 1",
		"CHATHISTORY AROUND tom msgid=a-2 3",
		"CHATHISTORY BETWEEN tom msgid=a timestamp=2024-05-06T07:08:09.010+02:00 9",
		"CHATHISTORY TARGETS timestamp=2024-05-06T00:00:00.000Z timestamp=2024-05-07T00:00:00.000Z 10",
		"CHATHISTORY FOO tom * 10",
		"CHATHISTORY LATEST tom * :1 0",
		"CHATHISTORY BEFORE tom msgid=:x -1",
		"CHATHISTORY",
		"MARKREAD tom timestamp=2024-05-06T07:08:09.010Z",
		"MARKREAD tom",
		"MARKREAD tom *",
		"MARKREAD :",
		"MARKREAD tom timestamp=x extra",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseLine(line)
		if err != nil {
			return
		}
		var fail *stdFail
		switch m.Command {
		case "CHATHISTORY":
			hc, fl := parseChathistory(m.Params, 50)
			fail = fl
			if fl == nil {
				checkHistoryCmd(t, line, hc)
			}
		case "MARKREAD":
			target, at, set, fl := parseMarkread(m.Params)
			fail = fl
			if fl == nil && (target == "" || set == at.IsZero()) {
				t.Fatalf("%q: got target %q, time %v, set %v", line, target, at, set)
			}
		default:
			return
		}
		if fail == nil {
			return
		}
		codes := []string{"INVALID_PARAMS", "NEED_MORE_PARAMS"}
		if !slices.Contains(codes, fail.code) || len(fail.params) == 0 {
			t.Fatalf("%q: got failure %+v", line, fail)
		}
		out := msg(&irc.Prefix{Name: testServer}, "FAIL", append([]string{m.Command, fail.code}, fail.params...)...)
		back, err := irc.ParseMessage(out.String())
		if err != nil || !slices.Equal(back.Params, out.Params) {
			t.Fatalf("%q: FAIL %q does not survive the wire: %v", line, out, err)
		}
	})
}

// checkHistoryCmd checks an accepted CHATHISTORY request.
func checkHistoryCmd(t *testing.T, line string, hc historyCmd) {
	t.Helper()
	if hc.limit < 1 || hc.limit > 50 {
		t.Fatalf("%q: got limit %d", line, hc.limit)
	}
	refOK := func(r HistoryRef) bool {
		return r.IsZero() || (r.Time.IsZero() != (r.MsgID == "")) && (r.MsgID == "" || validMsgID(r.MsgID))
	}
	switch hc.sub {
	case "TARGETS":
		if hc.target != "" || hc.from.Time.IsZero() || hc.to.Time.IsZero() {
			t.Fatalf("%q: got %+v", line, hc)
		}
	case "LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN":
		if hc.target == "" || !refOK(hc.from) || !refOK(hc.to) || (hc.from.IsZero() && hc.sub != "LATEST") ||
			(hc.to.IsZero() == (hc.sub == "BETWEEN")) {
			t.Fatalf("%q: got %+v", line, hc)
		}
		if p := safeParam(hc.target); p[0] == ':' || strings.ContainsAny(p, " \r\n\x00") {
			t.Fatalf("%q: target %q repeated as %q", line, hc.target, p)
		}
	default:
		t.Fatalf("%q: got subcommand %q", line, hc.sub)
	}
}
