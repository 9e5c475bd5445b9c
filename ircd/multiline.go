// Multiline messages (IRCv3 draft/multiline), both ways.
//
// A client with the capability (and batch) may send one message as a
// batch of PRIVMSG or NOTICE lines: "BATCH +ref draft/multiline target",
// lines tagged batch=ref (draft/multiline-concat joins a line to the one
// before it without a line break), "BATCH -ref". The reader collects the
// lines without running them and, at the batch's end, runs the whole text
// as one message: the backend gets one Input whose text holds the line
// breaks, and the echo goes back as a batch of that text split again (a
// long line's pieces may differ from the client's), a batch of one line
// too. A batch over the limits, or malformed (CTCP framing that does not
// frame the whole message counts), or one of whose lines is refused (not
// UTF-8, too long), gets FAIL BATCH and is dropped whole: nothing of it is
// sent.
//
// A Delivery whose text has line breaks, or is too long for one line, goes
// to such a client as one multiline batch (blank lines kept, long lines
// split with draft/multiline-concat); other clients get separate lines as
// before. The user's own message that came as a batch carries its echo's
// lines (Input.Lines): a Delivery of it given them (Delivery.Lines) goes
// to another multiline client as the same batch, not split again for its
// line, a line too long for that line apart.

package ircd

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// The limits of a multiline batch a client sends, advertised in the
// capability's value.
const (
	MultilineMaxBytes = 4096 // the text, a byte for each line break included
	MultilineMaxLines = 100
)

const (
	capMultiline = "draft/multiline"
	tagConcat    = "draft/multiline-concat"
)

// mlBatch is a multiline batch being received. Guarded by Client.mu.
type mlBatch struct {
	ref, target string
	cmd         string   // PRIVMSG or NOTICE, from the first line
	tags        irc.Tags // the client-only tags of the BATCH that opened it
	label       string   // the opening BATCH's label: the reply's
	text        []byte
	lines       int
	blank       bool // every line so far is blank
	failed      bool // refused (FAIL sent): its lines are dropped until its end
}

// multilineOn reports whether the client takes and sends multiline
// batches. Caller holds c.mu.
func (c *Client) multilineOn() bool { return c.caps[capMultiline] && c.caps["batch"] }

// cmdBatch opens ("+ref draft/multiline target") or ends ("-ref") a
// client's multiline batch.
func cmdBatch(c *Client, m *irc.Message) *ircError {
	p := m.Params[0]
	if len(p) < 2 || (p[0] != '+' && p[0] != '-') {
		c.fail("BATCH", "MULTILINE_INVALID", "Invalid batch reference")
		return nil
	}
	ref := p[1:]
	if p[0] == '-' {
		c.endBatch(ref)
		return nil
	}
	switch {
	case !c.multilineOn():
		c.fail("BATCH", "MULTILINE_INVALID", "Client batches need the draft/multiline and batch capabilities")
		return nil
	case m.Param(1) != capMultiline:
		c.fail("BATCH", "MULTILINE_INVALID", "Only draft/multiline batches are accepted")
		return nil
	case c.mline != nil:
		// One batch at a time: the one open is dropped, and so is this
		// one. The one open is told apart, with its own label if it had
		// one, not in this command's reply.
		if open := c.mline; !open.failed {
			prev := c.capture
			c.capture = nil
			c.batchFail(open, "MULTILINE_INVALID", "Multiline batch dropped: another was opened before its end")
			c.capture = prev
		}
		c.fail("BATCH", "MULTILINE_INVALID", "A multiline batch is already open")
		c.mline = &mlBatch{ref: ref, failed: true}
		return nil
	case m.Param(2) == "":
		// An error of a multiline batch: told with FAIL, as the spec
		// asks of them all, not with 461.
		c.fail("BATCH", "MULTILINE_INVALID", "Multiline batch without a target")
		return nil
	}
	b := &mlBatch{ref: ref, target: m.Params[2], blank: true}
	for k, v := range m.Tags {
		if strings.HasPrefix(k, "+") && k != "+" {
			if b.tags == nil {
				b.tags = irc.Tags{}
			}
			b.tags[k] = v
		}
	}
	if rb := c.takeReply(); rb != nil { // the reply comes at the batch's end
		b.label = rb.label
	}
	c.mline = b
	return nil
}

