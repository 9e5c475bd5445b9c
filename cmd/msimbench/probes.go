package main

// The probes: a short script, on a stack of its own, that does once what
// the load never does, so that the metrics counting it move too: a typing
// notification, a zap, an away, a CHATHISTORY, an IM to an offline buddy
// (stored by the MSIM server and delivered at its login), an account
// logged in elsewhere (kicked) and an IM typed after that (refused), a
// wrong MSIM password, a burst of lines past the flood control, and the
// MSIM connections cut (lost, reconnected, an IM queued meanwhile).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// lineLog keeps every line a scripted client receives, for waits.
type lineLog struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{} // closed and replaced when a line comes
}

func newLineLog() *lineLog { return &lineLog{notify: make(chan struct{})} }

// handlers records every line.
func (l *lineLog) handlers() *handlers {
	return &handlers{raw: func(line []byte, _ time.Time) { l.add(string(line)) }}
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	close(l.notify)
	l.notify = make(chan struct{})
}

// mark is the index of the next line to come.
func (l *lineLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// waitFrom returns the first line, from index from on, that match
// accepts; it gives up when ctx ends or c's connection closes.
func (l *lineLog) waitFrom(ctx context.Context, c *ircClient, from int, what string, match func(string) bool) (string, error) {
	for i := from; ; {
		l.mu.Lock()
		lines, notify := l.lines, l.notify
		l.mu.Unlock()
		for ; i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i], nil
			}
		}
		select {
		case <-notify:
		case <-c.closed:
			return "", fmt.Errorf("%s: connection closed while waiting for %s: %v", c.nick, what, c.readErr)
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for %s: %w", c.nick, what, ctx.Err())
		}
	}
}

// lineMatch accepts a line of command cmd from nick from ("" = anyone)
// whose parameters contain every one of words (case-insensitive).
func lineMatch(from, cmd string, words ...string) func(string) bool {
	return func(line string) bool {
		var p parsed
		if !parseInto(&p, []byte(line)) || !strings.EqualFold(string(p.cmd), cmd) {
			return false
		}
		if from != "" && nickKey(string(p.from)) != nickKey(from) {
			return false
		}
		var all []string
		for _, x := range p.params {
			all = append(all, string(x))
		}
		text := strings.ToLower(strings.Join(all, " "))
		for _, w := range words {
			if !strings.Contains(text, strings.ToLower(w)) {
				return false
			}
		}
		return true
	}
}

// scriptCaps are the capabilities the scripted clients ask for.
var scriptCaps = []string{"message-tags", "server-time", "batch", "draft/chathistory", "away-notify"}

// probeAccounts: a and b are buddies, as are b and c; d, on a's list, is
// an MSIM-only account that stays offline until a probe logs it in; x's
// config has a wrong MSIM password.
func probeAccounts() (a, b, c, d, x *acct, all []*acct) {
	a = &acct{name: "probea", ircUser: true, buddies: []string{"probeb", "probed"}}
	b = &acct{name: "probeb", ircUser: true, buddies: []string{"probea", "probec"}}
	c = &acct{name: "probec", ircUser: true, buddies: []string{"probeb"}}
	d = &acct{name: "probed", buddies: []string{"probea"}}
	x = &acct{name: "probex", ircUser: true, gwPassword: "wrong-" + benchPassword}
	return a, b, c, d, x, []*acct{a, b, c, d, x}
}

// Flood control of the probes' gateway: loose enough that the script's
// clients are never slowed, tight enough that the flood probe's burst is.
const (
	probeFloodRate  = 50
	probeFloodBurst = 10
	probeFloodLines = 3 * probeFloodBurst
	// probeReconnect is the first MSIM reconnection delay of the probes'
	// gateway: the network probe waits for a few.
	probeReconnect = 100 * time.Millisecond
)

// probeResult names the probes that ran and how long the script took.
type probeResult struct {
	Steps []string `json:"steps"`
	Ms    float64  `json:"ms"`
}

