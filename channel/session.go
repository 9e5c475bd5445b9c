package channel

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/sortidx"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// Events posted to a session's goroutine. Only this package implements them.
type event interface{ isEvent() }

// ircInput is a message the IRC client sent. They are pooled: handle
// gives each back once it is done with it.
type ircInput struct {
	at *attachment
	in ircd.Input
}

var ircInputs = sync.Pool{New: func() any { return new(ircInput) }}

func newIRCInput(at *attachment, in ircd.Input) *ircInput {
	ev := ircInputs.Get().(*ircInput)
	ev.at, ev.in = at, in
	return ev
}

// release gives ev back to the pool; nothing may use it after.
func (ev *ircInput) release() {
	*ev = ircInput{}
	ircInputs.Put(ev)
}

// ircBatch is the messages of IRC lines read together (Messages), one
// event for all, handled in order as that many ircInputs would be. They
// are pooled too: handle gives each back once its inputs are taken.
type ircBatch struct {
	ins []*ircInput
}

var ircBatches = sync.Pool{New: func() any { return new(ircBatch) }}

// release gives b back to the pool, its inputs taken (each is released
// on its own); nothing may use it after.
func (b *ircBatch) release() {
	clear(b.ins)
	b.ins = b.ins[:0]
	ircBatches.Put(b)
}

type ircAway struct {
	at   *attachment
	text string
}
type ircClosed struct {
	at     *attachment
	reason string // ircd's (ircd.ShutdownReason: the gateway closed it)
}
type linkResult struct {
	a   *account
	gen int
	cl  MSIMClient
	err error
}
type retryDue struct {
	a   *account
	gen int
}
type whoisAsk struct {
	at     *attachment // the connection asking (nil: none)
	nick   string
	answer func(lines []string) // ircd's: called once, never blocks
}

// call runs a function on the session goroutine: the way async work (MSIM
// requests) hands its result back to the owner.
type call func()

func (*ircInput) isEvent()  {}
func (*ircBatch) isEvent()  {}
func (ircAway) isEvent()    {}
func (ircClosed) isEvent()  {}
func (linkResult) isEvent() {}
func (retryDue) isEvent()   {}
func (whoisAsk) isEvent()   {}
func (call) isEvent()       {}

