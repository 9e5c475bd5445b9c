// Attaching IRC connections to a user's session, and sessions that run
// with none attached (always on).
//
// A session belongs to a user, not to a connection. Each IRC connection is
// an attachment: the ircd.Handler ircd calls, which posts what the client
// does to the session it is attached to. Several connections may be
// attached at once (Config.MaxClients); each sees the same world
// (clients.go). With Config.AlwaysOn, a user who is not ephemeral keeps
// their session, and so their MSIM links, when their last connection
// leaves, and sessions start at boot for every user with an account that
// autoconnects. A connection that arrives for a running session attaches
// to it: the session builds the client's world (control channels, buddies,
// presence) and, if it is the only client, replays what was held
// meanwhile.

package channel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// attachment is one IRC connection of a user. ircd calls its Handler
// methods; it forwards them to its session, tagged with itself so that the
// session ignores a connection that is no longer attached.
type attachment struct {
	c ircConn
	// mu orders what the client does with a move of the connection to
	// another session (identify): a post to the session holds it, so
	// once handOver has it, nothing more reaches the old session.
	mu     sync.Mutex
	s      *session // guarded by mu
	remote net.Addr // the client's address (identify's guess limiting)
	name   string   // the client's name ("phone" of alice/phone), or ""
	away   string   // the client's AWAY text (owned by the session goroutine)
	awayAt uint64   // when away was set, in the session's count of AWAYs
	// replayLater: conversations of the replay (replay.go) waiting for
	// their account's login (owned by the session goroutine). Like
	// keepPos and replayMissed, it is the session's user's: a switch
	// starts the new user's (missesOf).
	replayLater []*replayConv
	// replaying: the client's replay is being read (replay); meanwhile
	// the IMs for the clients wait, and a client that leaves keeps its
	// position (owned by the session goroutine).
	replaying *replayRead
	// keepPos: the client's position when its replay could not be read;
	// it does not move past it (owned by the session goroutine).
	keepPos *int64
	// missed is the msgid of the first message this client was not given
	// while it was still attached (it was closing, or closed with the
	// message still queued), whether another client was given it or it
	// was held for whichever connection comes next: its position stops
	// before it, so its next connection is replayed it. Set on the session
	// goroutine, or on ircd's writer (a miss the writer reports after the
	// session has let the client go comes too late to count). It is the
	// miss of one user: a switch (identify, register) starts the new
	// user's (missesOf), and what the old user's messages still report
	// counts no more.
	missed atomic.Pointer[missMark]
	// replayMissed is the lowest history ID of the replayed entries this
	// client was not given (queued, but still queued or held when the
	// connection ended; nil or 0: none): its position stops before it. A
	// replay's conversations are written one after the other, so an entry
	// written may come after one that was not. Set as missed is, and of
	// one user, as missed is.
	replayMissed atomic.Pointer[replayMiss]
	// replayed: the conversations replayed to this client, with which
	// entries ircd reported written (appended on the session goroutine;
	// the reports are set as missed is).
	replayed []replayedConv
	// unidentified: the connection came in as a registered nick without
	// its password, left to identify (set by Bridge.Connect before ircd
	// reads it; never changed).
	unidentified bool
}

// missMark is an attachment's miss (missed): the msgid of the first
// message of user's the client was not given ("": none yet).
type missMark struct{ user, msgid string }

// miss records that the client was not given the message of msgid, of
// user's, unless it missed an earlier one, or the connection is another
// user's since (missesOf).
func (at *attachment) miss(user, msgid string) {
	if msgid == "" {
		return
	}
	for {
		old := at.missed.Load()
		if old != nil && (old.user != user || old.msgid != "") {
			return
		}
		if at.missed.CompareAndSwap(old, &missMark{user: user, msgid: msgid}) {
			return
		}
	}
}

// replayMiss is an attachment's replay miss (replayMissed): the lowest
// history ID of user's replayed entries the client was not given (0:
// none yet).
type replayMiss struct {
	user string
	id   int64
}

