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

// fitMessage returns m, or a copy whose parameters are cut to fit a line
// (cutParams), for a numeric or world line whose parts together are
// longer than a line: a 390-byte topic in RPL_LIST with a long channel name
// and server name, or a client's long word repeated in a reply, say.
// Deliver splits text itself; this is the floor under every line the
// server writes.
func fitMessage(m *irc.Message) *irc.Message {
	if len(m.Params) == 0 {
		return m
	}
	n := bodyLen(m)
	if n <= maxLineBody {
		return m
	}
	c := *m
	c.Params = cutParams(n, m.Params)
	return &c
}

// cutParams returns params, or a copy cut so that the line they end, n
// bytes long as bodyLen and rawLineLen count it, fits maxLineBody: the
// longest parameter is cut first, the last one on a tie, so that what
// made the line too long is what gives way: a long topic rather than the
// channel's name, a client's long word repeated in a reply (a target in
// ERR_NOSUCHNICK, a command in ERR_UNKNOWNCOMMAND) rather than the
// reply's text. Every cut is at a UTF-8 boundary, and leaves a middle
// parameter one: not empty, and with the start it had.
func cutParams(n int, params []string) []string {
	if n <= maxLineBody || len(params) == 0 {
		return params
	}
	other := n - paramsLen(params) // the prefix and the command
	out := slices.Clone(params)
	last := len(out) - 1
	for over := n - maxLineBody; over > 0; over = other + paramsLen(out) - maxLineBody {
		i, floor := -1, 0 // the longest parameter that can be cut, and how far
		for j, p := range out {
			f := 0
			if j < last {
				_, f = utf8.DecodeRuneInString(p)
			}
			if len(p) > f && (i < 0 || len(p) >= len(out[i])) {
				i, floor = j, f
			}
		}
		if i < 0 {
			break // a prefix too long for any line
		}
		cut := truncUTF8(out[i], max(len(out[i])-over, floor))
		if len(cut) < floor { // not UTF-8 at its start: keep its first byte
			cut = out[i][:floor]
		}
		out[i] = cut
	}
	return out
}

// paramsLen is what params take of a line: a space before each, and the
// colon of a last one that needs it.
func paramsLen(params []string) int {
	n := 0
	for _, p := range params {
		n += 1 + len(p)
	}
	if len(params) > 0 && needsColon(params[len(params)-1]) {
		n++
	}
	return n
}

// numericList sends numeric code with params, then items joined by sep,
// in as many numerics as it takes for each line to fit maxLineBody with
// every item whole; an item too long for any line goes alone, cut to fit
// at a UTF-8 boundary (fitItems, which leaves the other parameters
// whole). after, when not empty, is a last parameter that follows the
// list, which is then a middle one. No items, no numeric. Caller holds
// c.mu.
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