// session is a user's MSIM accounts and the IRC connection attached to it,
// if any (attach.go). All fields below the channel are owned by the
// session's goroutine (loop), which runs only while there is work.
type session struct {
	b      *Bridge
	irc    ircConn
	user   User        // changed by identify, register and drop (under b.mu)
	mem    *userMemory // changed with user
	log    *logrus.Entry
	ctx    context.Context
	cancel context.CancelFunc
	events chan event
	done   chan struct{}
	gone   bool // the bridge has forgotten it (Bridge.ended); b.mu
	// workers are the goroutines that dial MSIM, wait for an MSIM request
	// or read or write the store for the session; each is given only what
	// it may touch (the MSIM client, the store, values copied out), and
	// hands its result back by posting. shutdown waits for them.
	workers sync.WaitGroup
	// wake is the loop's one wake-up (capacity 1). Whoever leaves the loop
	// work (an event queued, MSIM events waiting, a Sent report, the
	// linger's tick, the session's end) sends on it without blocking once
	// the work is there (signal), and the loop looks at every source
	// before it waits again: it waits on one channel, not in a select
	// over one per source, which locks them all each time.
	wake chan struct{}
	// msimWaiting is the merged "events waiting" signal of every account's
	// MSIM client (their Notify); the session takes the events itself.
	// lingerDue: the linger's tick came (see loop).
	msimWaiting, lingerDue atomic.Bool
	// rmu guards running (a loop goroutine runs, or is being started),
	// live (run was called: posts start the loop), ended, drained
	// (shutdown has begun its last look at the queue), waiting and
	// closing.
	rmu                           sync.Mutex
	running, live, ended, drained bool
	closing                       string // closeClients's reason, until the connections are closed
	loops                         int    // goroutines started for the session (tests read it)
	afterEnd                      func() // run's: called once the session has ended
	// waiting: the loop (or waitSent) found no work under rmu and waits
	// on wake, or is about to; the next producer sends it a wake-up
	// (wakeWaiting). Work left while it runs needs none: it looks again
	// before it waits.
	waiting bool
	// endAs says why the session ends, in what its links leave to tell
	// ("as you disconnected" when unset; see endWith and linksEndAs).
	endAs string
	evbuf []msim.Event
	// ids holds the msgids of the IMs and zaps of the batch of events
	// being taken from an MSIM client (takeMSIM), one after another in one
	// piece of memory: each is a slice of what it has written, which it
	// never writes over (a batch starts a new one). Outside a batch it
	// has no room, and an id is a string of its own.
	ids strings.Builder
	// cl holds the attached connections (s.irc is cl, except while one
	// client's world is built); nattached counts them, for the bridge to
	// read from other goroutines.
	cl        *clients
	nattached atomic.Int32
	sender    *attachment // the connection whose input is being handled
	// handedTo: the connection identify handed over to another session
	// (handOver) as this one ends; what the reports of the IMs handed to
	// it leave to tell lost is told there (endLost).
	handedTo *attachment
	// historyFailed is set once the user was told the history failed,
	// historyFull once they were told it left entries out; both are
	// cleared as the session becomes another user's (becomeUser).
	historyFailed, historyFull bool
	// histFailed is what the history writer calls for an entry it could
	// not append (made by record; nil again when the log changes).
	histFailed func(error)
	// histLeftOut: entries left out of the history, not yet counted
	// (countLeftOut).
	histLeftOut int
	// marking holds, by nickKey, the MARKREADs of nicks under way (being
	// looked up on MSIM, or written: markRead), and the read-marker
	// questions that wait for them.
	marking map[string]*marking
	// saving holds, by client name, the position saves under way
	// (savePosition): the client's next replay and save wait for them.
	saving map[string]*posSave
	// markers are the read markers to write, in the order asked; the
	// first is being written (markread.go).
	markers []*markWrite

	accounts  []*account
	byChannel map[string]*account           // by nickKey(channel)
	nicks     sortidx.Index[*buddy, string] // by nick, case folded, across all accounts
	away      string                        // the IRC user's AWAY text
	realName  string                        // the real name a client set last with SETNAME ("" = none): every client's
	aways     uint64                        // AWAYs from the clients so far (attachment.awayAt)
	out       outbox                        // IMs on their way to the IRC client
	busy      bool                          // identify, register or drop is under way
	// deferred holds what the client typed while busy, handled in order
	// once it is done (or by the session identify moves the client to).
	deferred  []event
	dropUntil time.Time // drop was asked for and awaits yes until then
	dialing   int       // logins whose result is not handled yet (b.rel counts them)
	// dropping: a confirmed drop is under way (busy too); dropTold: the
	// user, typing meanwhile, was told so.
	dropping, dropTold bool
	// dropHist: what was to be recorded while the drop was under way, kept
	// in case it fails (then recorded); dropHistLost: left out past
	// maxDropHist.
	dropHist     []store.HistoryEntry
	dropHistLost int
	// dropLeft takes, if the session ends while the drop is under way,
	// what it kept for the drop's failure (dropEnd), which the drop's
	// worker keeps then if it failed (droppedAfterEnd).
	dropLeft chan dropLeftovers
	// sawQueued: by client name, the msgids of IMs queued while the link
	// was down and sent after the client left, which it saw when they were
	// typed (seenQueued).
	sawQueued map[string][]string
	// replayWritten: by client name, the history ID of each msgid a
	// connection of that name was replayed and wrote, while its position
	// may be before it (a replay's conversations are written one after
	// the other, so the position may stop before an entry not written,
	// with later ones that were); its next replay leaves them out. They
	// are forgotten as a save of its position passes them (savePosition).
	// Kept in memory only: after a restart, or once the session is
	// another user's, the next replay may show them again (a duplicate,
	// never a loss).
	replayWritten map[string]map[string]int64
	// queueUnread: the accounts whose IMs queued in the store (typed
	// while the link was down) could not be read as the account was
	// made (newAccount); the user is told (openAccount), and each login
	// reads them again (rereadQueue) until a read succeeds.
	queueUnread map[*account]bool
	// notesWait: notes taken from the memory (takeNotes) that wait to be
	// told to the clients, paced (pumpNotes); notesOut: the lines of
	// those handed to ircd and not yet reported (written or not).
	notesWait []ircd.Delivery
	notesOut  atomic.Int64
}

// newSession makes u's session with c attached (nil: none).
func newSession(b *Bridge, c ircConn, u User, mem *userMemory) *session {
	ctx, cancel := context.WithCancel(b.ctx)
	s := &session{
		b: b, user: u, mem: mem,
		log:    b.log.WithField("user", u.Name),
		ctx:    ctx,
		cancel: cancel,
		events: make(chan event, 64),
		done:   make(chan struct{}),
		nicks:  sortidx.New(cmpBuddyNick), byChannel: map[string]*account{},
		out: newOutbox(),

		wake: make(chan struct{}, 1),
	}
	s.cl = &clients{s: s, nick: u.Name}
	s.irc = s.cl
	if c != nil {
		s.cl.add(newAttachment(c, s, nil))
		s.countAttached(1)
	}
	for _, ac := range u.Accounts {
		s.accounts = append(s.accounts, s.newAccount(ac))
	}
	return s
}

