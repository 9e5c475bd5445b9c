package ircd

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// batchHandler records its calls: each Messages call as one event of the
// texts it had, each other call as one event of its own.
type batchHandler struct {
	nopHandler
	events []string
}

func (h *batchHandler) Message(in Input) { h.events = append(h.events, "message "+in.Text) }
func (h *batchHandler) Join(ch string)   { h.events = append(h.events, "join "+ch) }

func (h *batchHandler) Messages(ins []Input) {
	texts := make([]string, len(ins))
	for i, in := range ins {
		texts[i] = in.Text
	}
	h.events = append(h.events, "messages "+strings.Join(texts, " "))
}

// scriptReader gives its chunks one read each, then io.EOF; before each
// read after the first it notes the handler's events so far.
type scriptReader struct {
	chunks []string
	reads  int
	h      *batchHandler
	seen   [][]string // the handler's events before each read after the first
}

func (r *scriptReader) Read(p []byte) (int, error) {
	if r.reads > 0 {
		r.seen = append(r.seen, slices.Clone(r.h.events))
	}
	r.reads++
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if n < len(r.chunks[0]) {
		panic("scriptReader: chunk larger than the buffer")
	}
	r.chunks = r.chunks[1:]
	return n, nil
}

// readScript runs the reader of a registered client over chunks, one per
// read, to its end, and returns the handler's events and those seen
// before each read after the first.
func readScript(t *testing.T, chunks ...string) (events []string, seen [][]string) {
	t.Helper()
	c, done := fuzzClient(t)
	defer done()
	h := &batchHandler{}
	c.handler = h
	c.limiter = nil
	sr := &scriptReader{chunks: chunks, h: h}
	st := c.newReadState()
	st.br = newLineReader(sr, 512+maxTagsLen)
	if reason, _ := c.read(st); reason != "Connection closed" {
		t.Fatalf("reader ended for %q, want Connection closed", reason)
	}
	return h.events, sr.seen
}

// TestReadTogetherOneMessagesCall: the plain messages of a read reach a
// MessagesHandler as one call, in order.
func TestReadTogetherOneMessagesCall(t *testing.T) {
	events, seen := readScript(t, "PRIVMSG tom :1\r\nPRIVMSG tom :2\r\nNOTICE ann :3\r\nPRIVMSG tom :4\r\n")
	want := []string{"messages 1 2 3 4"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	if len(seen) != 1 || !slices.Equal(seen[0], want) {
		t.Errorf("before the next read the handler had %q, want %q", seen, want)
	}
}

// TestReadTogetherSplitByOtherLines: a line of another command hands the
// messages before it over first, and a line cut by the read's end leaves
// those before it handed over before the reader waits for more.
func TestReadTogetherSplitByOtherLines(t *testing.T) {
	events, seen := readScript(t,
		"PRIVMSG tom :1\r\nPRIVMSG tom :2\r\nJOIN #other\r\nPRIVMSG tom :3\rPRIVMSG tom :4\r\nPRIVMSG tom :5",
		"\r\nWHOIS tom\r\nPRIVMSG tom :6\r\nPRIVMSG tom :7\r\n",
		"PRIVMSG tom :8\r\n")
	want := []string{"messages 1 2", "join #other", "messages 3 4", "messages 5", "messages 6 7", "messages 8"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	wantSeen := [][]string{want[:3], want[:5], want}
	if !slices.EqualFunc(seen, wantSeen, slices.Equal) {
		t.Errorf("events before each read %q, want %q", seen, wantSeen)
	}
}

// TestReadTogetherBounded: no more than maxHeldInputs Inputs are held.
func TestReadTogetherBounded(t *testing.T) {
	var b strings.Builder
	var texts []string
	for i := range maxHeldInputs + 3 {
		b.WriteString("PRIVMSG tom :" + string(rune('a'+i)) + "\r\n")
		texts = append(texts, string(rune('a'+i)))
	}
	events, _ := readScript(t, b.String())
	want := []string{"messages " + strings.Join(texts[:maxHeldInputs], " "), "messages " + strings.Join(texts[maxHeldInputs:], " ")}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}

// TestReadTogetherWithoutMessages: a handler without Messages gets a
// Message for each, in order, however they were read.
func TestReadTogetherWithoutMessages(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	h := &recordHandler{}
	c.handler = h
	c.limiter = nil
	sr := &scriptReader{chunks: []string{"PRIVMSG tom :1\r\nPRIVMSG tom :2\r\n", "PRIVMSG tom :3\r\n"}, h: &batchHandler{}}
	st := c.newReadState()
	st.br = newLineReader(sr, 512+maxTagsLen)
	c.read(st)
	var got []string
	for _, in := range h.ins {
		got = append(got, in.Text)
	}
	if want := []string{"1", "2", "3"}; !slices.Equal(got, want) {
		t.Fatalf("Messages %q, want %q", got, want)
	}
}