// missesOf starts the misses of user on the connection, which is theirs
// now: what the user it was before missed says nothing of user's history,
// and would keep out the first miss of theirs; so it is with what the old
// user's replay left (replayLater, keepPos: history IDs of theirs, which
// would hold the client's position in user's history back, and have it
// replayed again what it was shown). undo puts back what was there, unless
// a miss of user's was recorded since (a switch that did not happen after
// all). Called on the goroutine of the session that has the connection.
func (at *attachment) missesOf(user string) (undo func()) {
	was, mark := at.missed.Load(), &missMark{user: user}
	at.missed.Store(mark)
	wasReplay, replayMark := at.replayMissed.Load(), &replayMiss{user: user}
	at.replayMissed.Store(replayMark)
	later, keepPos := at.replayLater, at.keepPos
	at.replayLater, at.keepPos = nil, nil
	return func() {
		at.missed.CompareAndSwap(mark, was)
		at.replayMissed.CompareAndSwap(replayMark, wasReplay)
		at.replayLater, at.keepPos = later, keepPos
	}
}

// missedOf is the msgid of the first message of user's the client was
// not given, or "".
func (at *attachment) missedOf(user string) string {
	if m := at.missed.Load(); m != nil && m.user == user {
		return m.msgid
	}
	return ""
}

// missReplayed records that the client was not given the replayed entry
// of user's history ID id, unless it missed one of a lower ID, or the
// connection is another user's since (missesOf).
func (at *attachment) missReplayed(user string, id int64) {
	if id <= 0 {
		return
	}
	for {
		old := at.replayMissed.Load()
		if old != nil && (old.user != user || (old.id != 0 && old.id <= id)) {
			return
		}
		if at.replayMissed.CompareAndSwap(old, &replayMiss{user: user, id: id}) {
			return
		}
	}
}

// replayMissedOf is the lowest history ID of user's replayed entries the
// client was not given, or 0.
func (at *attachment) replayMissedOf(user string) int64 {
	if m := at.replayMissed.Load(); m != nil && m.user == user {
		return m.id
	}
	return 0
}

func newAttachment(c ircConn, s *session, remote net.Addr) *attachment {
	return &attachment{c: c, remote: remote, s: s}
}

// post hands ev to the session the connection is attached to; false once
// that session has ended.
func (at *attachment) post(ev event) bool {
	at.mu.Lock()
	defer at.mu.Unlock()
	return at.s.post(ev)
}

// do runs f on the goroutine of the session the connection is attached
// to, given that session. If that session ends first, f is not run and
// refused (if not nil) is called instead, on whatever goroutine finds it
// so: whoever waits for an answer from f is answered either way.
func (at *attachment) do(f func(s *session), refused func()) {
	if !at.post(atCall{at, f, refused}) && refused != nil {
		refused()
	}
}

// atCall is work for whatever session at is attached to when it runs.
type atCall struct {
	at      *attachment
	f       func(s *session)
	refused func() // called instead of f if the session ends first (may be nil)
}

func (atCall) isEvent() {}

type attachReq struct {
	at       *attachment
	accounts []Account  // the directory's answer for the connection (nil: not checked)
	done     chan error // the attach's result, once the client's world is built
}

func (attachReq) isEvent() {}

// errTooManyClients refuses a connection over Config.MaxClients.
var errTooManyClients = errors.New("too many IRC clients are attached to this user already; close one first")

// Handler methods, called from the IRC connection's goroutine. Join, Part
// and Nick need nothing: ircd keeps the client's memberships (parting a
// control channel keeps the account connected; JOIN brings it back), and
// buddy nicks are checked against the client's nick when made.

// Message posts what the client typed; once the session it is attached
// to has ended, that session refuses it (refuse: a message is told not
// sent), as it refuses what waited in its queue.
func (at *attachment) Message(in ircd.Input) { at.postOrRefuse(newIRCInput(at, in)) }

// Messages implements ircd.MessagesHandler: the messages of lines read
// together are one event, which the session handles as that many
// Messages in order (and refuses each of as Message's once it has ended),
// so a burst wakes its goroutine once.
func (at *attachment) Messages(ins []ircd.Input) {
	if len(ins) < 2 {
		for i := range ins {
			at.Message(ins[i])
		}
		return
	}
	b := ircBatches.Get().(*ircBatch)
	for i := range ins {
		b.ins = append(b.ins, newIRCInput(at, ins[i]))
	}
	at.postOrRefuse(b)
}

// postOrRefuse posts what the client typed to the session the connection
// is attached to, which refuses it (releasing it) if it has ended.
func (at *attachment) postOrRefuse(ev event) {
	at.mu.Lock()
	s := at.s
	posted := s.post(ev)
	at.mu.Unlock()
	if !posted {
		s.refuse(ev) // releases it
	}
}