func (s *session) newAccount(ac Account) *account {
	a := &account{cfg: ac, buddies: newBuddyIndex(), pending: map[msim.UID][]seqEvent{}, status: msim.StatusOnline}
	a.channel = s.channelName(ac)
	s.b.met.accountOpened()
	q, err := s.mem.readQueued(ac.Email) // typed before the user last left
	a.queue = q
	if err != nil {
		put(&s.queueUnread, a, true) // told by openAccount, read again at its login
	}
	if st, ok := statusNames[ac.status]; ok {
		a.status, a.statusText = st, ac.statusText
	}
	return a
}

// rereadQueue reads again, as ev logs its account in, the IMs queued
// in the store for it whose read failed (queueUnread), so that the
// login sends them (flushQueue): merged with those typed since, in the
// order typed, each once. A read that fails again is told, and tried
// at the next login; what was typed since waits behind them, unsent.
func (s *session) rereadQueue(ev linkResult) {
	a := ev.a
	if !s.queueUnread[a] || ev.err != nil || ev.gen != a.gen {
		return
	}
	q, err := s.mem.readQueued(a.cfg.Email)
	if err != nil {
		text := "The messages you typed earlier while the MSIM link was down still could not be read from the gateway's database; they stay queued there, and are read again at the next login."
		if n := len(a.queue); n > 0 {
			// Not sent (flushQueue): they would go out before the older ones.
			text += fmt.Sprintf(" The %s you typed since %s to wait behind them, and %s sent after them.",
				plural(n, "message", "messages"), map[bool]string{true: "is queued", false: "are queued"}[n == 1], map[bool]string{true: "is", false: "are"}[n == 1])
		}
		s.status(a, "%s", text)
		return
	}
	delete(s.queueUnread, a)
	// q holds those typed since too (the memory queued them as a.queue
	// did): a.queue's copies keep what the session knows of them
	// (seenBy), and one q lacks is kept all the same, after it.
	read := make(map[int64]int, len(q))
	for i, m := range q {
		read[m.id] = i
	}
	for _, m := range a.queue {
		if i, ok := read[m.id]; ok {
			q[i] = m
		} else {
			q = append(q, m)
		}
	}
	a.queue = q
}

// post hands ev to the session goroutine; false once the session has ended.
// An event that reaches the queue after the session's last look at it is
// refused there (refuse), by the poster: nothing posted is left without
// an answer.
func (s *session) post(ev event) bool {
	if s.ctx.Err() != nil { // an ended session's queue has room, and no reader
		return false
	}
	select {
	case s.events <- ev: // without the select below while there is room
	default:
		select {
		case s.events <- ev:
		case <-s.ctx.Done():
			return false
		}
	}
	if s.kick() {
		s.refuseLate()
	}
	return true
}

// errSessionEnded answers a request the session ended before.
var errSessionEnded = errors.New("the session has ended")

// postAnswer hands f to the session goroutine, for a worker whose result
// someone waits for: if the session ends before f runs, refused is
// called instead (refuse), so the asker is answered either way.
func (s *session) postAnswer(f func(), refused func()) {
	if !s.post(atCall{f: func(*session) { f() }, refused: refused}) {
		refused()
	}
}

// refuse answers an event the session will not handle, as it ended (or,
// handed over by s, the session it was for): a WHOIS without the extra
// lines, a call on the connection's behalf with its refusal, a message the
// user typed with a notice that it was not sent. It runs on whatever
// goroutine finds the event so; it uses nothing of s's but the bridge.
func (s *session) refuse(ev event) {
	switch ev := ev.(type) {
	case whoisAsk:
		ev.answer(nil)
	case atCall:
		if ev.refused != nil {
			ev.refused()
		}
	case *ircInput:
		if d, ok := s.notSentNotice(ev.in, "was not handled: your session ended first"); ok {
			ev.at.c.Deliver(d)
		}
		ev.release()
	case *ircBatch:
		for _, in := range ev.ins {
			s.refuse(in)
		}
		ev.release()
	}
}

// refuseLate empties the queue of a session that has ended, refusing
// what it finds (refuse).
func (s *session) refuseLate() {
	for {
		select {
		case ev := <-s.events:
			s.refuse(ev)
		default:
			return
		}
	}
}

