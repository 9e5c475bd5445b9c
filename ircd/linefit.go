package ircd

import (
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
