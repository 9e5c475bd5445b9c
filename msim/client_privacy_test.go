package msim

// The client's log holds no IM text: operators read it, and the users
// whose IMs pass the gateway did not write for it.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// logged renders every entry hook holds, its message and fields, as the
// text formatter would show them.
func logged(hook *logtest.Hook) string {
	var b strings.Builder
	for _, e := range hook.AllEntries() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.Data)
	}
	return b.String()
}

// TestBadBMLogsNoText: a buddy message that does not read is logged with
// its type, its sender as it came and the size of its text, never the
// text.
func TestBadBMLogsNoText(t *testing.T) {
	t.Parallel()
	const text = "meet me at the old mill"
	for _, tc := range []struct {
		name string
		m    *Message
		want []string // in the log
	}{
		{"bad sender", NewInt("bm", BMIM).Add("f", "tom").Add("msg", text), []string{"f:tom", "bm:1", fmt.Sprintf("msg_bytes:%d", len(text))}},
		{"no sender", NewInt("bm", BMAction).Add("msg", text), []string{"f:(none)", "bm:121"}},
		{"type past int", New("bm", "99999999999999999999999").AddInt("f", 2001).Add("msg", text), []string{"f:2001", `field "bm"`}},
		{"presence", NewInt("bm", BMStatus).Add("f", "x").Add("msg", "|s|1|ss|"+text), []string{"bm:100", "f:x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, hook := logtest.NewNullLogger()
			c := handlerLog(logrus.NewEntry(l))
			handleRaw(t, c, string(Encode(tc.m)))
			out := logged(hook)
			if strings.Contains(out, "old mill") {
				t.Errorf("got log %q, want no IM text in it", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("got log %q, want %q in it", out, w)
				}
			}
		})
	}
}