// signal leaves the loop a wake-up, without blocking. A producer takes
// rmu after leaving work and signals if the loop was waiting then
// (wakeWaiting), and the loop looks for work under rmu before it waits,
// noting that it does (waiting): so either the loop sees the work there,
// or the producer finds it waiting and signals after the loop took its
// last wake-up. (A send that finds the channel full reads its count
// without the channel's lock: without rmu, nothing would order it after
// the loop's receive.)
func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// kick is what whoever leaves the loop work does next: it wakes the
// session's goroutine, and starts it unless it runs (or the session has
// ended, or run was not called yet: events wait until it is). It reports
// whether the session has begun its last look at its queue (drained):
// what was queued before is refused there, what comes after is the
// caller's to refuse.
func (s *session) kick() (drained bool) {
	s.rmu.Lock()
	start := s.live && !s.running && !s.ended
	if start {
		s.running = true
		s.loops++
	}
	drained = s.drained
	wake := s.wakeWaiting()
	s.rmu.Unlock()
	if wake {
		s.signal()
	}
	if start {
		go s.loop()
	}
	return drained
}

func (s *session) say(a *account, f string, args ...any) {
	s.reply(replyCtx{a: a, target: a.channel}, f, args...)
}

// replyCtx says where command output goes: the control channel, or a query
// with the service nick.
type replyCtx struct {
	a      *account
	target string // channel name, or "" for a private reply
}

func (s *session) reply(r replyCtx, f string, args ...any) {
	text := f
	if len(args) > 0 {
		text = fmt.Sprintf(f, args...)
	}
	s.irc.Deliver(ircd.Delivery{Command: "PRIVMSG", From: s.b.cfg.ServiceNick, Target: r.target, Text: text})
}

func (s *session) notice(a *account, text string) {
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Target: a.channel, Text: text})
}

// over reports whether s has ended (done is closed); the bridge may not
// have forgotten it yet (ended runs after).
func (s *session) over() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// run starts the session: from now on its goroutine runs whenever there is
// work, until the session ends; then afterEnd is called.
func (s *session) run(afterEnd func()) {
	s.rmu.Lock()
	s.live, s.afterEnd = true, afterEnd
	s.rmu.Unlock()
	context.AfterFunc(s.ctx, func() { s.kick() }) // the end is work too
	s.kick()
}

// loop handles what is queued, and returns once a whole sessionLinger
// has passed without work (whoever leaves work next starts it again) or
// the session ends.
func (s *session) loop() {
	idle := false
	defer func() {
		if idle {
			return
		}
		s.rmu.Lock()
		s.ended = true
		s.rmu.Unlock()
		defer s.afterEnd()
		defer close(s.done)
		defer s.countLeftOut() // after shutdown's
		defer s.shutdown()
		if r := recover(); r != nil {
			s.endWith("as the gateway failed (an internal error)")
			s.log.WithField("panic", r).Errorf("session crashed: %s", debug.Stack())
			s.irc.Close("Internal error")
		}
	}()
	// A busy session does not end its goroutine between two events (and
	// grow a new one's stack again for the next): it stops once a whole
	// sessionLinger has passed without work.
	// The linger's tick is left like any other work (a timer's channel in
	// the wait would be put on and taken off the runtime's timers at every
	// wait).
	linger := time.AfterFunc(sessionLinger, s.wakeLinger)
	defer linger.Stop()
	worked := false
	for {
		// A turn for each source, so that none waits for another's flood.
		if s.ctx.Err() != nil {
			return // what waits is shutdown's
		}
		took := false
		select {
		case ev := <-s.events:
			if !s.handleQueued(ev) {
				return
			}
			took = true
		default:
		}
		if s.msimWaiting.Swap(false) {
			s.takeMSIM()
			took = true
		}
		if s.out.drained.Swap(false) {
			s.afterReports()
			took = true
		}
		s.countLeftOut()
		if took {
			worked = true
			continue
		}
		if s.lingerDue.Swap(false) {
			// Stop, unless there was work since the last tick or something
			// came meanwhile (its poster saw running set and started
			// nothing).
			s.rmu.Lock()
			if !worked && len(s.events) == 0 && !s.msimWaiting.Load() && !s.out.drained.Load() && s.ctx.Err() == nil {
				s.running, s.waiting = false, false
				s.rmu.Unlock()
				idle = true
				return
			}
			s.rmu.Unlock()
			worked = false
			linger.Reset(sessionLinger)
			continue
		}
		if s.nothingWaiting() {
			<-s.wake
		}
	}
}

// nothingWaiting reports, under rmu, whether no work waits for the loop,
// and if so notes that it waits: work left before a producer's kick is
// seen here, or that kick finds it waiting and wakes it (see signal).
func (s *session) nothingWaiting() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.waiting = len(s.events) == 0 && !s.msimWaiting.Load() && !s.out.drained.Load() && !s.lingerDue.Load() && s.ctx.Err() == nil
	return s.waiting
}

// wakeWaiting reports whether the loop waits for a wake-up, which the
// caller is to send (signal), and notes that it is sent: the producers
// after it, until the loop looks again, need send none. Caller holds rmu.
func (s *session) wakeWaiting() bool {
	w := s.waiting
	s.waiting = false
	return w
}