// runProbes runs the script on a fresh stack (history on: the
// CHATHISTORY probe needs it). Every step must see its effect (a line on
// IRC, an event on MSIM) within the scenario's timeout.
func runProbes(ctx context.Context, e *env) (probeResult, error) {
	var res probeResult
	if e.external() {
		return res, errors.New("the probes need a stack of their own (not in external mode)")
	}
	a, b, c, d, x, accts := probeAccounts()
	proxy, err := newLinkProxy()
	if err != nil {
		return res, err
	}
	defer proxy.close()
	t, err := e.start("probes", accts, gwOptions{floodRate: probeFloodRate, floodBurst: probeFloodBurst,
		reconnectMin: probeReconnect, proxy: proxy})
	if err != nil {
		return res, err
	}
	defer t.close()
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	logs := map[string]*lineLog{}
	for _, u := range accts {
		logs[u.name] = newLineLog()
	}
	opts := func(u *acct) dialOpts { return dialOpts{caps: scriptCaps, h: logs[u.name].handlers()} }
	online := func(u *acct) []string {
		var w []string
		for _, n := range u.buddies {
			if n != d.name {
				w = append(w, n)
			}
		}
		return w
	}
	clients, err := connectAllWith(cctx, t.ircAddr, []*acct{a, b, c}, online, opts)
	if err != nil {
		return res, fmt.Errorf("probes: %w", err)
	}
	defer closeAll(clients)
	ca, cb, cc := clients[0], clients[1], clients[2]
	la, lb, lc := logs[a.name], logs[b.name], logs[c.name]

	// send writes lines from c and waits for the line of l that match
	// accepts (lines from the mark taken before writing).
	send := func(c *ircClient, l *lineLog, what string, match func(string) bool, lines ...string) error {
		from := l.mark()
		if err := c.write(true, lines...); err != nil {
			return err
		}
		_, err := l.waitFrom(cctx, c, from, what, match)
		return err
	}
	// sendSee writes from one client and waits for another to see it.
	sendSee := func(src *ircClient, dst *ircClient, l *lineLog, what string, match func(string) bool, lines ...string) error {
		from := l.mark()
		if err := src.write(true, lines...); err != nil {
			return err
		}
		_, err := l.waitFrom(cctx, dst, from, what, match)
		return err
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"typing", func() error {
			return sendSee(ca, cb, lb, "a typing notification", lineMatch(a.name, "TAGMSG", b.name),
				"@+typing=active TAGMSG "+b.name+"\r\n")
		}},
		{"zap", func() error {
			return sendSee(ca, cb, lb, "a zap", lineMatch(a.name, "PRIVMSG", b.name, "zap"),
				"PRIVMSG root :zap "+b.name+"\r\n")
		}},
		{"im", func() error {
			return sendSee(ca, cb, lb, "an IM", lineMatch(a.name, "PRIVMSG", b.name, "probe hello"),
				"PRIVMSG "+b.name+" :probe hello\r\n")
		}},
		{"away", func() error {
			away := func(line string) bool {
				return lineMatch(a.name, "AWAY", "gone")(line) || lineMatch("", "MODE", "-v", a.name)(line)
			}
			return sendSee(ca, cb, lb, "the buddy going away", away, "AWAY :gone for a probe\r\n")
		}},
		{"chathistory", func() error {
			// The IM above is in the history: the batch holds it.
			from := la.mark()
			if err := ca.write(true, "CHATHISTORY LATEST "+b.name+" * 10\r\n"); err != nil {
				return err
			}
			if _, err := la.waitFrom(cctx, ca, from, "the IM in the CHATHISTORY batch", lineMatch("", "PRIVMSG", "probe hello")); err != nil {
				return err
			}
			_, err := la.waitFrom(cctx, ca, from, "the end of the CHATHISTORY batch", lineMatch("", "BATCH", "-"))
			return err
		}},
		{"offline IM", func() error {
			// The IM to offline d is stored by the MSIM server before the
			// IM to b that follows it on a's one MSIM connection is routed.
			if err := sendSee(ca, cb, lb, "an IM sent after the offline one", lineMatch(a.name, "PRIVMSG", b.name, "after offline"),
				"PRIVMSG "+d.name+" :probe stored\r\n", "PRIVMSG "+b.name+" :after offline\r\n"); err != nil {
				return err
			}
			return expectStoredIM(cctx, t.msimAddr, d, a.uid, "probe stored")
		}},
		{"kick", func() error {
			from := lc.mark()
			cl, err := msim.Dial(cctx, msim.ClientConfig{Addr: t.msimAddr, Email: c.email(), Password: benchPassword, Log: quietLog()})
			if err != nil {
				return fmt.Errorf("logging %s in elsewhere: %w", c.name, err)
			}
			defer cl.Close()
			go func() {
				for range cl.Events() {
				}
			}()
			_, err = lc.waitFrom(cctx, cc, from, "the notice that the account logged in elsewhere", func(l string) bool {
				return strings.Contains(strings.ToLower(l), "logged in from another place")
			})
			if err != nil {
				return err
			}
			// An IM typed now is refused with a notice.
			return send(cc, lc, "the notice that the IM was not sent", lineMatch(b.name, "NOTICE", "not sent"),
				"PRIVMSG "+b.name+" :after the kick\r\n")
		}},
		{"bad password", func() error {
			lx := logs[x.name]
			cx, err := dialIRCWith(cctx, t.ircAddr, x.name, x.name+":"+benchPassword, x.channel(), nil, dialOpts{caps: scriptCaps, h: lx.handlers()})
			if err != nil {
				return err
			}
			defer cx.Close()
			_, err = lx.waitFrom(cctx, cx, 0, "the notice that the MSIM login failed", func(l string) bool {
				return strings.Contains(strings.ToLower(l), "login failed")
			})
			return err
		}},
		{"flood", func() error {
			var lines []string
			for i := range probeFloodLines {
				lines = append(lines, fmt.Sprintf("PING :flood%d\r\n", i))
			}
			return send(cb, lb, "the answer to the last PING", lineMatch("", "PONG", fmt.Sprintf("flood%d", probeFloodLines-1)), lines...)
		}},
		{"network", func() error {
			// Last: every link of the stack drops. An IM typed while a's
			// link is down is queued, and sent once it is back, after
			// at least one refused login.
			fromA, fromB := la.mark(), lb.mark()
			proxy.cut(true)
			if _, err := la.waitFrom(cctx, ca, fromA, "the notice that the MSIM link was lost", func(l string) bool {
				return strings.Contains(strings.ToLower(l), "lost the msim connection")
			}); err != nil {
				return err
			}
			if err := send(ca, la, "the notice that the IM is queued", lineMatch(b.name, "NOTICE", "queued"),
				"PRIVMSG "+b.name+" :typed while the link is down\r\n"); err != nil {
				return err
			}
			if err := waitUntil(cctx, "a login refused while the network is down", func() bool { return proxy.refused.Load() > 0 }); err != nil {
				return err
			}
			proxy.pass()
			_, err := lb.waitFrom(cctx, cb, fromB, "the queued IM once the links are back", lineMatch(a.name, "PRIVMSG", b.name, "typed while the link is down"))
			return err
		}},
	}
	var failed []string
	for _, st := range steps {
		if ctx.Err() != nil {
			break
		}
		if err := st.do(); err != nil {
			failed = append(failed, st.name+": "+err.Error())
			continue
		}
		res.Steps = append(res.Steps, st.name)
	}
	res.Ms = ms(time.Since(start))
	t.finishMetrics()
	if len(failed) > 0 {
		return res, fmt.Errorf("probes failed: %s", strings.Join(failed, "; "))
	}
	return res, t.gw.alive()
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// expectStoredIM logs u in to the MSIM server and waits for the offline IM
// from uid with text.
func expectStoredIM(ctx context.Context, addr string, u *acct, from msim.UID, text string) error {
	cl, err := msim.Dial(ctx, msim.ClientConfig{Addr: addr, Email: u.email(), Password: benchPassword, Log: quietLog()})
	if err != nil {
		return fmt.Errorf("logging %s in: %w", u.name, err)
	}
	defer cl.Close()
	for {
		select {
		case ev, ok := <-cl.Events():
			if !ok {
				return fmt.Errorf("%s: the MSIM connection ended before the stored IM came", u.name)
			}
			if im, ok := ev.(msim.IMEvent); ok && im.From == from && strings.Contains(im.Text, text) {
				if !im.Offline {
					return fmt.Errorf("%s: the IM came live, not from storage", u.name)
				}
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the stored IM: %w", u.name, ctx.Err())
		}
	}
}
