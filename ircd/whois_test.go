package ircd

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTimers stands in for time.AfterFunc: nothing fires until the test
// calls fire.
type fakeTimers struct {
	mu sync.Mutex
	ts []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	done    bool // fired or stopped
	stopped bool
}

func (ft *fakeTimers) afterFunc(d time.Duration, f func()) func() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	tm := &fakeTimer{d: d, f: f}
	ft.ts = append(ft.ts, tm)
	return func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		if tm.done {
			return false
		}
		tm.done, tm.stopped = true, true
		return true
	}
}

// fire runs the timers neither fired nor stopped and returns how many. It
// calls them without ft.mu: they take the client's lock, under which ircd
// stops timers.
func (ft *fakeTimers) fire() int {
	ft.mu.Lock()
	var fs []func()
	for _, tm := range ft.ts {
		if !tm.done {
			tm.done = true
			fs = append(fs, tm.f)
		}
	}
	ft.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return len(fs)
}

// durations returns the delay of every timer started, and how many were
// stopped.
func (ft *fakeTimers) durations() (ds []time.Duration, stopped int) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, tm := range ft.ts {
		ds = append(ds, tm.d)
		if tm.stopped {
			stopped++
		}
	}
	return ds, stopped
}

// whoisAsk is one WhoisAsync call of the fake backend.
type whoisAsk struct {
	fc     *fakeConn
	nick   string
	answer func(lines []string)
}

// asyncWhois is a registered client whose backend implements
// AsyncWhoisHandler and hands each question to the test.
type asyncWhois struct {
	c      *tclient
	fc     *fakeConn
	asks   chan whoisAsk
	timers *fakeTimers
}

// startAsyncWhois runs a server on fake timers whose handler passes each
// WhoisAsync to fn, or when fn is nil to the asks channel, and registers a
// client "me" in stdWorld.
func startAsyncWhois(t *testing.T, cfg Config, fn func(fc *fakeConn, nick string, answer func([]string))) *asyncWhois {
	t.Helper()
	b := newBackend()
	asks := make(chan whoisAsk, 2*maxWhoisInFlight)
	b.async = fn
	if fn == nil {
		b.async = func(fc *fakeConn, nick string, answer func([]string)) { asks <- whoisAsk{fc, nick, answer} }
	}
	log, _ := testLog()
	srv := NewServer(cfg, b, log)
	ft := &fakeTimers{}
	srv.afterFunc = ft.afterFunc
	addr, _ := startWith(t, srv)
	c, fc, _ := register(t, addr, b, "me")
	return &asyncWhois{c: c, fc: fc, asks: asks, timers: ft}
}

// ask waits for the backend to be asked.
func (s *asyncWhois) ask(t *testing.T) whoisAsk {
	t.Helper()
	select {
	case a := <-s.asks:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("WhoisAsync not called")
		return whoisAsk{}
	}
}

// expectNothing fails if anything but the PONG of a PING comes.
func (s *asyncWhois) expectNothing(t *testing.T, when string) {
	t.Helper()
	if got := s.c.sync(t); len(got) != 0 {
		t.Fatalf("got %q %s, want nothing", msgStrings(got), when)
	}
}