// wakeLinger is the linger timer's tick: work for the loop (see loop).
func (s *session) wakeLinger() {
	s.lingerDue.Store(true)
	s.rmu.Lock()
	wake := s.wakeWaiting()
	s.rmu.Unlock()
	if wake {
		s.signal()
	}
}

// sessionLinger is how long a session's goroutine goes without work
// before it stops (between one and two of them after the last): long
// enough to stay up between the events of a busy session, short enough
// that an idle one soon holds no goroutine.
const sessionLinger = 250 * time.Millisecond

// handleQueued handles a posted event, then what was deferred while the
// session was busy; false when the session is to end.
func (s *session) handleQueued(ev event) bool {
	if b, ok := ev.(*ircBatch); ok {
		return s.handleBatch(b)
	}
	if !s.handle(ev) {
		return false
	}
	for !s.busy && len(s.deferred) > 0 && s.ctx.Err() == nil {
		ev := s.deferred[0]
		s.deferred = s.deferred[1:]
		if !s.handle(ev) {
			return false
		}
	}
	return true
}

// handleBatch handles the inputs of a batch each as if posted alone: once
// the session has ended (by one of them, by another goroutine, or by a
// panic handling one), the rest are refused, as the queue's events are.
func (s *session) handleBatch(b *ircBatch) bool {
	next := 0 // the first input not handled yet
	defer func() {
		for _, left := range b.ins[next:] {
			s.refuse(left)
		}
		b.release()
	}()
	for next < len(b.ins) {
		if s.ctx.Err() != nil {
			return false
		}
		in := b.ins[next]
		next++
		if !s.handleQueued(in) {
			return false
		}
	}
	return true
}

// handle runs one posted event; false when the session is to end.
func (s *session) handle(ev event) bool {
	switch ev := ev.(type) {
	case *ircInput:
		if s.ctx.Err() != nil {
			// As the loop (and handleBatch): once the session has ended,
			// an input is refused, never sent. Reached by a hand-over's own
			// events (handOver), which another goroutine may have ended.
			s.refuse(ev) // releases it
			return false
		}
		if s.busy {
			if len(s.deferred) >= maxDeferred {
				s.refuseBusy(ev)
				ev.release()
				break
			}
			s.deferred = append(s.deferred, ev)
			if s.dropping && !s.dropTold {
				s.dropTold = true
				s.reply(replyCtx{}, "Your drop is under way: what you type now is handled once it is done.")
			}
			break
		}
		if s.cl.attached(ev.at) {
			s.sender = ev.at
			s.onIRC(ev.in)
			s.sender = nil
		}
		ev.release()
	case *ircBatch:
		// As the loop handles one (handleQueued): once the session has
		// ended, the rest are refused. Reached by a hand-over's own events
		// (handOver), which another goroutine may have ended meanwhile.
		return s.handleBatch(ev)
	case ircAway:
		if s.cl.attached(ev.at) {
			s.aways++
			ev.at.away, ev.at.awayAt = ev.text, s.aways
			s.updateAway()
		}
	case ircClosed:
		if !s.closed(ev.at) {
			if ev.reason == ircd.ShutdownReason {
				s.endWith(shutDownAs) // before the bridge's own shutdown
			}
			return false
		}
	case atCall:
		ev.f(s)
	case attachReq:
		ev.done <- s.attach(ev.at, ev.accounts)
	case linkResult:
		s.rereadQueue(ev)
		s.onLinkResult(ev)
	case retryDue:
		if ev.gen == ev.a.gen && ev.a.state == linkWaiting {
			s.b.met.reconnecting()
			s.connect(ev.a)
		}
	case whoisAsk:
		s.onWhois(ev)
	case call:
		ev()
	}
	return true
}

func (s *session) shutdown() {
	s.cancel()
	for _, at := range s.cl.ats {
		s.savePosition(at)
	}
	if n := s.nattached.Load(); n > 0 {
		s.countAttached(-n)
	}
	as := s.linksEndAs()
	for _, a := range s.accounts {
		s.release(a, as)
		a.queue = nil // kept by the user's memory for the next session
	}
	for ; s.dialing > 0; s.dialing-- { // results that will not be handled
		s.b.rel.end()
	}
	s.holdOutbox()
	s.endLost() // holdOutbox waited for the reports: what they left to tell is told or logged
	s.dropEnd()
	s.markersEnd()
	s.workers.Wait() // a dial that finished meanwhile has held its IMs
	s.keepNotesWaiting()
	// The IMs ircd reported not shown (holdOutbox waited for them) are
	// held by the memory's writer, and the notes not told are kept by
	// it: written before the session ends.
	s.mem.settle()
	// Read-marker questions waiting for a MARKREAD's lookup, whose end
	// will not be handled: answered with no marker.
	for _, m := range s.marking {
		for _, answer := range m.answers {
			answer(time.Time{})
		}
	}
	s.marking = nil
	// What was posted and not handled is refused (refuse): WHOIS is
	// answered without the extra lines, a connection's call with its
	// refusal. A login that ended as the session did keeps its IMs. What
	// is posted after this look is refused by its poster (post).
	s.rmu.Lock()
	s.drained = true
	s.rmu.Unlock()
	// Connections the session was asked to close are closed, though the
	// ask waits in the queue, refused: they would stay open on a session
	// that no longer answers them.
	s.closeAsked()
	for {
		select {
		case ev := <-s.events:
			if lr, ok := ev.(linkResult); ok {
				s.keepLogin(lr.a.owner, lr.a, lr.cl, lr.err) // released above, or as it was taken out
			} else {
				s.refuse(ev)
			}
			continue
		default:
		}
		return
	}
}

