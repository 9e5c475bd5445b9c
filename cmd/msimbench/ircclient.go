package main

// A raw IRC load client: one TCP connection, a bufio reader goroutine that
// parses only what the benchmark needs, and a buffered writer shared (under
// a mutex) by the sender and the PONG replies.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// ircClient is one benchmark IRC connection.
type ircClient struct {
	nick string
	nc   net.Conn
	br   *bufio.Reader

	wmu sync.Mutex
	bw  *bufio.Writer

	registered chan struct{} // closed on 001
	joined     chan struct{} // closed when the watched channel's NAMES is complete and every wanted nick is voiced
	closed     chan struct{} // closed when the reader stops
	readErr    error         // set before closed is closed

	// Owned by the reader goroutine until joined (or closed) is closed.
	channel      string          // the channel to watch ("" = none)
	want         map[string]bool // nick keys that must be voiced members
	members      map[string]bool // nick key → voiced; changed only by setMember and dropMember
	voicedWanted int             // how many of want are voiced members
	namesDone    bool
	joinedAt     time.Time
	namesAt      time.Time // when 366 arrived
	doneAt       time.Time // when joined was closed
	welcomeAt    time.Time // when 001 arrived
	// inFirstNames counts the wanted nicks voiced when the first 366 came.
	inFirstNames int
	doneOnce     sync.Once

	handlers atomic.Pointer[handlers] // set while the reader runs
	parsed   parsed                   // the line being handled (reader goroutine only)
}

// handlers are what a load does with messages from nicks. They run on the
// reader goroutine; text and line are only valid during the call. Any may
// be nil.
type handlers struct {
	privmsg func(from string, text []byte, at time.Time) // PRIVMSGs to this client (not to a channel)
	notice  func(from string, text []byte)               // NOTICEs from nicks (not the server)
	raw     func(line []byte, at time.Time)              // every line, tags included, before the others
}

// nickKey folds a nick as the gateway does.
func nickKey(s string) string { return ircd.Nick(s).Key() }

// dialIRC connects and sends the registration. pass may be "". channel and
// want say which channel's membership to watch (joined is closed once its
// NAMES arrived and every wanted nick is a voiced member).
func dialIRC(ctx context.Context, addr, nick, pass, channel string, want []string) (*ircClient, error) {
	return dialIRCWith(ctx, addr, nick, pass, channel, want, dialOpts{})
}

// dialOpts are the extras of a scripted client.
type dialOpts struct {
	caps []string  // requested (CAP REQ) before the registration, which then waits for CAP END
	h    *handlers // installed before the reader starts: no line is missed
}

// dialIRCWith is dialIRC with capabilities and handlers.
func dialIRCWith(ctx context.Context, addr, nick, pass, channel string, want []string, o dialOpts) (*ircClient, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("irc dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &ircClient{
		nick:       nick,
		nc:         nc,
		br:         bufio.NewReaderSize(nc, 16<<10), // the longest line the gateway may send, tags included, fits
		bw:         bufio.NewWriterSize(nc, 4<<10),
		registered: make(chan struct{}),
		joined:     make(chan struct{}),
		closed:     make(chan struct{}),
		channel:    channel,
		want:       map[string]bool{},
		members:    map[string]bool{},
	}
	for _, w := range want {
		c.want[nickKey(w)] = true
	}
	if o.h != nil {
		c.handlers.Store(o.h)
	}
	if len(o.caps) > 0 {
		fmt.Fprintf(c.bw, "CAP REQ :%s\r\n", strings.Join(o.caps, " "))
	}
	if pass != "" {
		fmt.Fprintf(c.bw, "PASS %s\r\n", pass)
	}
	fmt.Fprintf(c.bw, "NICK %s\r\nUSER %s 0 * :msimbench\r\n", nick, nick)
	if len(o.caps) > 0 {
		c.bw.WriteString("CAP END\r\n")
	}
	if err := c.bw.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("irc register %s: %w", nick, err)
	}
	go c.readLoop()
	return c, nil
}

// Close ends the connection.
func (c *ircClient) Close() {
	c.wmu.Lock()
	_, _ = c.bw.WriteString("QUIT :bench done\r\n")
	_ = c.bw.Flush()
	c.wmu.Unlock()
	c.nc.Close()
	<-c.closed
}

// write queues raw lines (each ending in CRLF) and optionally flushes.
func (c *ircClient) write(flush bool, lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, l := range lines {
		if _, err := c.bw.WriteString(l); err != nil {
			return err
		}
	}
	if flush {
		_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		return c.bw.Flush()
	}
	return nil
}

// waitFor waits for ch, the reader's end or ctx.
func (c *ircClient) waitFor(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-c.closed:
		select {
		case <-ch:
			return nil
		default:
		}
		return fmt.Errorf("%s: connection closed before %s: %w", c.nick, what, c.readErr)
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for %s: %w (%s)", c.nick, what, ctx.Err(), c.membershipState())
	}
}

// membershipState is a diagnostic; it reads reader-owned fields racily only
// after a timeout, so it copies nothing but counts.
func (c *ircClient) membershipState() string {
	return fmt.Sprintf("want %d voiced nicks", len(c.want))
}

var errLineTooLong = errors.New("irc: line too long")

func (c *ircClient) readLoop() {
	defer close(c.closed)
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errLineTooLong
			}
			if c.readErr == nil || !errors.Is(err, io.EOF) { // the server's ERROR says more than its EOF
				c.readErr = err
			}
			return
		}
		c.handle(bytes.TrimRight(line, "\r\n"), time.Now())
	}
}

