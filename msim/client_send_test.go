package msim

// The send side's fast paths: the IM SendIM writes straight to bytes is
// what the general Message encoder gives, and what each IM costs.

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim/markup"
)

// generalIM is the IM of text to to in session sesskey as the general
// Message builder (bmMessage, what a debug log shows) and encoder write it.
func generalIM(sesskey int, to UID, body string) string {
	return string(Encode((&Client{sesskey: sesskey}).bmMessage(BMIM, to, body)))
}

// typedIMs are IMs as users type them: slashes and backslashes where the
// codec escapes them (at the start, the end, beside markup and smileys),
// markup characters, line breaks, controls, /me and CTCP ACTION, unicode,
// and long texts.
var typedIMs = []string{
	"", "hello", "a/b\\c", "\\ first", "last\\", "\\", "/", "\\/", "/\\", "//\\\\",
	"https://example.com/a/b?c=1&d=2 see C:\\dir\\file",
	"line one\nline two\n\nfour/\n\\",
	"B) :) ;-) :D}:) <b>&amp;</b> <i n=\"happy\"/> </f></p> \\final\\",
	"/me waves /slowly\\", "\x01ACTION waves\x01", "\x02bold\x02 \x0304red\x03 \x00nul\r\t",
	"ünïcødé / ok ☃ 😀 \uFFFE\uFFFF \xef\xbf", "\xff\xfe invalid / utf-8",
	strings.Repeat("a long line/with\\slashes :) ", 200),
	strings.Repeat("x", 5000),
}

// TestAppendIMMatchesMessage: the IM SendIM writes straight to bytes (its
// session's head made once, the markup escaped as it is written) is what
// the general Message encoder writes for the same IM, for every text,
// session key and recipient; and so is what SendIM queues.
func TestAppendIMMatchesMessage(t *testing.T) {
	t.Parallel()
	for _, sk := range []int{424242, 0, 1, -5, 263958216} {
		for _, to := range []UID{1, 1000002, 2147483647} {
			for _, text := range typedIMs {
				want := generalIM(sk, to, markup.FromPlain(text))
				if got := string(appendIM(nil, imHead(sk), to, text)); got != want {
					t.Errorf("appendIM(%d, %d, %q): got %q, want %q", sk, to, text, got, want)
				}
				spans := []markup.Span{{Text: text, Style: markup.Bold}, {Text: "/" + text}}
				want = generalIM(sk, to, markup.FromSpans(spans))
				if got := string(appendStyledIM(nil, imHead(sk), to, spans)); got != want {
					t.Errorf("appendStyledIM(%d, %d, %q): got %q, want %q", sk, to, spans, got, want)
				}
			}
		}
	}
	c := loggedInMem(&memConn{})
	c.writing = true // no writer: the test takes the queue
	for _, text := range typedIMs {
		if err := c.SendIM(context.Background(), 2001, text); err != nil {
			t.Fatal(err)
		}
		it, _ := c.next()
		if got, want := string(it.b), generalIM(fakeSessKey, 2001, markup.FromPlain(text)); got != want {
			t.Errorf("SendIM(%q) queued %q, want %q", text, got, want)
		}
	}
}

// FuzzAppendIM: the IM written straight to bytes is what the general
// Message encoder writes, whatever the text, session key and recipient.
func FuzzAppendIM(f *testing.F) {
	for _, text := range typedIMs[:len(typedIMs)-2] {
		f.Add(424242, uint32(1000002), text)
	}
	f.Fuzz(func(t *testing.T, sk int, to uint32, text string) {
		want := generalIM(sk, UID(to), markup.FromPlain(text))
		if got := string(appendIM(nil, imHead(sk), UID(to), text)); got != want {
			t.Errorf("appendIM(%d, %d, %q): got %q, want %q", sk, to, text, got, want)
		}
		spans := []markup.Span{{Text: text, Style: markup.Italic}, {Text: text}}
		want = generalIM(sk, UID(to), markup.FromSpans(spans))
		if got := string(appendStyledIM(nil, imHead(sk), UID(to), spans)); got != want {
			t.Errorf("appendStyledIM(%d, %d, %q): got %q, want %q", sk, to, spans, got, want)
		}
	})
}

// BenchmarkSendIM measures SendIM for a steady stream of IMs, with the
// writer running as it does in a session (started for a burst, stopping
// once the queue is empty), over a connection that takes every write.
func BenchmarkSendIM(b *testing.B) {
	c := loggedInMem(&memConn{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.SendIM(ctx, 1000002, "Hello there, how are you doing today? Want to get lunch at noon?"); err != nil {
			b.Fatal(err)
		}
	}
	waitWriterStopped(c) // the writer stops once it has written everything
}

// waitWriterStopped waits until c's writer has written what it was given
// and stopped.
func waitWriterStopped(c *Client) {
	for {
		c.wmu.Lock()
		writing := c.writing
		c.wmu.Unlock()
		if !writing {
			return
		}
		runtime.Gosched()
	}
}

// loggedInMem is a client logged in (session key and uid set, no
// handshake) over a connection that takes every write, its events taken
// by Notify's owner.
func loggedInMem(nc *memConn) *Client {
	cfg := ClientConfig{Notify: func() {}}
	cfg.setDefaults()
	c := newClient(cfg, nc)
	c.setSession(fakeSessKey, fakeUID)
	return c
}

// TestSendIMStartsItsWriterWithoutAnObject: an IM to a client whose
// writer has stopped (the queue ran empty) starts a new writer, which
// writes it and stops again, and that costs no allocation once the pools
// are warm.
func TestSendIMStartsItsWriterWithoutAnObject(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops some of what sync.Pool is given")
	}
	nc := &memConn{}
	c := loggedInMem(nc)
	ctx := context.Background()
	const text = "hello there, how are you doing today?"
	sent := 0
	send := func() {
		if err := c.SendIM(ctx, 2001, text); err != nil {
			t.Fatal(err)
		}
		sent++
		waitWriterStopped(c) // until the writer has written it and stopped
	}
	for range 2 * recentIMs { // the writer's ring of recent IMs at its size
		send()
	}
	if n := testing.AllocsPerRun(100, send); n != 0 {
		t.Errorf("SendIM with a writer started and stopped: got %v allocations per IM, want 0", n)
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if want := sent * len(appendIM(nil, c.imHead, 2001, text)); nc.wrote != want {
		t.Errorf("wrote %d bytes, want %d", nc.wrote, want)
	}
}