// batchLine takes a line tagged batch=ref into the open batch; it reports
// whether the batch took it (false for a line of no open batch, of a
// refused one, or one that makes the batch refused). Caller holds c.mu.
func (c *Client) batchLine(m *irc.Message, ref string) (took bool) {
	b := c.mline
	if b == nil || b.ref != ref {
		c.fail("BATCH", "MULTILINE_INVALID", "No such batch open")
		return false
	}
	if b.failed {
		return false
	}
	refuse := func(code string, params ...string) {
		b.failed = true
		b.text = nil
		c.batchFail(b, code, params...)
	}
	if m.Command != "PRIVMSG" && m.Command != "NOTICE" || (b.cmd != "" && m.Command != b.cmd) {
		refuse("MULTILINE_INVALID", "A multiline batch holds PRIVMSG or NOTICE lines, not both")
		return false
	}
	b.cmd = m.Command
	if target := m.Param(0); Nick(target).Key() != Nick(b.target).Key() {
		refuse("MULTILINE_INVALID_TARGET", middleParam(b.target), middleParam(target), "Invalid multiline target")
		return false
	}
	text := m.Param(1)
	_, concat := m.Tags[tagConcat]
	if concat && text == "" {
		refuse("MULTILINE_INVALID", "Invalid multiline batch with concatenated blank line")
		return false
	}
	n := len(b.text) + len(text)
	if b.lines > 0 && !concat {
		n++
	}
	switch {
	case b.lines+1 > MultilineMaxLines:
		refuse("MULTILINE_MAX_LINES", strconv.Itoa(MultilineMaxLines), "Multiline batch max-lines exceeded")
		return false
	case n > MultilineMaxBytes:
		refuse("MULTILINE_MAX_BYTES", strconv.Itoa(MultilineMaxBytes), "Multiline batch max-bytes exceeded")
		return false
	}
	if b.lines > 0 && !concat {
		b.text = append(b.text, '\n')
	}
	b.text = append(b.text, text...)
	b.lines++
	if strings.TrimSpace(text) != "" {
		b.blank = false
	}
	return true
}

// endBatch ends the batch ref and runs its message. Caller holds c.mu.
func (c *Client) endBatch(ref string) {
	b := c.mline
	if b == nil || b.ref != ref {
		c.fail("BATCH", "MULTILINE_INVALID", "No such batch open")
		return
	}
	c.mline = nil
	switch {
	case b.failed:
		return // told when it failed
	case b.lines == 0 || b.blank:
		c.batchFail(b, "MULTILINE_INVALID", "Invalid multiline batch with blank lines only")
		return
	case !ctcpWhole(b.text):
		c.batchFail(b, "MULTILINE_INVALID", "Invalid multiline batch: CTCP must frame the whole message")
		return
	}
	m := &irc.Message{Command: b.cmd, Params: []string{b.target, string(b.text)}, Tags: b.tags}
	run := func() {
		if err := c.message(m, true); err != nil && b.cmd != "NOTICE" {
			c.numeric(err.Code, err.Params...)
		}
	}
	if b.label != "" {
		// The opening BATCH's reply, whether or not the closing one has
		// a label of its own (which then gets its ACK).
		c.sendReply(&replyBuf{label: b.label}, run)
		return
	}
	run()
}

// ctcpWhole reports whether a batch's text has CTCP framing (\x01) only
// where it frames the whole message: none, or \x01 first and, if the
// closing one is there, last. The batch is one message, so CTCP framing
// inside it ("\x01ACTION waves\x01" then a line of text, or text then an
// action) would reach the backend, and every client, as a stray \x01;
// an action spanning the lines is one action.
func ctcpWhole(text []byte) bool {
	switch n := bytes.Count(text, []byte{'\x01'}); {
	case n == 0:
		return true
	case text[0] != '\x01' || n > 2:
		return false
	default:
		return n == 1 || text[len(text)-1] == '\x01'
	}
}

