package msim

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestDecoderIdleBuffers: a Decoder on a connection gathers messages in
// shared buffers and keeps none between messages, small or large; messages
// split across writes and several in one write decode as ever.
func TestDecoderIdleBuffers(t *testing.T) {
	a, b := tcpPair(t)
	d := NewDecoder(b)
	decode := func(want string) {
		t.Helper()
		m, err := d.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if got := m.StrOr("k", ""); got != want {
			t.Fatalf("got k=%q, want %q", got, want)
		}
	}
	idle := func(after string) {
		t.Helper()
		if d.small != nil || d.lent != nil {
			t.Errorf("idle after %s: the decoder holds a gathering buffer", after)
		}
	}
	a.Write([]byte(`\k\small\final\`))
	decode("small")
	idle("a small message")
	// Messages whose buffer append grows past keptBuf before the shared
	// large buffer takes over.
	for _, n := range []int{700, 900, 1000, 1100} {
		v := strings.Repeat("m", n)
		a.Write([]byte(`\k\` + v + `\final\`))
		decode(v)
		idle(fmt.Sprintf("a message of %d bytes", n))
	}
	// A large message (a contact list, say): decoded, and its buffer not
	// kept once nothing more has arrived.
	big := strings.Repeat("x", 6000)
	a.Write([]byte(`\k\` + big + `\final\`))
	decode(big)
	idle("a large message")
	// Two large ones in one write: the second decodes too.
	a.Write([]byte(`\k\` + big + `\final\\k\` + big + "y" + `\final\`))
	decode(big)
	decode(big + "y")
	idle("two large messages")
	// A small message split across writes.
	go func() {
		a.Write([]byte(`\k\fo`))
		time.Sleep(20 * time.Millisecond)
		a.Write([]byte(`ur\final\`))
	}()
	decode("four")
	a.Close()
	if _, err := d.Decode(); err != io.EOF {
		t.Errorf("after the peer closed: got %v, want EOF", err)
	}
}

// TestDecoderWait: Wait returns once the next message has begun to
// arrive, consuming nothing; at the end of the stream it returns io.EOF,
// on a read deadline the timeout, and after ErrTooLarge the same refusal
// Decode gives.
func TestDecoderWait(t *testing.T) {
	client, server := tcpPair(t)
	d := NewDecoder(client)
	waited := make(chan error, 1)
	go func() { waited <- d.Wait() }()
	select {
	case err := <-waited:
		t.Fatalf("Wait with nothing sent: returned %v, want it to block", err)
	case <-time.After(50 * time.Millisecond):
	}
	msg := `\lc\1\nonce\abc\final\`
	if _, err := io.WriteString(server, msg[:3]); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait once a message began: got %v, want nil", err)
	}
	if _, err := io.WriteString(server, msg[3:]); err != nil {
		t.Fatal(err)
	}
	if m, err := d.Decode(); err != nil || m.StrOr("nonce", "") != "abc" {
		t.Fatalf("Decode after Wait: got %v, %v; want the whole message", m, err)
	}

	if err := client.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); !isTimeout(err) {
		t.Errorf("Wait past the deadline: got %v, want a timeout", err)
	}
	if err := client.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	d.MaxSize = 16
	if _, err := io.WriteString(server, `\lc\1\big\`+strings.Repeat("x", 64)+`\final\`); err != nil {
		t.Fatal(err)
	}
	_, tooLarge := d.Decode()
	if err := d.Wait(); err == nil || err != tooLarge {
		t.Errorf("Wait after a message too large: got %v, want Decode's refusal %v", err, tooLarge)
	}

	c2, s2 := tcpPair(t)
	d2 := NewDecoder(c2)
	s2.Close()
	if err := d2.Wait(); err != io.EOF {
		t.Errorf("Wait at the end of the stream: got %v, want io.EOF", err)
	}
}
