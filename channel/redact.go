// Masking the passwords of control commands in the IRC debug trace.

package channel

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/msimircd/msimircd/ircd"
	"gopkg.in/irc.v4"
)

// RedactLine returns m as it may be logged (ircd.Config.Redact): when m is
// a PRIVMSG or NOTICE to the service nick or to a channel (the control
// channels), the password words of a control command in it are replaced by
// ircd.Masked and the rest is kept: register, identify and drop (everything
// after the command), account add msim <e-mail> (everything after the
// e-mail), and account … set password and set password (everything after
// password). The command is found as the bridge finds it, after a
// "nick: " address, and inside CTCP framing too; case and spacing do not
// matter. Text split over several parameters (no ':') counts as one. It
// returns m itself when there is nothing to mask, and never modifies m.
func (b *Bridge) RedactLine(m *irc.Message) *irc.Message {
	return redactLine(b.cfg.ServiceNick, m)
}

func redactLine(service string, m *irc.Message) *irc.Message {
	if m == nil || len(m.Params) < 2 || !strings.EqualFold(m.Command, "PRIVMSG") && !strings.EqualFold(m.Command, "NOTICE") {
		return m
	}
	if !toControl(service, m.Params[0]) {
		return m
	}
	text := strings.Join(m.Params[1:], " ")
	masked, ok := redactCommand(text)
	if !ok {
		return m
	}
	out := *m
	out.Params = []string{m.Params[0], masked}
	return &out
}

// toControl reports whether one of a message's targets is the service nick
// or a channel. Status prefixes (@&chan) and user@host forms count too:
// the trace masks whatever might reach the bridge.
func toControl(service, targets string) bool {
	for t := range strings.SplitSeq(targets, ",") {
		t = strings.TrimLeft(t, "@+")
		if isChannelName(t) {
			return true
		}
		if i := strings.IndexAny(t, "!@"); i > 0 {
			t = t[:i]
		}
		if nickKey(t) == nickKey(service) {
			return true
		}
	}
	return false
}

// word is a word of a command line: text[start:end].
type word struct{ start, end int }

// words splits text[lo:hi] into words at white space, as strings.Fields
// (and so the command parser) does.
func words(text string, lo, hi int) []word {
	var ws []word
	start := -1
	for i := lo; i < hi; {
		r, n := utf8.DecodeRuneInString(text[i:hi])
		if unicode.IsSpace(r) {
			if start >= 0 {
				ws = append(ws, word{start, i})
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += n
	}
	if start >= 0 {
		ws = append(ws, word{start, hi})
	}
	return ws
}

// redactCommand masks the password of the control command in text; false
// if there is none.
func redactCommand(text string) (string, bool) {
	lo, hi := 0, len(text)
	if strings.HasPrefix(text, "\x01") { // CTCP, such as /me identify …
		lo++
		if hi > lo && text[hi-1] == '\x01' {
			hi--
		}
	}
	ws := words(text, lo, hi)
	if len(ws) > 0 && lo > 0 && strings.EqualFold(text[ws[0].start:ws[0].end], "ACTION") {
		ws = ws[1:]
	}
	if len(ws) == 0 {
		return text, false
	}
	from := secretFrom(text, ws)
	if from < 0 {
		// "nick: command …", or "nick:command …"
		first := text[ws[0].start:ws[0].end]
		i := strings.IndexAny(first, ":,")
		if i <= 0 {
			return text, false
		}
		rest := ws[1:]
		if ws[0].start+i+1 < ws[0].end {
			rest = append([]word{{ws[0].start + i + 1, ws[0].end}}, rest...)
		}
		ws = rest
		if from = secretFrom(text, ws); from < 0 {
			return text, false
		}
	}
	return text[:ws[from].start] + ircd.Masked + text[ws[len(ws)-1].end:], true
}

// secretFrom returns the index of the first word of ws that is a password
// of the command ws starts with, or -1 if it has none.
func secretFrom(text string, ws []word) int {
	if len(ws) == 0 {
		return -1
	}
	w := func(i int) string { return strings.ToLower(text[ws[i].start:ws[i].end]) }
	from := -1
	switch w(0) {
	case "register", "drop":
		from = 1
	case "identify":
		from = 1
		for from < len(ws)-1 && (w(from) == "-noload" || w(from) == "-force") {
			from++
		}
	case "account":
		if len(ws) > 1 && w(1) == "add" {
			from = 2
			if from < len(ws) && (w(from) == "msim" || w(from) == "myspace") {
				from++
			}
			if from < len(ws)-1 && strings.Contains(w(from), "@") {
				from++ // the e-mail, when something follows it
			}
			break
		}
		fallthrough
	case "set":
		if i := slices.IndexFunc(ws[1:], func(x word) bool { return strings.EqualFold(text[x.start:x.end], "password") }); i >= 0 {
			from = i + 2
		}
	}
	if from >= len(ws) {
		return -1
	}
	return from
}