// batchFail sends a FAIL BATCH about b, labeled with the label of the
// BATCH that opened it, apart from the reply of the command being run.
// Caller holds c.mu.
func (c *Client) batchFail(b *mlBatch, code string, params ...string) {
	if b.label != "" {
		label := b.label
		b.label = "" // the batch's reply is this
		c.sendReply(&replyBuf{label: label}, func() { c.fail("BATCH", code, params...) })
		return
	}
	c.fail("BATCH", code, params...)
}

// BatchLine is one line of a multiline batch.
type BatchLine struct {
	Text   string
	Concat bool // joined to the line before it without a line break (draft/multiline-concat)
}

// multilinePieces splits text into a batch's lines: at line breaks, blank
// lines kept, and lines over max bytes cut as splitText cuts them, the
// pieces after the first marked concat. ok is false when the text is not
// for a multiline batch: a CTCP message (whose framing goes on every
// line), or one with no line that is not blank.
func multilinePieces(text string, max int) (out []BatchLine, ok bool) {
	if strings.HasPrefix(text, "\x01") || strings.TrimSpace(text) == "" {
		return nil, false
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.ReplaceAll(text, "\x00", "\uFFFD")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			out = append(out, BatchLine{})
			continue
		}
		first := true
		for p := range cutLine(line, max) {
			out = append(out, BatchLine{Text: p, Concat: !first})
			first = false
		}
	}
	return out, true
}

// needsMultiline reports whether text goes to a multiline client as a
// batch: it has a line break or does not fit one line of budget bytes.
func needsMultiline(text string, budget int) bool {
	return len(text) > budget || strings.ContainsAny(text, "\r\n")
}

// fitBatch returns lines, a multiline batch's, for a line of max bytes:
// each line too long cut further as splitText cuts it (cutLine), the
// pieces after its first marked concat. ok is false when lines are not
// those of a batch of text: they must join to text (a line break before
// each but concat ones), each valid UTF-8 with no line break or NUL, no
// concat on the first line or a blank one, and text neither CTCP nor
// blank, as multilinePieces would have it.
func fitBatch(lines []BatchLine, text string, max int) (out []BatchLine, ok bool) {
	if len(lines) == 0 || strings.HasPrefix(text, "\x01") || strings.TrimSpace(text) == "" {
		return nil, false
	}
	rest := text
	for i, l := range lines {
		if l.Concat && (i == 0 || l.Text == "") || strings.ContainsAny(l.Text, "\r\n\x00") || !utf8.ValidString(l.Text) {
			return nil, false
		}
		if i > 0 && !l.Concat {
			if rest, ok = strings.CutPrefix(rest, "\n"); !ok {
				return nil, false
			}
		}
		if rest, ok = strings.CutPrefix(rest, l.Text); !ok {
			return nil, false
		}
	}
	if rest != "" {
		return nil, false
	}
	out = make([]BatchLine, 0, len(lines))
	for _, l := range lines {
		if len(l.Text) <= max {
			out = append(out, l)
			continue
		}
		concat := l.Concat
		for p := range cutLine(l.Text, max) {
			out = append(out, BatchLine{Text: p, Concat: concat})
			concat = true
		}
	}
	return out, true
}

// multilineBatch builds the lines of one message as a multiline batch:
// the BATCH start carries tags (msgid, time, client-only tags, and the
// enclosing batch's reference if any), each line the batch reference and
// the time, and the BATCH end the enclosing batch's reference if any.
// Caller holds c.mu.
func (c *Client) multilineBatch(prefix *irc.Prefix, cmd, target string, pieces []BatchLine, tags irc.Tags) []*irc.Message {
	ref := newBatchRef()
	open := msg(prefix, "BATCH", "+"+ref, capMultiline, target)
	open.Tags = tags
	out := make([]*irc.Message, 0, len(pieces)+2)
	out = append(out, open)
	for _, p := range pieces {
		m := msg(prefix, cmd, target, p.Text)
		m.Tags = irc.Tags{"batch": ref}
		if t, ok := tags["time"]; ok {
			m.Tags["time"] = t
		}
		if p.Concat {
			m.Tags[tagConcat] = ""
		}
		out = append(out, m)
	}
	end := msg(prefix, "BATCH", "-"+ref)
	if outer, ok := tags["batch"]; ok { // it ends inside the enclosing batch too
		end.Tags = irc.Tags{"batch": outer}
	}
	return append(out, end)
}