func (at *attachment) Join(string)          {}
func (at *attachment) Part(string, string)  {}
func (at *attachment) Away(text string)     { at.post(ircAway{at, text}) }
func (at *attachment) Nick(string)          {}
func (at *attachment) Closed(reason string) { at.post(ircClosed{at, reason}) }

// RealName implements ircd.RealNameHandler: the real name one client set
// with SETNAME is every client's of the user, as a bouncer keeps one.
func (at *attachment) RealName(name string) {
	at.do(func(s *session) { s.setRealName(at, name) }, nil)
}

// Unidentified implements ircd.Unidentified: a login left to identify
// checked no password of the user's, so ircd keeps the failed guesses at
// the nick.
func (at *attachment) Unidentified() bool { return at.unidentified }

// WhoisAsync implements ircd.AsyncWhoisHandler: a buddy's profile is
// fetched when the user asks, so WHOIS is fresh and no profile is kept in
// memory. The IRC reader goes on meanwhile; ircd sends the reply when the
// answer comes, or without the extra lines after its own timeout.
func (at *attachment) WhoisAsync(nick string, answer func(lines []string)) {
	if !at.post(whoisAsk{at: at, nick: nick, answer: answer}) {
		answer(nil)
	}
}

// attachClient attaches c to the running session s and returns once the
// client's world is built; ended is true if s has ended (the caller starts
// a new session), err refuses the connection.
func (s *session) attachClient(c ircConn, remote net.Addr, name string, accounts []Account) (at *attachment, ended bool, err error) {
	at = newAttachment(c, s, remote)
	at.name = name
	ended, err = s.attachRunning(at, accounts)
	return at, ended, err
}

// attachRunning posts at to s and waits until s has attached it; accounts,
// when not nil, are what the directory gave the connection, which must not
// contradict the session's (a directory that leaves the password check to
// the MSIM login would otherwise let a wrong password in).
func (s *session) attachRunning(at *attachment, accounts []Account) (ended bool, err error) {
	done := make(chan error, 1)
	if !s.post(attachReq{at: at, accounts: accounts, done: done}) {
		return true, nil
	}
	select {
	case err := <-done:
		return false, err
	case <-s.done:
		return true, nil
	}
}

// handOver moves the connection at to to, the running session of the user
// the connection has just identified as, and ends this session (it has no
// accounts left). False if to has ended meanwhile or refused it (err).
//
// What the client sent meanwhile is not lost: to attaches the connection
// first; then, with at.mu held so that nothing more comes here, the events
// of the connection waiting in this session's queue go to to, in order,
// before at points to it.
func (s *session) handOver(at *attachment, to *session) (bool, error) {
	ended, err := to.attachRunning(at, nil)
	if ended || err != nil {
		return false, err
	}
	var mine []event // this session's own events, handled after the move
	deferred := s.deferred
	s.deferred = nil
	for _, ev := range deferred { // typed before the queued ones
		mine = s.forward(ev, at, to, mine)
	}
	for !at.mu.TryLock() {
		// The connection's reader holds it, waiting for room here.
		select {
		case ev := <-s.events:
			mine = s.forward(ev, at, to, mine)
		default:
			runtime.Gosched()
		}
	}
	for drained := false; !drained; {
		select {
		case ev := <-s.events:
			mine = s.forward(ev, at, to, mine)
		default:
			drained = true
		}
	}
	at.s = to
	at.mu.Unlock()
	s.cl.remove(at)
	s.countAttached(-1)
	for _, ev := range mine {
		s.handle(ev)
	}
	s.cancel()
	return true, nil
}

// forward passes an event of the connection at on to to, and keeps (in
// mine) the others.
func (s *session) forward(ev event, at *attachment, to *session, mine []event) []event {
	var of *attachment
	switch ev := ev.(type) {
	case *ircInput:
		of = ev.at
	case *ircBatch:
		of = ev.ins[0].at // one connection's
	case ircAway:
		of = ev.at
	case ircClosed:
		of = ev.at
	case atCall:
		of = ev.at
	case whoisAsk:
		of = ev.at
	}
	if of != at {
		return append(mine, ev)
	}
	if !to.post(ev) {
		s.refuse(ev)
	}
	return mine
}

