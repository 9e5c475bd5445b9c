package msim

// The client's log holds no IM text: operators read it, and the users
// whose IMs pass the gateway did not write for it.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim/markup"
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

// TestStringHidesIMText: String, the form of a message for the debug
// trace, shows the msg of a buddy message that may be an IM (bm 1, 121,
// an unknown type, a type that does not read) as its size, and keeps the
// other fields, typing markers, zaps and the msg of presence and profile
// messages.
func TestStringHidesIMText(t *testing.T) {
	t.Parallel()
	const text = "meet me at the old mill"
	for _, tc := range []struct {
		name string
		m    *Message
		want string
	}{
		{"IM sent", NewInt("bm", BMIM).AddInt("sesskey", 7).AddInt("t", 2001).AddInt("cv", ClientVersion).Add("msg", text),
			fmt.Sprintf(`\bm\1\sesskey\***\t\2001\cv\%d\msg\<23 bytes>\final\`, ClientVersion)},
		{"offline IM", NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", text).AddInt("date", 1700000000),
			`\bm\1\f\2001\msg\<23 bytes>\date\1700000000\final\`},
		{"action text", NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", text), `\bm\121\f\2001\msg\<23 bytes>\final\`},
		{"unknown type", NewInt("bm", 7).AddInt("f", 2001).Add("msg", text), `\bm\7\f\2001\msg\<23 bytes>\final\`},
		{"type past int", New("bm", "99999999999999999999999").AddInt("f", 2001).Add("msg", text),
			`\bm\99999999999999999999999\f\2001\msg\<23 bytes>\final\`},
		{"escaped text", NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", `a\b/c`), `\bm\1\f\2001\msg\<7 bytes>\final\`},
		{"typing", NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", "%typing%"), `\bm\121\f\2001\msg\%typing%\final\`},
		{"zap", NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3"), `\bm\121\f\2001\msg\!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3\final\`},
		{"presence", NewInt("bm", BMStatus).AddInt("f", 2001).Add("msg", "|s|1|ss|at the old mill"), `\bm\100\f\2001\msg\|s|1|ss|at the old mill\final\`},
		{"no bm", New("status", "1").Add("msg", "at the old mill"), `\status\1\msg\at the old mill\final\`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.m.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTraceHidesIMText: the client's debug trace shows the IMs it reads
// and sends with the size of their text in place of the text, and every
// other field.
func TestTraceHidesIMText(t *testing.T) {
	const (
		in  = "meet me at the old mill"
		out = "bring the lantern"
	)
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		cfg.Log = logrus.NewEntry(l)
		cfg.closeGrace = time.Millisecond
	})
	fc.write(NewInt("bm", BMIM).AddInt("f", 2001).AddInt("cv", ClientVersion).Add("msg", in))
	for {
		if ev, ok := nextEvent(t, c).(IMEvent); ok {
			if ev.Text != in {
				t.Fatalf("got IM %q, want %q", ev.Text, in)
			}
			break
		}
	}
	if err := c.SendIM(context.Background(), 2001, out); err != nil {
		t.Fatal(err)
	}
	fc.expect("bm")
	log := logged(hook)
	for _, text := range []string{in, out, "old mill", "lantern"} {
		if strings.Contains(log, text) {
			t.Errorf("got log %q, want no IM text in it", log)
		}
	}
	for _, want := range []string{
		fmt.Sprintf(`msim <- \bm\1\f\2001\cv\%d\msg\<23 bytes>\final\`, ClientVersion),
		// The IM goes as markup: its size on the wire.
		fmt.Sprintf(`msim -> \bm\1\sesskey\***\t\2001\cv\%d\msg\<%d bytes>\final\`, ClientVersion, len(Escape(markup.FromPlain(out)))),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("got log %q, want %q in it", log, want)
		}
	}
}
