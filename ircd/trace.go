// The debug trace of IRC lines: every line read from a client and every
// line written to it, logged at debug level with its secrets masked and
// the texts of its messages shown as their sizes.

package ircd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
	"gopkg.in/irc.v4"
)

// Masked is what a secret is replaced with in the trace.
const Masked = "***"

// Directions of a traced line, as the MSIM trace writes them.
const (
	traceIn  = "<-" // read from the client
	traceOut = "->" // written to the client
)

// saslMechanisms are the AUTHENTICATE arguments that are not secret besides
// "+" (an empty payload) and "*" (abort): mechanism names.
var saslMechanisms = []string{"PLAIN", "EXTERNAL", "ANONYMOUS", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// tracing reports whether lines are traced now: Config.TraceLines, and the
// server's logger at debug level. The level is read each time, so a logger
// changed at run time takes effect at once; nothing else is done (no line
// formatted) when this is false.
func (c *Client) tracing() bool {
	return c.srv.cfg.TraceLines && c.srv.log.Logger.IsLevelEnabled(logrus.DebugLevel)
}

// traceLog is the entry trace lines go to: the connection's fields and,
// once it has registered, its nick. It also returns the nick, for echoes.
// Callers hold no lock.
func (c *Client) traceLog() (*logrus.Entry, string) {
	c.mu.Lock()
	nick, welcomed := c.nick, c.welcomed
	c.mu.Unlock()
	log := c.logger()
	if welcomed {
		log = log.WithField("nick", nick)
	}
	return log, nick
}

// traceRead logs one line read from the client (without its CR LF), masked.
// A line that does not parse is logged as it came: it has no command, so it
// carries none of the secrets masked.
func (c *Client) traceRead(seg []byte) {
	log, _ := c.traceLog()
	line := string(seg)
	if m, err := parseLine(line); err == nil {
		if r := c.srv.redact(m, true); r != m {
			line = r.String()
		}
	}
	log.Debug("irc ", traceIn, " ", line)
}

// traceWritten logs the lines of a batch written to the client, masked.
func (c *Client) traceWritten(batch []entry) {
	log, nick := c.traceLog()
	self := Nick(nick).Key()
	for _, e := range batch {
		m := e.m
		if e.raw != nil {
			// Only the lines of the world's virtual users and the
			// server's (numerics among them) are queued encoded; they
			// parse back, though a numeric echoing an empty parameter
			// of the client's loses it in the trace (not on the wire).
			var err error
			if m, err = parseLine(string(e.raw)); err != nil {
				log.Debug("irc ", traceOut, " (a line that does not parse)")
				continue
			}
		}
		if m == nil {
			continue
		}
		// The client's own lines coming back (echo-message) are the
		// backend's to mask as well.
		echo := m.Prefix != nil && Nick(m.Name).Key() == self
		log.Debug("irc ", traceOut, " ", c.srv.redact(m, echo).String())
	}
}

// redact returns m as it may be logged: ircd's own masks first (PASS,
// AUTHENTICATE payloads, OPER passwords, NickServ commands), then, when
// backend is set, Config.Redact. The text of a PRIVMSG or NOTICE is shown
// as its size (hideText), masked or not: it is a user's message, or a
// command to the gateway that may be one (an IM typed in a control channel
// as "nick: text" looks like a command), and the users did not write for
// the log. It returns m itself when nothing changed, and never modifies m.
func (s *Server) redact(m *irc.Message, backend bool) *irc.Message {
	m = maskLine(m)
	if backend && s.cfg.Redact != nil {
		if r := s.cfg.Redact(m); r != nil {
			m = r
		}
	}
	return hideText(m)
}

// hideText returns m with the text of a PRIVMSG or NOTICE (its parameters
// after the target, as one) replaced by its size, "<N bytes>"; m itself
// for any other line.
func hideText(m *irc.Message) *irc.Message {
	if m == nil || len(m.Params) < 2 || !strings.EqualFold(m.Command, "PRIVMSG") && !strings.EqualFold(m.Command, "NOTICE") {
		return m
	}
	out := *m
	out.Params = []string{m.Params[0], fmt.Sprintf("<%d bytes>", len(strings.Join(m.Params[1:], " ")))}
	return &out
}

// maskLine masks the secrets ircd knows of in a line, for a log: the
// argument of PASS, the payload of AUTHENTICATE (mechanism names, "+" and
// "*" are kept), the password of OPER, and everything after the first word
// of a command to NickServ (a client's automatic IDENTIFY), whether sent
// as PRIVMSG/NOTICE NickServ or as the NICKSERV and NS commands. It returns
// m itself when there is nothing to mask, and never modifies m.
func maskLine(m *irc.Message) *irc.Message {
	if m == nil {
		return nil
	}
	switch strings.ToUpper(m.Command) {
	case "PASS":
		return maskParams(m, 0)
	case "AUTHENTICATE":
		if len(m.Params) == 1 && (m.Params[0] == "+" || m.Params[0] == "*" || isMechanism(m.Params[0])) {
			return m
		}
		if len(m.Params) > 0 && isMechanism(m.Params[0]) {
			return maskParams(m, 1)
		}
		return maskParams(m, 0)
	case "OPER":
		return maskParams(m, 1)
	case "NICKSERV", "NS":
		return maskWords(m, 0)
	case "PRIVMSG", "NOTICE":
		if len(m.Params) > 1 && toNickServ(m.Params[0]) {
			return maskWords(m, 1)
		}
	}
	return m
}

func isMechanism(s string) bool {
	return slices.ContainsFunc(saslMechanisms, func(mech string) bool { return strings.EqualFold(s, mech) })
}

// toNickServ reports whether a message's targets include NickServ.
func toNickServ(targets string) bool {
	for t := range strings.SplitSeq(targets, ",") {
		if i := strings.IndexAny(t, "!@"); i > 0 {
			t = t[:i]
		}
		if strings.EqualFold(t, "NickServ") {
			return true
		}
	}
	return false
}

// maskParams returns m with its parameters from i on replaced by one
// Masked; m itself if it has none there.
func maskParams(m *irc.Message, i int) *irc.Message {
	if len(m.Params) <= i {
		return m
	}
	out := *m
	out.Params = append(slices.Clone(m.Params[:i]), Masked)
	return &out
}

// maskWords returns m with its parameters from i on joined and all of them
// but the first word replaced by one Masked ("IDENTIFY ***"); m itself if
// there is no second word.
func maskWords(m *irc.Message, i int) *irc.Message {
	if len(m.Params) <= i {
		return m
	}
	words := strings.Fields(strings.Join(m.Params[i:], " "))
	if len(words) < 2 {
		return m
	}
	out := *m
	out.Params = append(slices.Clone(m.Params[:i]), words[0]+" "+Masked)
	return &out
}