// TestWhoisAsyncReaderNotBlocked: while the backend has not answered, the
// client's next line (a PING sent with the WHOIS) is read and answered; the
// reply comes whole once the answer does.
func TestWhoisAsyncReaderNotBlocked(t *testing.T) {
	t.Parallel()
	s := startAsyncWhois(t, testConfig(), nil)
	s.c.send(t, "WHOIS tom", "PING right-after")
	a := s.ask(t)
	if a.nick != "tom" {
		t.Fatalf("got WhoisAsync(%q), want tom", a.nick)
	}
	if m := expect(t, s.c, "PONG"); m.Trailing() != "right-after" {
		t.Fatalf("got %q, want PONG right-after", m)
	}
	s.expectNothing(t, "before the answer")
	a.answer([]string{"Profile of tom"})
	want := []string{"311 Tom", "319 +&bitlbee", "312 TestNet", "301 lunch", "320 Profile of tom",
		"317 seconds idle, signon time", "318 End of /WHOIS list."}
	if got := whoisLines(t, s.c); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestWhoisAsync: the reply to each kind of answer, and that a late or
// second answer adds nothing.
func TestWhoisAsync(t *testing.T) {
	t.Parallel()
	full := func(info ...string) []string {
		out := []string{"311 Tom", "319 +&bitlbee", "312 TestNet", "301 lunch"}
		for _, l := range info {
			out = append(out, "320 "+l)
		}
		return append(out, "317 seconds idle, signon time", "318 End of /WHOIS list.")
	}
	for _, tc := range []struct {
		name   string
		atOnce bool                            // answer inside WhoisAsync, before it returns
		before func(s *asyncWhois, a whoisAsk) // once asked
		after  func(s *asyncWhois, a whoisAsk) // once the reply is read
		want   []string
	}{
		{name: "lines", before: func(_ *asyncWhois, a whoisAsk) {
			a.answer([]string{"Fetched for " + a.nick, "two\r\nlines", "nul\x00byte"})
		}, want: full("Fetched for tom", "two", "lines", "nul\uFFFDbyte")},
		{name: "no lines", before: func(_ *asyncWhois, a whoisAsk) { a.answer(nil) }, want: full()},
		{name: "answered before WhoisAsync returns", atOnce: true, want: full("At once for tom")},
		{name: "renamed meanwhile", before: func(_ *asyncWhois, a whoisAsk) {
			if err := a.fc.c.RenameUser(a.nick, "thomas"); err != nil {
				t.Errorf("RenameUser: %v", err)
			}
			a.answer([]string{"Fetched for " + a.nick})
		}, want: append([]string{"NICK thomas"}, full("Fetched for tom")...)},
		{name: "removed meanwhile", before: func(_ *asyncWhois, a whoisAsk) {
			a.fc.c.RemoveUser(a.nick, "gone")
			a.answer([]string{"Fetched for " + a.nick})
		}, want: []string{"QUIT gone", "401 No such nick/channel", "318 End of /WHOIS list."}},
		{name: "timed out, late answer ignored", before: func(s *asyncWhois, _ whoisAsk) {
			if n := s.timers.fire(); n != 1 {
				t.Errorf("fired %d timers, want 1", n)
			}
		}, after: func(_ *asyncWhois, a whoisAsk) { a.answer([]string{"Too late"}) }, want: full()},
		{name: "second answer ignored", before: func(_ *asyncWhois, a whoisAsk) { a.answer([]string{"First"}) },
			after: func(_ *asyncWhois, a whoisAsk) { a.answer([]string{"Second"}) }, want: full("First")},
		{name: "answered, then the timeout is stopped", before: func(s *asyncWhois, a whoisAsk) {
			a.answer([]string{"In time"})
			if n := s.timers.fire(); n != 0 {
				t.Errorf("fired %d timers after the answer, want 0", n)
			}
		}, want: full("In time")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var fn func(*fakeConn, string, func([]string))
			if tc.atOnce {
				fn = func(_ *fakeConn, nick string, answer func([]string)) { answer([]string{"At once for " + nick}) }
			}
			s := startAsyncWhois(t, testConfig(), fn)
			s.c.send(t, "WHOIS tom")
			var a whoisAsk
			if !tc.atOnce {
				a = s.ask(t)
				tc.before(s, a)
			}
			if got := whoisLines(t, s.c); !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if tc.after != nil {
				tc.after(s, a)
			}
			s.expectNothing(t, "after the reply")
		})
	}
}