// closeClients closes the session's connections (reason is not empty),
// from any goroutine: the session's goroutine closes them, or, if the
// session ends first, its end does (shutdown), or, once the session has
// ended, the caller.
func (s *session) closeClients(reason string) {
	s.rmu.Lock()
	ended := s.drained
	if !ended {
		s.closing = reason
	}
	s.rmu.Unlock()
	if ended {
		s.cl.Close(reason) // the session changes them no more
		return
	}
	s.post(call(s.closeAsked))
}

// closeAsked closes the connections as closeClients asked, once.
func (s *session) closeAsked() {
	s.rmu.Lock()
	reason := s.closing
	s.closing = ""
	s.rmu.Unlock()
	if reason != "" {
		s.cl.Close(reason)
	}
}

// countAttached adds d to the attached connections' count, and counts the
// user as attached (metrics) while it is above zero.
func (s *session) countAttached(d int32) {
	n := s.nattached.Add(d)
	switch {
	case d > 0 && n == d:
		s.b.met.attach(1)
	case d < 0 && n == 0:
		s.b.met.attach(-1)
	}
}

// remoteAddr is the address of the client whose input is being handled
// (register's quota, identify's guess limiting); nil outside that.
func (s *session) remoteAddr() net.Addr {
	if s.sender == nil {
		return nil
	}
	return s.sender.remote
}

// persistent reports whether the session outlives its connections.
func (s *session) persistent() bool {
	return s.b.cfg.AlwaysOn && !s.user.Ephemeral && s.user.identify == ""
}

// attach adds at to the session's connections and builds its world.
func (s *session) attach(at *attachment, accounts []Account) error {
	for _, ac := range accounts {
		for _, a := range s.accounts {
			if strings.EqualFold(a.cfg.Email, ac.Email) && !eq(a.cfg.Password, ac.Password) {
				return ErrAuth
			}
		}
	}
	if len(s.cl.ats) >= s.b.cfg.MaxClients {
		return errTooManyClients
	}
	others := len(s.cl.ats) > 0
	if !others {
		s.waitSent() // each IM handed to the last connection is shown or held
	}
	s.cl.add(at)
	s.countAttached(1)
	s.replay(at) // before the held IMs build gives: they wait for it
	s.build(at, others)
	s.updateAway()
	if s.realName != "" {
		at.c.SetOwnRealName(s.realName)
	}
	return nil
}

// setRealName makes name, which the client at set with SETNAME, the real
// name of the user's other clients, and of those that attach later.
func (s *session) setRealName(at *attachment, name string) {
	if !s.cl.attached(at) {
		return
	}
	s.realName = name
	for _, o := range s.cl.ats {
		if o != at {
			o.c.SetOwnRealName(name)
		}
	}
}

// closed takes a connection that ended out of the session; false when the
// session is to end with it.
func (s *session) closed(at *attachment) bool {
	if !s.cl.attached(at) {
		return true // handed over, or refused
	}
	s.savePosition(at)
	s.cl.remove(at)
	s.countAttached(-1)
	if len(s.cl.ats) > 0 {
		if at.replaying != nil {
			s.pumpOut() // the IMs that waited for its replay
		}
		s.updateAway()
		return true
	}
	s.keepNotesWaiting() // those not told yet, for the next connection
	if !s.persistent() {
		return false
	}
	s.detach()
	return true
}

// detach lets the session run on with no connection: IMs are held for the
// next one (committed to the store when there is one), and what the user
// must be told is kept as notes.
func (s *session) detach() {
	for _, a := range s.accounts {
		a.joined = false
	}
	s.log.Info("the IRC client left; the MSIM accounts stay online")
	s.pumpOut() // what waits in the outbox is held now
	s.updateAway()
}

// updateAway sets the user's MSIM status from their clients': away when
// every attached client is away (with the text set last), else back; with
// none attached, away with the auto_away text if set.
func (s *session) updateAway() {
	text := ""
	if len(s.cl.ats) == 0 {
		text = s.setting("auto_away")
	} else {
		var last uint64
		for _, at := range s.cl.ats {
			if at.away == "" {
				text = ""
				break
			}
			if at.awayAt >= last {
				text, last = at.away, at.awayAt
			}
		}
	}
	if text != s.away {
		s.onAway(text)
	}
}