// parsed is one line split into prefix nick, command and params; the slices
// point into the read buffer.
type parsed struct {
	from   []byte
	cmd    []byte
	params [][]byte
	arr    [16][]byte
}

func parseInto(p *parsed, line []byte) bool {
	p.from, p.cmd, p.params = nil, nil, p.arr[:0]
	if len(line) > 0 && line[0] == '@' {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return false
		}
		line = bytes.TrimLeft(line[i+1:], " ")
	}
	if len(line) > 0 && line[0] == ':' {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return false
		}
		pre := line[1:i]
		if j := bytes.IndexAny(pre, "!@"); j >= 0 {
			pre = pre[:j]
		}
		p.from = pre
		line = bytes.TrimLeft(line[i+1:], " ")
	}
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		p.cmd = line
		return len(line) > 0
	}
	p.cmd, line = line[:i], line[i+1:]
	for len(line) > 0 {
		if line[0] == ':' {
			p.params = append(p.params, line[1:])
			break
		}
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			p.params = append(p.params, line)
			break
		}
		if i > 0 {
			p.params = append(p.params, line[:i])
		}
		line = line[i+1:]
	}
	return true
}

func (p *parsed) param(i int) []byte {
	if i < len(p.params) {
		return p.params[i]
	}
	return nil
}

func (c *ircClient) handle(line []byte, at time.Time) {
	h := c.handlers.Load()
	if h != nil && h.raw != nil {
		h.raw(line, at)
	}
	p := &c.parsed
	if !parseInto(p, line) {
		return
	}
	switch string(p.cmd) {
	case "PRIVMSG":
		if h != nil && h.privmsg != nil && len(p.params) >= 2 && !isChan(p.params[0]) {
			h.privmsg(string(p.from), p.params[1], at)
		}
		return
	case "PING":
		_ = c.write(true, "PONG :"+string(p.param(0))+"\r\n")
	case "001":
		c.welcomeAt = at
		select {
		case <-c.registered:
		default:
			close(c.registered)
		}
	case "NOTICE":
		if h != nil && h.notice != nil && len(p.params) >= 2 && !isChan(p.params[0]) && bytes.IndexByte(p.from, '.') < 0 {
			h.notice(string(p.from), p.params[1])
		}
	case "ERROR":
		c.readErr = fmt.Errorf("server said ERROR: %s", p.param(0))
	}
	if c.channel == "" {
		return
	}
	switch string(p.cmd) {
	case "JOIN":
		if !strings.EqualFold(string(p.param(0)), c.channel) {
			return
		}
		if nickKey(string(p.from)) == nickKey(c.nick) {
			c.joinedAt = at
			return
		}
		c.setMember(nickKey(string(p.from)), false)
	case "PART":
		if strings.EqualFold(string(p.param(0)), c.channel) {
			c.dropMember(nickKey(string(p.from)))
		}
	case "QUIT":
		c.dropMember(nickKey(string(p.from)))
	case "MODE":
		if !strings.EqualFold(string(p.param(0)), c.channel) || len(p.params) < 3 {
			return
		}
		modes, args := p.params[1], p.params[2:]
		on := true
		for _, m := range modes {
			switch m {
			case '+':
				on = true
			case '-':
				on = false
			case 'v', 'o', 'h', 'a', 'q':
				if len(args) == 0 {
					return
				}
				if m == 'v' {
					k := nickKey(string(args[0]))
					if _, ok := c.members[k]; ok {
						c.setMember(k, on)
					}
				}
				args = args[1:]
			}
		}
	case "353":
		if len(p.params) < 4 || !strings.EqualFold(string(p.params[2]), c.channel) {
			return
		}
		for _, n := range bytes.Fields(p.params[3]) {
			voiced := false
			for len(n) > 0 && strings.IndexByte("@+%&~", n[0]) >= 0 {
				voiced = voiced || n[0] == '+'
				n = n[1:]
			}
			c.setMember(nickKey(string(n)), voiced)
		}
	case "366":
		if len(p.params) >= 2 && strings.EqualFold(string(p.params[1]), c.channel) && !c.namesDone {
			c.namesDone = true
			c.namesAt = at
			c.inFirstNames = len(c.want) - c.missing()
		}
	default:
		return
	}
	if c.namesDone {
		c.checkJoined(at)
	}
}

// checkJoined closes joined once every wanted nick is a voiced member.
func (c *ircClient) checkJoined(at time.Time) {
	select {
	case <-c.joined:
		return
	default:
	}
	if c.voicedWanted < len(c.want) {
		return
	}
	c.doneOnce.Do(func() {
		c.doneAt = at
		close(c.joined)
	})
}

// missing returns how many wanted nicks are not voiced members; call it only
// after the reader stopped or joined is closed.
func (c *ircClient) missing() int { return len(c.want) - c.voicedWanted }

// setMember records k as a member of the watched channel, voiced or not,
// keeping the count of voiced wanted nicks. Reader goroutine only.
func (c *ircClient) setMember(k string, voiced bool) {
	was, in := c.members[k]
	c.members[k] = voiced
	if c.want[k] {
		c.voicedWanted += count(voiced) - count(in && was)
	}
}

// dropMember records that k left the watched channel. Reader goroutine only.
func (c *ircClient) dropMember(k string) {
	if was, in := c.members[k]; in {
		delete(c.members, k)
		if c.want[k] {
			c.voicedWanted -= count(was)
		}
	}
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isChan(b []byte) bool { return len(b) > 0 && (b[0] == '#' || b[0] == '&') }
