// Read markers (IRCv3 draft/read-marker): the MARKREAD command, the marker
// sent with a JOIN, and SendReadMarker for the backend to sync a user's
// clients.

package ircd

import (
	"time"

	"gopkg.in/irc.v4"
)

// parseMarkread parses MARKREAD's parameters: the target, and for a set
// the timestamp (set reports which). Errors are the spec's failures.
func parseMarkread(params []string) (target string, t time.Time, set bool, f *stdFail) {
	switch {
	case len(params) == 0 || params[0] == "":
		return "", time.Time{}, false, &stdFail{"NEED_MORE_PARAMS", []string{"Missing parameters"}}
	case len(params) > 2:
		return "", time.Time{}, false, &stdFail{"INVALID_PARAMS", []string{safeParam(params[2]), "Invalid parameters"}}
	case len(params) == 1:
		return params[0], time.Time{}, false, nil
	}
	t, ok := parseTimestamp(params[1])
	if !ok {
		return "", time.Time{}, false, &stdFail{"INVALID_PARAMS", []string{safeParam(params[1]), "Invalid parameters"}}
	}
	return params[0], t, true, nil
}

// markreadMsg is the server's MARKREAD for target: its timestamp, or "*".
func (c *Client) markreadMsg(target string, t time.Time) *irc.Message {
	ts := "*"
	if !t.IsZero() {
		ts = "timestamp=" + formatTime(t)
	}
	return msg(c.serverPrefix(), "MARKREAD", target, ts)
}

// cmdMarkread handles MARKREAD <target> [timestamp=…]: a set tells the
// backend (MarkRead), then both ask it for the marker (ReadMarker) and
// reply with it, so a set older than the stored marker gets the stored one.
func cmdMarkread(c *Client, m *irc.Message) *ircError {
	hh, ok := c.historyHandler()
	if !ok {
		return newErr(irc.ERR_UNKNOWNCOMMAND, m.Command, "Unknown command")
	}
	target, t, set, f := parseMarkread(m.Params)
	if f != nil {
		c.fail("MARKREAD", f.code, f.params...)
		return nil
	}
	name, ok := c.historyTarget(target)
	if !ok {
		c.fail("MARKREAD", "INVALID_PARAMS", safeParam(target), "Invalid parameters")
		return nil
	}
	if now := time.Now().UTC(); t.After(now) {
		t = now.Truncate(time.Millisecond)
	}
	var got time.Time
	r := c.await(1, func(timedOut bool) {
		switch {
		case timedOut && set:
			c.fail("MARKREAD", "INTERNAL_ERROR", name, "The read timestamp could not be set")
		case timedOut:
			c.fail("MARKREAD", "INTERNAL_ERROR", name, "The read timestamp could not be retrieved")
		default:
			c.send(c.markreadMsg(name, got))
		}
	})
	if r == nil {
		c.tryAgain("MARKREAD")
		return nil
	}
	c.later(func() {
		if set {
			hh.MarkRead(name, t)
		}
		hh.ReadMarker(name, func(t time.Time) { c.answered(r, once(func() { got = t })) })
	})
	return nil
}

// SendReadMarker tells the client, if it negotiated draft/read-marker, that
// the user read target (a nick or channel) up to t; the zero time sends
// "*". A backend calls it for the user's other clients when one of them
// moved a marker (HistoryHandler.MarkRead).
func (c *Client) SendReadMarker(target string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.caps["draft/read-marker"] {
		return
	}
	name, ok := c.historyTarget(target)
	if !ok && validChannel(target) {
		name, ok = target, true
	}
	if !ok {
		c.logger().WithField("target", target).Warn("SendReadMarker: invalid target")
		return
	}
	c.emit(c.markreadMsg(name, t))
}

// joinMarkers holds, for a JOIN from a client with draft/read-marker, the
// RPL_ENDOFNAMES of each channel joined, which waits for the channel's
// read marker: MARKREAD goes before it, as the spec wants.
type joinMarkers struct {
	hh    HistoryHandler
	chans []string
	ends  []*irc.Message
}

// newJoinMarkers returns the markers of a JOIN, nil when the client gets
// none. Caller holds c.mu.
func (c *Client) newJoinMarkers() *joinMarkers {
	hh, ok := c.historyHandler()
	if !ok || !c.caps["draft/read-marker"] {
		return nil
	}
	return &joinMarkers{hh: hh}
}

// out is the output for joinSelf: RPL_ENDOFNAMES is held, the rest sent.
// Caller holds c.mu.
func (jm *joinMarkers) out(c *Client, channel string) func(*irc.Message) {
	if jm == nil {
		return c.send
	}
	return func(m *irc.Message) {
		if m.Command == irc.RPL_ENDOFNAMES {
			jm.chans = append(jm.chans, channel)
			jm.ends = append(jm.ends, m)
			return
		}
		c.send(m)
	}
}

// ask asks the backend for each channel's marker and sends MARKREAD and
// RPL_ENDOFNAMES for each once all have answered ("*" for those that did
// not in time). Caller holds c.mu.
func (jm *joinMarkers) ask(c *Client) {
	if jm == nil || len(jm.chans) == 0 {
		return
	}
	got := make([]time.Time, len(jm.chans))
	r := c.await(len(jm.chans), func(bool) {
		for i, ch := range jm.chans {
			c.send(c.markreadMsg(ch, got[i]))
			c.send(jm.ends[i])
		}
	})
	if r == nil { // too many replies waiting: the names end without a marker
		for _, m := range jm.ends {
			c.send(m)
		}
		return
	}
	if r.rb != nil { // the JOIN itself waits: so does the world (holdWorld)
		r.join = true
		c.joinsWaiting++
	}
	for i, ch := range jm.chans {
		c.later(func() {
			jm.hh.ReadMarker(ch, func(t time.Time) { c.answered(r, once(func() { got[i] = t })) })
		})
	}
}