// endWith ends the session (from any goroutine), saying why in what its
// links leave to tell (as: "as ..."). The first reason given stands.
func (s *session) endWith(as string) {
	s.rmu.Lock()
	if s.endAs == "" {
		s.endAs = as
	}
	s.rmu.Unlock()
	s.cancel()
}

// shutDownAs says, in what a link leaves to tell, that the gateway's
// shutdown closed it.
const shutDownAs = "as the gateway shut down"

// linksEndAs says why the session's links close as it ends: the reason
// it was ended with, the gateway's shutdown, or else its user's leaving.
func (s *session) linksEndAs() string {
	s.rmu.Lock()
	as := s.endAs
	s.rmu.Unlock()
	switch {
	case as != "":
		return as
	case s.b.ctx.Err() != nil:
		return shutDownAs
	}
	return "as you disconnected"
}

// release ends an account's link as the session lets it go (as says why,
// in what the link leaves to tell: "as you disconnected"): the IMs from
// strangers whose profile was still being fetched and what the MSIM
// client still held are kept for the user's next session, and no timer
// runs on.
// It returns once what the memory's writer was given is written (settle):
// what comes next (the user's next session, here or on another instance,
// or the account's or user's deletion) finds it in the store.
func (s *session) release(a *account, as string) {
	a.owner = s.ownerNow()
	for _, evs := range a.pending {
		for _, se := range evs {
			if se.held == 0 {
				s.mem.holdEvent(a.cfg.Email, se)
			}
		}
	}
	a.pending = nil
	a.stopTimer()
	s.b.met.accountClosed(a.state)
	if cl := a.client; cl != nil {
		a.client = nil
		_ = cl.Close()
		s.holdTaken(a, cl.TakeEvents(nil), as)
	}
	s.mem.settle()
}

// holdTaken keeps the IMs of events taken from a client closed as the user
// left, and notes for the next connection the IMs of theirs it never sent
// (saying why the link closed: as), those for them it dropped
// (droppedText) and those it could not read (unreadableText).
func (s *session) holdTaken(a *account, evs []msim.Event, as string) {
	for _, ev := range evs {
		if e, ok := ev.(msim.ErrorEvent); ok && e.Unreadable {
			s.mem.note(accountNote(a, unreadableText(e)))
			continue
		}
		s.holdIM(a, ev)
		d, ok := ev.(msim.DisconnectedEvent)
		if !ok {
			continue
		}
		if text := droppedText(d.Reason == msim.DisconnectOverflow, d.DroppedIMs, s.nicksOf(a, d.DroppedFrom)); text != "" {
			s.mem.note(accountNote(a, text))
		}
		for _, im := range d.Unsent {
			s.b.met.imDropped()
			s.mem.note(fmt.Sprintf("Not sent to %s (the MSIM link closed %s): %s", s.nickOf(a, im.To), as, im.Text))
		}
		for _, im := range d.Unconfirmed {
			s.mem.note(fmt.Sprintf("Maybe not received by %s (the MSIM link closed just after it was sent): %s", s.nickOf(a, im.To), im.Text))
		}
	}
}

func (s *session) channelName(ac Account) string {
	if ac.Channel != "" {
		return ac.Channel
	}
	if ch, ok := s.mem.channel(ac.Email); ok {
		return ch
	}
	local, _, _ := strings.Cut(ac.Email, "@")
	n := sanitizeNick(local)
	if n == "" {
		n = "msim"
	}
	return "&" + n
}