// TestWhoisAsyncTimeout: the wait is Config.WhoisTimeout, by default three
// seconds.
func TestWhoisAsyncTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  time.Duration
		want time.Duration
	}{
		{"default", 0, 3 * time.Second},
		{"configured", 250 * time.Millisecond, 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.WhoisTimeout = tc.set
			s := startAsyncWhois(t, cfg, nil)
			s.c.send(t, "WHOIS tom")
			s.ask(t)
			if ds, _ := s.timers.durations(); !slices.Equal(ds, []time.Duration{tc.want}) {
				t.Errorf("got timeouts %v, want [%v]", ds, tc.want)
			}
		})
	}
}

// TestWhoisAsyncOrder: WHOIS replies come in the order asked; a reply that
// needs no answer (the client itself, an unknown nick) or got a quick one
// waits for a slower one asked before it, whether that one is answered or
// times out.
func TestWhoisAsyncOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		release func(s *asyncWhois, tom whoisAsk) // lets tom's reply go
		want    []string                          // 311, 320, 401 and 318 lines: command and nick
	}{
		{"first answered last", func(_ *asyncWhois, tom whoisAsk) { tom.answer([]string{"Tom's"}) },
			[]string{"311 tom", "320 tom", "318 tom", "311 ann", "320 ann", "318 ann", "311 me", "318 me", "401 nobody", "318 nobody"}},
		{"first timed out", func(s *asyncWhois, _ whoisAsk) {
			if n := s.timers.fire(); n != 1 {
				t.Errorf("fired %d timers, want 1 (tom's)", n)
			}
		}, []string{"311 tom", "318 tom", "311 ann", "320 ann", "318 ann", "311 me", "318 me", "401 nobody", "318 nobody"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startAsyncWhois(t, testConfig(), nil)
			s.c.send(t, "WHOIS tom", "WHOIS ann", "WHOIS me", "WHOIS nobody")
			tom, ann := s.ask(t), s.ask(t)
			if tom.nick != "tom" || ann.nick != "ann" {
				t.Fatalf("got WhoisAsync %q then %q, want tom then ann", tom.nick, ann.nick)
			}
			ann.answer([]string{"Ann's"})
			s.expectNothing(t, "while the first WHOIS waits")
			tc.release(s, tom)
			var got []string
			for ends := 0; ends < 4; {
				m := s.c.read(t)
				switch m.Command {
				case "311", "320", "401", "318":
					got = append(got, m.Command+" "+m.Param(1))
				}
				if m.Command == "318" {
					ends++
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			s.expectNothing(t, "after the replies")
		})
	}
}

// TestWhoisAsyncFirstAnswerKept: of two answers to a WHOIS still waiting
// for an earlier one, the first is shown and the second ignored.
func TestWhoisAsyncFirstAnswerKept(t *testing.T) {
	t.Parallel()
	s := startAsyncWhois(t, testConfig(), nil)
	s.c.send(t, "WHOIS tom", "WHOIS ann")
	tom, ann := s.ask(t), s.ask(t)
	ann.answer([]string{"First"})
	ann.answer([]string{"Second"})
	tom.answer(nil)
	got := append(whoisLines(t, s.c), whoisLines(t, s.c)...)
	want := []string{"311 Tom", "319 +&bitlbee", "312 TestNet", "301 lunch", "317 seconds idle, signon time", "318 End of /WHOIS list.",
		"311 Ann", "319 &bitlbee", "312 TestNet", "320 First", "317 seconds idle, signon time", "318 End of /WHOIS list."}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	s.expectNothing(t, "after the replies")
}

// TestWhoisAsyncLimit: a WHOIS beyond the ones a client may have waiting
// gets 263 at once; the others are answered, and then WHOIS works again.
func TestWhoisAsyncLimit(t *testing.T) {
	t.Parallel()
	s := startAsyncWhois(t, testConfig(), nil)
	for range maxWhoisInFlight + 1 {
		s.c.send(t, "WHOIS tom")
	}
	got := s.c.sync(t)
	checkMsgs(t, got, []want{w(rplTryAgain, "me", "WHOIS", "Please wait a while and try again.")})
	for range maxWhoisInFlight {
		s.ask(t).answer(nil)
	}
	for i := range maxWhoisInFlight {
		if m := s.c.readUntil(t, "318"); len(m) != 6 {
			t.Fatalf("reply %d: got %q, want 6 lines", i, msgStrings(m))
		}
	}
	s.c.send(t, "WHOIS ann")
	s.ask(t).answer([]string{"Again"})
	if got := whoisLines(t, s.c); !slices.Contains(got, "320 Again") {
		t.Errorf("got %q, want a reply with 320 Again", got)
	}
}

// TestWhoisAsyncClosed: a connection that ends with a WHOIS waiting stops
// its timeout, and an answer after that is harmless.
func TestWhoisAsyncClosed(t *testing.T) {
	t.Parallel()
	s := startAsyncWhois(t, testConfig(), nil)
	s.c.send(t, "WHOIS tom", "QUIT :bye")
	a := s.ask(t)
	s.fc.waitClosed(t)
	if ds, stopped := s.timers.durations(); len(ds) != 1 || stopped != 1 {
		t.Errorf("got %d timeouts, %d stopped; want 1 stopped", len(ds), stopped)
	}
	a.answer([]string{"After the end"})
	if n := s.timers.fire(); n != 0 {
		t.Errorf("fired %d timers, want 0", n)
	}
	if msg := s.c.expectClosed(t); !strings.Contains(msg, "bye") {
		t.Errorf("got ERROR %q, want the QUIT reason", msg)
	}
}

// TestWhoisAsyncWhole: the backend answers from its own goroutine while it
// delivers messages; every message arrives in order, none between the
// numerics of the reply.
func TestWhoisAsyncWhole(t *testing.T) {
	t.Parallel()
	const n = 200
	delivered := make(chan struct{})
	text := func(i int) string { return fmt.Sprintf("line %d of a conversation going on during the WHOIS", i) }
	s := startAsyncWhois(t, testConfig(), func(fc *fakeConn, nick string, answer func([]string)) {
		go func() {
			defer close(delivered)
			for i := range n {
				if i == n/2 {
					go answer([]string{"Profile of " + nick})
				}
				fc.c.Deliver(Delivery{From: "ann", Text: text(i)})
			}
		}()
	})
	s.c.send(t, "WHOIS tom")
	whois := readWhoisAmid(t, s.c, n, text)
	<-delivered
	if want := []string{"311", "319", "312", "301", "320", "317", "318"}; !slices.Equal(whois, want) {
		t.Errorf("got WHOIS numerics %v, want %v", whois, want)
	}
}

// readWhoisAmid reads n PRIVMSGs from ann (text(i) in order) and one WHOIS
// reply, failing if a PRIVMSG comes between its numerics; it returns them.
func readWhoisAmid(t *testing.T, c *tclient, n int, text func(int) string) []string {
	t.Helper()
	var whois []string
	next, start := 0, -1
	for i := 0; next < n || len(whois) == 0 || whois[len(whois)-1] != "318"; i++ {
		m := c.read(t)
		switch m.Command {
		case "PRIVMSG":
			if want := text(next); m.Trailing() != want || m.Name != "ann" {
				t.Fatalf("got %q, want PRIVMSG from ann %q", m, want)
			}
			if start >= 0 && whois[len(whois)-1] != "318" {
				t.Fatalf("got PRIVMSG %d inside the WHOIS reply after %v", next, whois)
			}
			next++
		default:
			if start < 0 {
				start = i
			}
			if i != start+len(whois) {
				t.Fatalf("got %s at %d, want it at %d: the WHOIS reply was split", m.Command, i, start+len(whois))
			}
			whois = append(whois, m.Command)
		}
	}
	return whois
}