// build gives the newly attached client at the session's world as it is:
// the service nick, notes, each account's control channel with its
// buddies and their presence; then, if it is the only client, the IMs held
// for accounts already logged in (those of the others come with their
// login), but those still on their way (heldOnItsWay).
func (s *session) build(at *attachment, others bool) {
	all := s.irc
	s.irc = &clients{s: s, ats: []*attachment{at}}
	defer func() { s.irc = all }()
	svc := s.b.cfg.ServiceNick
	// An error says the client has it already (a connection handed over).
	_ = s.irc.AddUser(ircd.User{Nick: svc, User: "root", Host: "msimircd", RealName: "msimircd service"})
	s.tellNotes() // the first of them to this client, the rest paced to all
	for _, a := range s.accounts {
		if err := s.irc.CreateChannel(a.channel, "MSIM account "+a.cfg.Email+" — type help for commands"); err != nil {
			s.log.WithError(err).WithField("channel", a.channel).Warn("cannot create the control channel")
			continue
		}
		s.irc.JoinUser(a.channel, svc, false)
		s.irc.SetOp(a.channel, svc, true)
		s.irc.Reserve(a.channel, a.buddies.Len())
		for _, bd := range a.buddies.All() {
			s.addBuddyUser(at, bd)
			if bd.inChan {
				s.irc.JoinUser(a.channel, bd.nick, bd.voiced)
			}
		}
		a.joined = false
		quiet := len(a.backlog) == 0 // nothing said since the last client left
		s.joinClient(a)
		if a.state == linkUp && quiet {
			n := 0
			for _, bd := range a.buddies.All() {
				if bd.contact {
					n++
				}
			}
			suffix := "; the account stayed online while no client was attached"
			if others {
				suffix = ""
			}
			s.say(a, "Logged in to MSIM as %s (uid %d), %s%s.", nameOr(a.self.UserName, a.cfg.Email), a.self.UID, plural(n, "buddy", "buddies"), suffix)
		}
	}
	if others {
		return
	}
	s.irc = all
	for _, a := range s.accounts {
		if a.state == linkUp {
			// As a login gives them: what is on its way since an earlier
			// client's time is read first, and not given again.
			s.giveHeld(a)
		}
	}
	if s.mem.hasNotes() { // held IMs that could not be read, say
		s.tellNotes()
	}
}

// addBuddyUser gives the attached client at bd's virtual user; if the
// client's own nick took bd's meanwhile, bd gets another for the session,
// which the clients attached before at are told by a NICK, and the
// remembered one (a rename, say) stays for a later login.
func (s *session) addBuddyUser(at *attachment, bd *buddy) {
	st, text := s.presence(bd)
	u := ircd.User{Nick: bd.nick, Mask: bd.a.maskOf(bd.userName, bd.UID()),
		RealName: nameOr(bd.displayName, bd.userName), Away: awayText(st, text), Offline: st == msim.StatusOffline}
	if s.irc.AddUser(u) == nil {
		return
	}
	memKey := buddyKey{bd.a.cfg.Email, bd.UID()}
	old := bd.nick
	nick := uniqueNick(old, func(k string) bool { return s.nickTaken(k) || s.mem.ownedByOther(k, memKey) || k == nickKey(old) })
	s.setNick(bd, nick)
	u.Nick = nick
	if err := s.irc.AddUser(u); err != nil {
		s.log.WithError(err).WithField("nick", nick).Error("cannot add buddy nick")
	}
	for _, o := range s.cl.ats {
		if o == at {
			continue
		}
		if err := o.c.RenameUser(old, nick); err != nil {
			s.log.WithError(err).WithField("nick", old).Warn("a client attached before cannot see a buddy's new nick")
		}
	}
}

// waitSent waits (bounded) until ircd has reported every IM it was handed.
func (s *session) waitSent() {
	if s.out.inflight.Load() <= 0 {
		return
	}
	t := time.NewTimer(sentWait)
	defer t.Stop()
	defer s.signal() // the wake-ups taken here were maybe other work's
	// Every report wakes it, as one does while IMs wait for room.
	s.out.stalled.Store(true)
	for {
		// As the loop waits (nothingWaiting): a report that comes after
		// the look finds it waiting, and wakes it.
		s.rmu.Lock()
		s.waiting = s.out.inflight.Load() > 0
		w := s.waiting
		s.rmu.Unlock()
		if !w {
			return
		}
		select {
		case <-s.wake: // a report, or other work: the loop looks at it next
		case <-t.C:
			s.log.Warn("ircd has not reported every IM handed to it; those it reports as not sent are held later")
			return
		}
	}
}

// maxDeferred bounds the client's input kept while identify, register or
// drop is under way; past it, input is refused (refuseBusy).
const maxDeferred = 64