// start creates the control channels, puts the service nick in them, joins
// the client and connects the accounts that autoconnect. The bridge calls it
// from Connect, before the session's goroutine runs, so that the control
// channels are part of the client's welcome: whatever the client asks right
// after 001 finds its world complete. Buddies join as each login completes.
func (s *session) start() {
	svc := s.b.cfg.ServiceNick
	if err := s.irc.AddUser(ircd.User{Nick: svc, User: "root", Host: "msimircd", RealName: "msimircd service"}); err != nil {
		s.log.WithError(err).Warn("service nick")
	}
	s.tellNotes()
	if len(s.cl.ats) == 0 {
		s.updateAway() // started at boot: away with auto_away, if set, from the first login
	}
	for _, a := range s.accounts {
		s.openAccount(a)
	}
	if len(s.cl.ats) == 0 {
		return // started at boot: the first client to attach is told the rest
	}
	s.replay(s.cl.ats[0])
	switch {
	case s.user.identify != "":
		s.irc.Deliver(ircd.Delivery{Command: "PRIVMSG", From: svc, Text: fmt.Sprintf(
			"The nick %s is registered. Type /msg %s identify <password> to load your accounts (or connect with your password: PASS or SASL).", s.irc.Nick(), svc)})
	case s.user.newcomer:
		s.irc.Deliver(ircd.Delivery{Command: "PRIVMSG", From: svc, Text: fmt.Sprintf(
			"The nick %s is not registered here. Type /msg %s register <password> to make it yours (from then on it needs that password), then /msg %s account add msim <e-mail> <password> to add your MSIM account.", s.irc.Nick(), svc, svc)})
	case len(s.accounts) == 0 && s.user.registered:
		s.irc.Deliver(ircd.Delivery{Command: "PRIVMSG", From: svc, Text: fmt.Sprintf(
			"You have no MSIM accounts yet. Add one with: /msg %s account add msim <e-mail> <password>", svc)})
	case len(s.accounts) == 0:
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: svc, Text: "You have no MSIM accounts configured."})
	}
}

// openAccount gives an account of s.accounts its control channel, joins the
// client to it and connects it if it autoconnects.
func (s *session) openAccount(a *account) {
	svc := s.b.cfg.ServiceNick
	key := nickKey(a.channel)
	if other := s.byChannel[key]; other != nil && other != a {
		a.channel = uniqueNick(a.channel, func(k string) bool { return s.byChannel[k] != nil })
		key = nickKey(a.channel)
	}
	s.byChannel[key] = a
	if err := s.irc.CreateChannel(a.channel, "MSIM account "+a.cfg.Email+" — type help for commands"); err != nil {
		s.log.WithError(err).WithField("channel", a.channel).Warn("cannot create the control channel")
		return
	}
	s.irc.JoinUser(a.channel, svc, false)
	s.irc.SetOp(a.channel, svc, true)
	s.joinClient(a)
	if n := len(a.queue); n > 0 {
		s.say(a, "%s you typed while the MSIM link was down %s still queued; %s sent when the account logs in.",
			plural(n, "message", "messages"), map[bool]string{true: "is", false: "are"}[n == 1], map[bool]string{true: "it is", false: "they are"}[n == 1])
	}
	if s.queueUnread[a] {
		s.say(a, "The messages you typed earlier while the MSIM link was down could not be read from the gateway's database yet; they stay queued there, and are read again and sent when the account logs in.")
	}
	if a.cfg.AutoConnect {
		s.connect(a)
	}
}

func (s *session) joinClient(a *account) {
	if a.joined || len(s.cl.ats) == 0 {
		return // no client: the next one to attach is joined (rebuild)
	}
	a.joined = true
	s.irc.JoinClient(a.channel, time.Time{}) // a control channel has no history, so no read marker
	s.say(a, "Welcome to msimircd. This channel is your MSIM account %s; your buddies are its members. Type help for the commands.", a.cfg.Email)
	for _, line := range a.backlog {
		s.say(a, "%s", line)
	}
	a.backlog = nil
}

// status tells the user about the account's link, in the channel once the
// client is in it (kept until then).
func (s *session) status(a *account, f string, args ...any) {
	text := fmt.Sprintf(f, args...)
	if !a.joined {
		if len(a.backlog) >= maxBacklog { // keep the latest, and say so
			keep := a.backlog[len(a.backlog)-maxBacklog/2:]
			a.backlog = append(append(a.backlog[:0], "(earlier status lines left out)"), keep...)
		}
		a.backlog = append(a.backlog, text)
		return
	}
	s.say(a, "%s", text)
}

func (s *session) onAway(text string) {
	s.away = text
	st := msim.StatusOnline
	if text != "" {
		st = msim.StatusAway
	}
	for _, a := range s.accounts {
		if a.status == msim.StatusInvisible {
			continue // away would make an invisible account visible
		}
		s.setStatus(a, st, text, replyCtx{})
	}
}

