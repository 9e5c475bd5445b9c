package ircd

import (
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// maxLineBody is the most a line may hold before its CRLF, tags left out
// (RFC 1459 §2.3, message-tags): the 512 bytes every client may assume.
const maxLineBody = 510

// fitLast returns last cut, at a UTF-8 boundary, so that a line whose
// other parts take fixed bytes (with the last parameter's space and colon)
// fits maxLineBody; unchanged when it fits or when nothing of it would.
func fitLast(fixed int, last string) string {
	room := maxLineBody - fixed
	if len(last) <= room || room <= 0 {
		return last
	}
	for room > 0 && !utf8.RuneStart(last[room]) {
		room--
	}
	return last[:room]
}

// fitMessage returns m, or a copy whose last parameter is cut to fit a
// line (fitLast), for a numeric or world line whose parts together are
// longer than a line: a 390-byte topic in RPL_LIST with a long channel name
// and server name, say. Deliver splits text itself; this is the floor
// under every line the server writes.
func fitMessage(m *irc.Message) *irc.Message {
	if len(m.Params) == 0 {
		return m
	}
	n := bodyLen(m)
	if n <= maxLineBody {
		return m
	}
	last := m.Params[len(m.Params)-1]
	cut := fitLast(n-len(last), last)
	if len(cut) == len(last) {
		return m
	}
	c := *m
	c.Params = append(m.Params[:len(m.Params)-1:len(m.Params)-1], cut)
	return &c
}

// fitParams returns params, or a copy with the last cut to fit a line
// (fitLast) when the line rawLineLen measures at n bytes is too long.
func fitParams(n int, params []string) []string {
	if n <= maxLineBody || len(params) == 0 {
		return params
	}
	last := params[len(params)-1]
	cut := fitLast(n-len(last), last)
	if len(cut) == len(last) {
		return params
	}
	return append(params[:len(params)-1:len(params)-1], cut)
}

// numericList sends numeric code with params, then items joined by sep,
// in as many numerics as it takes for each line to fit maxLineBody with
// every item whole; an item too long for any line goes alone, cut to fit
// at a UTF-8 boundary (the floor under every line cuts only the last
// parameter, which is after when there is one). after, when not empty, is
// a last parameter that follows the list, which is then a middle one. No
// items, no numeric. Caller holds c.mu.
func (c *Client) numericList(code string, params, items []string, sep, after string) {
	fixed := len(":") + len(c.srv.cfg.ServerName) + len(" ") + len(code) + len(" ") + len(c.nick)
	for _, p := range params {
		fixed += len(" ") + len(p)
	}
	fixed += len(" :") // the list's space, and its colon as the last parameter
	if after != "" {
		fixed += len(" :") + len(after) - len(":")
	}
	send := func(list string) {
		ps := append(append(make([]string, 0, len(params)+2), params...), list)
		if after != "" {
			ps = append(ps, after)
		}
		c.numeric(code, ps...)
	}
	joinFit(fitItems(items, fixed), sep, maxLineBody-fixed, send)
}

// fitItems returns items, or a copy with each item too long for a line
// whose other parts take fixed bytes cut to fit (fitLast); an item that
// nothing of would fit stays whole.
func fitItems(items []string, fixed int) []string {
	var out []string // nil until an item is cut
	for i, it := range items {
		cut := fitLast(fixed, it)
		if len(cut) == len(it) || cut == "" {
			continue
		}
		if out == nil {
			out = slices.Clone(items)
		}
		out[i] = cut
	}
	if out == nil {
		return items
	}
	return out
}

// joinFit calls send with items joined by sep, as many whole items at a
// time as fit room bytes (an item longer than room goes alone); not at
// all without items.
func joinFit(items []string, sep string, room int, send func(list string)) {
	var b strings.Builder
	for _, it := range items {
		if b.Len() > 0 && b.Len()+len(sep)+len(it) > room {
			send(b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(it)
	}
	if b.Len() > 0 {
		send(b.String())
	}
}