// refuseBusy tells the client that what it typed was not handled: more
// than maxDeferred lines came while identify, register or drop was under
// way. (Handled at once, it could run a second drop, or an IM from the
// user the session is leaving.) A typing notice is dropped unsaid.
func (s *session) refuseBusy(ev *ircInput) {
	if ev.in.Command == "TAGMSG" || !s.cl.attached(ev.at) {
		return
	}
	ev.at.c.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick,
		Text: "Not handled, too much typed while your account was busy (" + ev.in.Target + "): " + ev.in.Text})
}

// maxBacklog bounds the status lines kept for a client not in the channel.
const maxBacklog = 50

// bringOnline starts, with Config.AlwaysOn, a session with no connection
// for u if u has an account that autoconnects and no session runs; it
// reports whether it started one.
func (b *Bridge) bringOnline(u User) (bool, error) {
	if !b.cfg.AlwaysOn || u.Ephemeral || !slices.ContainsFunc(u.Accounts, func(a Account) bool { return a.AutoConnect }) {
		return false, nil
	}
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		return false, errors.New("shutting down")
	}
	if b.sessions[u.Name] != nil {
		b.mu.Unlock()
		return false, nil // a client came first
	}
	if b.lease.needs(u) && !b.lease.holds(u.Name) {
		b.mu.Unlock()
		ok, err := b.lease.tryAcquire(u.Name)
		if err != nil {
			return false, fmt.Errorf("user %s: store: the lease: %w", u.Name, err)
		}
		if !ok {
			return false, nil // another instance serves the user
		}
		b.mu.Lock()
		if b.ctx.Err() != nil || b.sessions[u.Name] != nil {
			b.mu.Unlock()
			return false, nil // a client came first (the lease is its)
		}
	}
	if read, err := b.readStateFirst(u); read {
		if err != nil {
			return false, fmt.Errorf("user %s: %w", u.Name, err)
		}
		return b.bringOnline(u)
	}
	s, err := b.startLocked(u, nil, nil)
	b.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("user %s: %w", u.Name, err)
	}
	s.start()
	go b.run(s)
	return true, nil
}

// roster is an optional interface of a Directory: the users it knows that
// are not ephemeral, with their accounts, for the sessions that start at
// boot.
type roster interface {
	roster(ctx context.Context) ([]User, error)
}

func (d *StaticDirectory) roster(context.Context) ([]User, error) {
	users := make([]User, 0, len(d.Users))
	for _, su := range d.Users {
		users = append(users, User{Name: su.Name, Accounts: su.Accounts})
	}
	return users, nil
}

func (g *passwordGate) roster(ctx context.Context) ([]User, error) {
	if r, ok := g.next.(roster); ok {
		return r.roster(ctx)
	}
	return nil, nil
}

// roster lists the stored users (those the configuration names come from
// the directory behind, as Lookup gives them), but not those that a
// configuration used to name (leftConfiguration): nobody can log in as
// them, and their accounts would hold IMs for no one.
func (d *storeDirectory) roster(ctx context.Context) ([]User, error) {
	var users []User
	if r, ok := d.next.(roster); ok {
		var err error
		if users, err = r.roster(ctx); err != nil {
			return nil, err
		}
	}
	stored, err := d.st.Users(ctx)
	if err != nil {
		return nil, err
	}
	_, demo := d.next.(*DemoDirectory)
	for _, su := range stored {
		if d.configures(su.Name) || leftConfiguration(su, demo) {
			continue
		}
		u, err := d.load(su.Name)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", su.Name, err)
		}
		users = append(users, u)
	}
	return users, nil
}

// Start starts, with Config.AlwaysOn, a session with no connection for
// every user of the directory with an account that autoconnects, so their
// accounts log in to MSIM at once, before any IRC client returns. It
// returns how many it started. Without AlwaysOn, or with a directory that
// cannot list its users, it does nothing.
func (b *Bridge) Start(ctx context.Context) (int, error) {
	r, ok := b.cfg.Directory.(roster)
	if !b.cfg.AlwaysOn || !ok {
		return 0, nil
	}
	users, err := r.roster(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing the users to bring online: %w", err)
	}
	n := 0
	for _, u := range users {
		started, err := b.bringOnline(u)
		if err != nil {
			return n, err
		}
		if started {
			n++
		}
	}
	return n, nil
}