// onIRC routes what the IRC client sent to a virtual user or channel.
func (s *session) onIRC(in ircd.Input) {
	if isChannelName(in.Target) {
		a := s.byChannel[nickKey(in.Target)]
		if in.Command != "PRIVMSG" {
			return // as ever: a notice to a control channel goes nowhere
		}
		if a == nil {
			s.goneTarget(in, "is no longer one of your control channels (its account was removed meanwhile)")
			return
		}
		text := in.Text
		if _, ok := ctcpAction(text); ok || strings.HasPrefix(text, "\x01") {
			s.say(a, "Actions in the control channel go nowhere; use /me in a query with a buddy.")
			return
		}
		// Each line is taken as if typed alone (a multiline batch's lines):
		// "nick: text" goes to that buddy, anything else is a command.
		ims := 0
		for line := range strings.SplitSeq(text, "\n") {
			if nick, rest, ok := addressed(line); ok {
				if bd := s.buddyByNick(nick); bd != nil {
					im := in
					if ims++; ims > 1 && in.MsgID != "" { // each IM its own msgid, as it is its own message
						im.MsgID = ircd.NewMsgID()
					}
					s.sendOwn(bd, im, "PRIVMSG", ownShown(rest), rest)
					continue
				}
				if nickKey(nick) == nickKey(s.b.cfg.ServiceNick) {
					line = rest
				}
			}
			s.command(replyCtx{a: a, target: a.channel}, line)
		}
		return
	}
	if nickKey(in.Target) == nickKey(s.b.cfg.ServiceNick) {
		if in.Command == "PRIVMSG" {
			var a *account
			if len(s.accounts) > 0 {
				a = s.accounts[0]
			}
			s.commands(replyCtx{a: a}, in.Text)
		}
		return
	}
	bd := s.buddyByNick(in.Target)
	if bd == nil {
		s.goneTarget(in, "is no longer a buddy's nick (renamed or removed meanwhile)")
		return
	}
	switch in.Command {
	case "TAGMSG":
		if v, ok := in.Tags["+typing"]; ok {
			s.sendTyping(bd, v == "active")
		}
	case "PRIVMSG", "NOTICE":
		text := in.Text
		if act, ok := ctcpAction(text); ok {
			text = "/me " + act
		} else if strings.HasPrefix(text, "\x01") {
			s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: bd.nick,
				Text: "CTCP is not supported by MSIM; nothing was sent."})
			return
		}
		s.sendOwn(bd, in, in.Command, ownShown(text), text)
	}
}

// goneTarget tells the user that a message they typed was not sent: its
// target, a nick or control channel when ircd took the message, is gone
// by the time the session handles it (why says how). Typing notices
// (TAGMSG) go unsaid.
func (s *session) goneTarget(in ircd.Input, why string) {
	if d, ok := s.notSentNotice(in, why); ok {
		s.irc.Deliver(d)
	}
}

// notSentNotice is the notice telling the user that what they typed (in)
// was not sent, and why (after its target's name), with its text: an
// action or CTCP as typed. ok is false for what is told nothing: a typing
// notice (TAGMSG), an empty message, and a notice to a control channel,
// which goes nowhere. It uses nothing of s's but the bridge.
func (s *session) notSentNotice(in ircd.Input, why string) (d ircd.Delivery, ok bool) {
	if in.Command != "PRIVMSG" && in.Command != "NOTICE" || in.Text == "" ||
		in.Command == "NOTICE" && isChannelName(in.Target) {
		return d, false
	}
	text := in.Text
	if act, ok := ctcpAction(text); ok {
		text = "/me " + act
	} else if strings.HasPrefix(text, "\x01") { // a CTCP, named without its delimiters
		text = "CTCP " + strings.Trim(text, "\x01")
	}
	return ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick,
		Text: fmt.Sprintf("Message NOT sent: %s %s. The message: %s", in.Target, why, text)}, true
}

// commands runs each line of text as a command: a message of several
// lines (an IRC client's multiline batch) runs one command per line.
func (s *session) commands(r replyCtx, text string) {
	for line := range strings.SplitSeq(text, "\n") {
		s.command(r, line)
	}
}

// ownShown is what the user's other clients are shown of text typed to a
// buddy, as MSIM gets it: a /me is an action, as MSIM and the history take
// it, however it was typed (a CTCP ACTION, or "/me" as text).
func ownShown(text string) string {
	if act, ok := strings.CutPrefix(text, "/me "); ok {
		return action(act)
	}
	return text
}

func isChannelName(s string) bool { return s != "" && (s[0] == '&' || s[0] == '#') }

// addressed splits "nick: text" or "nick, text".
func addressed(text string) (nick, rest string, ok bool) {
	i := strings.IndexAny(text, ":,")
	if i <= 0 || i > NickLen || strings.ContainsAny(text[:i], " \t") {
		return "", "", false
	}
	rest = strings.TrimPrefix(text[i+1:], " ")
	if rest == "" {
		return "", "", false
	}
	return text[:i], rest, true
}
