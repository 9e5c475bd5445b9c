// An account's MSIM link: connect, the login's result, loss, back-off and
// retry, and alert polling.

package channel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

type linkState int

func (st linkState) String() string {
	switch st {
	case linkUp:
		return "connected"
	case linkConnecting:
		return "connecting"
	case linkWaiting:
		return "waiting to reconnect"
	case linkStopped:
		return "stopped"
	}
	return "disconnected"
}

// pollAlerts checks for new mail, comments and friend requests now and then
// every AlertPoll while the link is up; each one becomes a NOTICE.
func (s *session) pollAlerts(a *account) {
	cl, gen := a.client, a.gen
	if cl == nil {
		return
	}
	var alerts []string
	s.async(func(ctx context.Context) (err error) {
		alerts, err = cl.CheckAlerts(ctx)
		return err
	}, func(err error) {
		if gen != a.gen {
			return
		}
		if err != nil {
			s.log.WithError(err).WithField("account", a.cfg.Email).Debug("alert poll failed")
		}
		for _, al := range alerts {
			s.notice(a, alertText(al))
		}
		a.alerts = s.b.cfg.Clock.AfterFunc(s.b.cfg.AlertPoll, func() {
			s.post(call(func() {
				if gen == a.gen {
					s.pollAlerts(a)
				}
			}))
		})
	})
}

func (s *session) connect(a *account) {
	if a.state == linkConnecting || a.state == linkUp {
		return
	}
	if !s.leaseValid() { // lease.go: the user is another instance's now
		s.status(a, "Not logging in: your session has moved to another gateway instance.")
		return
	}
	if key := s.msimGuessKey(); key != "" {
		if _, err := s.b.failAddr.Check(key); errors.Is(err, guard.ErrRefused) {
			if !a.guessRefused || a.state != linkWaiting { // once for a run of retries
				s.status(a, "Not logging in: too many wrong MSIM passwords were tried on your accounts; try again later.")
			}
			a.guessRefused = true
			if a.state == linkWaiting {
				s.scheduleRetry(a) // a retry: the next comes after the refusal, maybe
			}
			return
		}
	}
	a.guessRefused = false
	a.stopTimer()
	a.gen++
	s.setState(a, linkConnecting)
	gen := a.gen
	cfg := msim.ClientConfig{
		Addr: s.b.cfg.MSIMAddr, Email: a.cfg.Email, Password: a.cfg.Password,
		Status: a.status, StatusText: a.statusText,
		DialTimeout: s.b.cfg.DialTimeout, RequestTimeout: s.b.cfg.RequestTimeout,
		Dial:   s.b.cfg.Dial,
		Notify: s.wakeMSIM,
		Log:    s.log, // the client adds the account
	}
	s.status(a, "Connecting to MSIM as %s…", a.cfg.Email)
	s.dialing++
	s.b.rel.begin()
	name, leased := s.user.Name, s.b.lease.needs(s.user)
	own := s.ownerNow() // the session may be another user's when the login ends
	s.workers.Add(1)
	go func() { // touches only what it is given, and the user's memory
		defer s.workers.Done()
		if leased && !s.b.lease.check(s.ctx, name) {
			// Taken over meanwhile: never log in over the new holder.
			_ = s.post(linkResult{a: a, gen: gen, err: errLeaseLost})
			return
		}
		cl, err := s.b.cfg.DialMSIM(s.ctx, cfg)
		if !s.post(linkResult{a: a, gen: gen, cl: cl, err: err}) {
			s.keepLogin(own, a, cl, err)
		}
	}()
}

// keepLogin ends a login the session will not handle, because it has
// ended: the client is closed, and the IMs the login brought are kept for
// o, the user whose account it is (keepOwned), whether it succeeded or
// not, with a note of those its client dropped (noteDropped). It reads
// nothing of the session's state: it may run beside the session's end.
func (s *session) keepLogin(o owner, a *account, cl MSIMClient, err error) {
	if cl != nil {
		_ = cl.Close()
		for _, ev := range cl.TakeEvents(nil) {
			s.keepOwned(o, a, ev)
			if d, ok := ev.(msim.DisconnectedEvent); ok {
				s.noteDropped(o, a, keptNicks(o, a, cl, d.DroppedFrom), d.Reason == msim.DisconnectOverflow, d.DroppedIMs)
			}
		}
	}
	for _, ev := range msim.Undelivered(err) {
		s.keepOwned(o, a, ev)
	}
	n, from := loginDropped(err)
	s.noteDropped(o, a, keptNicks(o, a, nil, from), errors.Is(err, msim.ErrEventOverflow), n)
}

// noteDropped keeps for o, whose account a is, a note for their next
// connection of the IMs a's MSIM client dropped (droppedText, from names
// their senders), if any. A user who keeps nothing (see keepOwned) is
// told nothing: it is logged. It reads nothing of the session's state.
func (s *session) noteDropped(o owner, a *account, from []string, overflow bool, n int) {
	text := droppedText(overflow, n, from)
	if text == "" {
		return
	}
	if o.mem.isForgotten() {
		o.log.WithField("account", a.cfg.Email).WithField("dropped", n).Warn("IMs were dropped for an account of a user who keeps nothing, after the session had left it; they are not told")
		return
	}
	o.mem.note(accountNote(a, text))
}

// accountNote is text, said of account a outside its control channel.
func accountNote(a *account, text string) string {
	return "MSIM account " + a.cfg.Email + ": " + text
}

// keptNicks names uids, senders to a, without the session's state: by
// the nick o's memory keeps for each (a rename), else as cl's contact
// list (cl may be nil) names them, else by uid.
func keptNicks(o owner, a *account, cl MSIMClient, uids []msim.UID) []string {
	if len(uids) == 0 {
		return nil
	}
	var contacts []msim.Contact
	if cl != nil {
		contacts = cl.AppendContacts(nil)
	}
	out := make([]string, len(uids))
	for i, uid := range uids {
		if n, ok := o.mem.nick(buddyKey{a.cfg.Email, uid}); ok {
			out[i] = n
			continue
		}
		out[i] = uid.String()
		for _, c := range contacts {
			if c.UID == uid {
				out[i] = baseNick(fromMSIMLine(c.UserName), fromMSIMLine(c.DisplayName), int(uid))
				break
			}
		}
	}
	return out
}

// loginDropped returns the IMs a failed login dropped as its events
// overflowed (see msim.UndeliveredError): how many, and their senders.
func loginDropped(err error) (int, []msim.UID) {
	var ue *msim.UndeliveredError
	if errors.As(err, &ue) {
		return ue.DroppedIMs, ue.DroppedFrom
	}
	return 0, nil
}

// wakeMSIM is every MSIM client's Notify: it tells the session, without
// blocking, that events are waiting.
func (s *session) wakeMSIM() {
	s.msimWaiting.Store(true)
	s.kick()
}

// keptEvents is the largest buffer of MSIM events the session keeps for
// reuse.
const keptEvents = 16

// takeMSIM handles the events waiting in every account's MSIM client.
func (s *session) takeMSIM() {
	for _, a := range s.accounts {
		if a.client == nil {
			continue
		}
		s.evbuf = a.client.TakeEvents(s.evbuf[:0])
		s.startIDs(s.evbuf)
		for i, ev := range s.evbuf {
			s.onMSIM(a, a.gen, ev) // a DisconnectedEvent, always last, forgets the client
			s.evbuf[i] = nil
		}
		s.ids = strings.Builder{} // the batch's ids keep its memory, the session does not
		if cap(s.evbuf) > keptEvents {
			s.evbuf = nil // a burst's (a login's): not kept while idle
		}
	}
}

// msimGuessKey is the key (in Bridge.failAddr) under which the wrong MSIM
// passwords of a registered user's accounts are counted: the user types
// them (account add, account set password), and the MSIM server, which
// sees only the gateway's address, cannot tell one guessing user from
// another. "" for other users: their passwords are the configuration's or
// the demo network's.
func (s *session) msimGuessKey() string {
	if !s.user.registered {
		return ""
	}
	return "msim-user:" + s.user.Name
}

// msimGuessFailed counts a login that failed for its e-mail or password.
func (s *session) msimGuessFailed(err error) {
	key := s.msimGuessKey()
	if key == "" || !errors.Is(err, msim.ErrBadPassword) && !errors.Is(err, msim.ErrUnknownAccount) {
		return
	}
	for _, o := range s.b.failAddr.Fail(key) {
		if o.Refused {
			s.log.WithField("key", o.Key).WithField("failures", o.Failures).Warn("wrong MSIM passwords on a user's accounts; refusing their logins for a while")
		}
	}
}

// closeClient closes a client the session no longer uses and handles what
// it still held, as events of a link closed on purpose.
func (s *session) closeClient(a *account, cl MSIMClient) {
	_ = cl.Close()
	for _, ev := range cl.TakeEvents(nil) {
		s.onStaleMSIM(a, ev)
	}
}

func (s *session) disconnect(a *account, why string) {
	a.stopTimer()
	a.gen++
	if cl := a.client; cl != nil {
		a.client = nil
		s.closeClient(a, cl)
	}
	s.dropBuddies(a)
	s.setState(a, linkDown)
	s.status(a, "%s", why)
}

func (s *session) onLinkResult(ev linkResult) {
	a := ev.a
	if s.dialing > 0 {
		s.dialing--
		defer s.b.rel.end() // once the login's contacts are buddies
	}
	// A login that failed after the server handed over IMs (a stored
	// backlog comes first) brings them: the server keeps them no longer.
	// Those the client could not read come as its own ErrorEvents, told
	// as the IMs' drop is (tellOf: the session may have let a go).
	for _, im := range msim.Undelivered(ev.err) {
		if e, ok := im.(msim.ErrorEvent); ok && e.Unreadable {
			s.tellOf(a, unreadableText(e))
			continue
		}
		s.fromUser(a, msim.SenderOf(im), im)
	}
	dropped, from := loginDropped(ev.err)
	s.reportDropped(a, from, errors.Is(ev.err, msim.ErrEventOverflow), dropped)
	if ev.gen != a.gen {
		if ev.cl != nil {
			s.closeClient(a, ev.cl)
		}
		return
	}
	s.b.met.login(ev.err)
	defer s.joinClient(a)
	if errors.Is(ev.err, errLeaseLost) {
		s.log.WithField("account", a.cfg.Email).Info("not logging in to MSIM: the user's session has moved to another instance")
		s.setState(a, linkStopped)
		s.status(a, "Not logging in: your session has moved to another gateway instance.")
		return
	}
	if ev.err != nil {
		var le *msim.LoginError
		if errors.Is(ev.err, msim.ErrBadPassword) || errors.Is(ev.err, msim.ErrUnknownAccount) || errors.Is(ev.err, msim.ErrNoUserName) {
			s.msimGuessFailed(ev.err)
			s.setState(a, linkStopped)
			why := ev.err.Error()
			if errors.As(ev.err, &le) {
				why = le.Reason()
			}
			s.log.WithError(ev.err).WithField("account", a.cfg.Email).Warn("MSIM login failed; not retrying until the account's settings change or the user types connect")
			s.status(a, "Login failed: %s. Not retrying: fix the account's settings, then type connect.", strings.TrimSuffix(why, "."))
			s.failQueue(a, "the account cannot log in")
			return
		}
		if errors.As(ev.err, &le) {
			s.status(a, "Login refused by the MSIM server: %v", ev.err)
		} else {
			s.status(a, "Cannot connect to MSIM: %v", ev.err)
		}
		d := s.scheduleRetry(a)
		s.log.WithError(ev.err).WithFields(logrus.Fields{"account": a.cfg.Email, "retry_in": d}).Warn("MSIM login failed; retrying")
		return
	}
	a.client = ev.cl
	s.setState(a, linkUp)
	a.upAt = s.b.cfg.Clock.Now() // the back-off starts over once the link has held (onLinkLost)
	a.self = ev.cl.Self()
	if a.cfg.Channel == "" && a.self.UserName != "" {
		s.mem.setChannel(a.cfg, "&"+sanitizeNick(a.self.UserName))
	}
	lp, _ := contactLists.Get().(*[]msim.Contact)
	if lp == nil {
		lp = new([]msim.Contact)
	}
	contacts := ev.cl.AppendContacts((*lp)[:0])
	s.reserveBuddies(a, contacts)
	for _, c := range contacts {
		s.upsertContact(a, c)
	}
	n := len(contacts)
	clear(contacts) // the pool keeps the array, not the contacts' strings
	*lp = contacts[:0]
	contactLists.Put(lp)
	// Said once the buddies are in the channel, so "logged in" means the
	// channel is complete.
	s.log.WithFields(logrus.Fields{"account": a.cfg.Email, "uid": a.self.UID, "buddies": n}).Info("logged in to MSIM")
	s.status(a, "Logged in to MSIM as %s (uid %d), %s.", nameOr(a.self.UserName, a.cfg.Email), a.self.UID, plural(n, "buddy", "buddies"))
	s.replayWaiting(a) // the history the clients missed, before what is newer
	s.wakeMSIM()       // events that came with the login, after what was held
	// The IMs held for the account, but those given at an earlier login
	// and not yet shown.
	s.giveHeld(a)
	if s.mem.hasNotes() { // held IMs that could not be read, say
		s.tellNotes()
	}
	if s.away != "" && a.status == msim.StatusOnline {
		s.setStatus(a, msim.StatusAway, s.away, replyCtx{})
	}
	s.flushQueue(a)
	s.pollAlerts(a)
}

// contactLists holds the arrays logins copy their contact lists into:
// during a login storm one serves many logins in turn rather than each
// making its own.
var contactLists sync.Pool // of *[]msim.Contact

// linkStable is how long a link must stay up for the back-off to start
// over when it is lost: a link that the server drops soon after each login
// is retried ever more slowly, as failed logins are, not every few seconds.
const linkStable = time.Minute

// scheduleRetry reconnects after an exponential, jittered delay, which it
// returns (rounded as the user is told it).
func (s *session) scheduleRetry(a *account) time.Duration {
	lo, hi := s.b.cfg.ReconnectMin, s.b.cfg.ReconnectMax
	if a.delay == 0 {
		a.delay = lo
	} else {
		a.delay = min(2*a.delay, hi)
	}
	d := a.delay/2 + time.Duration(rand.Int64N(int64(a.delay))) // jitter: 0.5×–1.5×
	s.setState(a, linkWaiting)
	gen := a.gen
	a.stopTimer()
	a.timer = s.b.cfg.Clock.AfterFunc(d, func() { s.post(retryDue{a: a, gen: gen}) })
	s.status(a, "Reconnecting in %s.", roundDur(d))
	return roundDur(d)
}

func roundDur(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func alertText(kind string) string {
	switch kind {
	case "Mail":
		return "You have new mail on MSIM."
	case "BlogComment":
		return "You have a new blog comment."
	case "ProfileComment":
		return "You have a new profile comment."
	case "FriendRequest":
		return "You have a new friend request."
	case "PictureComment":
		return "You have a new picture comment."
	case "BlogSubscriptionPost":
		return "A blog you follow has a new post."
	}
	return "MSIM alert: " + fromMSIMLine(kind)
}

func (s *session) onLinkLost(a *account, ev msim.DisconnectedEvent) {
	a.client = nil
	s.dropBuddies(a)
	s.b.met.linkLost(ev.Reason)
	if ev.Reason == msim.DisconnectKicked {
		s.log.WithField("account", a.cfg.Email).Warn("MSIM account logged in from another place; not reconnecting until the user types connect")
		s.setState(a, linkStopped)
		s.status(a, "Logged out: this account logged in from another place. Not reconnecting; type connect to take it back.")
	} else {
		s.status(a, "Lost the MSIM connection: %v", ev.Err)
		if s.b.cfg.Clock.Now().Sub(a.upAt) >= linkStable {
			a.delay = 0
		}
		d := s.scheduleRetry(a)
		s.log.WithError(ev.Err).WithFields(logrus.Fields{"account": a.cfg.Email, "reason": ev.Reason, "retry_in": d}).Warn("MSIM link lost; reconnecting")
	}
	if text := droppedText(ev.Reason == msim.DisconnectOverflow, ev.DroppedIMs, s.nicksOf(a, ev.DroppedFrom)); text != "" {
		s.status(a, "%s", text)
	}
	s.reportUnconfirmed(a, ev, false)
	// IMs the client had accepted but not written go back in the queue,
	// ahead of anything typed after them (queued already if the session
	// saw it before this event), and the user is told.
	after := len(a.queue)
	for _, im := range ev.Unsent {
		s.queueIMAs(a, queuedIM{uid: im.To, nick: s.nickOf(a, im.To), text: im.Text}, true)
	}
	if after > 0 && len(a.queue) > after {
		s.requeueAfter(a, after)
	}
	if ev.Reason == msim.DisconnectKicked {
		s.failQueue(a, "the account logged in from another place")
	}
}

// requeueAfter moves a.queue's first n IMs behind the rest, in the queue
// and in the user's memory (re-queued before they are taken out there: a
// crash between the two sends one twice rather than losing it), so that
// the reconnect sends them in that order, now or after a restart.
func (s *session) requeueAfter(a *account, n int) {
	first := slices.Clone(a.queue[:n])
	a.queue = append(a.queue[:0], a.queue[n:]...)
	for _, q := range first {
		old := q.id
		a.queue = append(a.queue, s.mem.queue(a.cfg.Email, q))
		s.mem.unqueue(a.cfg.Email, old)
	}
}

// droppedText tells the user that IMs sent to them were lost, or may have
// been, because the session fell behind its MSIM client (overflow: the
// client dropped the link, and with it what the server had written to
// it), naming the senders of the n IMs the client received and dropped.
// It is "" when none may have been lost.
func droppedText(overflow bool, n int, from []string) string {
	if n == 0 {
		if !overflow {
			return ""
		}
		return "IMs sent to you just before this may have been lost: the gateway fell behind the MSIM link and dropped it."
	}
	who := "" // none named: IMs the MSIM client could not read either
	if len(from) > 0 {
		who = " from " + strings.Join(from, ", ")
	}
	return fmt.Sprintf("IMs sent to you were lost: %d%s came when the gateway had fallen behind the MSIM link, and others sent just before may be lost too.",
		n, who)
}

// reportDropped tells the user of the IMs a's MSIM client dropped
// (droppedText, from their senders) as tellOf tells of a.
func (s *session) reportDropped(a *account, from []msim.UID, overflow bool, n int) {
	var names []string
	if a.released() {
		names = keptNicks(a.owner, a, nil, from)
	} else {
		names = s.nicksOf(a, from)
	}
	if text := droppedText(overflow, n, names); text != "" {
		s.tellOf(a, text)
	}
}

// tellOf tells the user text, of account a, in a's control channel; or,
// once the session has let a go (released), and its channel with it, so
// that it still reaches the user whose account it was: kept as a note for
// their next connection if the session is another user's now, else told
// on the session's connections, as fromUserSeq tells a lost IM.
func (s *session) tellOf(a *account, text string) {
	if !a.released() {
		s.status(a, "%s", text)
		return
	}
	if o := a.owner; o.mem != s.mem && !o.mem.isForgotten() {
		o.mem.note(accountNote(a, text))
		return
	}
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Text: accountNote(a, text)})
}

// nicksOf names uids as the user knows them.
func (s *session) nicksOf(a *account, uids []msim.UID) []string {
	out := make([]string, len(uids))
	for i, uid := range uids {
		out[i] = s.nickOf(a, uid)
	}
	return out
}

// reportUnconfirmed names the IMs written just before the link was lost
// (closed: closed on purpose, as holdTaken words it): MSIM has no
// receipts, so they may have vanished with the connection.
func (s *session) reportUnconfirmed(a *account, ev msim.DisconnectedEvent, closed bool) {
	ended := "was lost"
	if closed {
		ended = "closed"
	}
	for _, im := range ev.Unconfirmed {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.nickOf(a, im.To),
			Text: "The MSIM link " + ended + " just after this was sent; it may not have arrived: " + im.Text})
	}
	if ev.MoreUnconfirmed {
		s.status(a, "More IMs sent in the last seconds before the link %s may not have arrived.", ended)
	}
}

const (
	linkDown       linkState = iota // not connected, not retrying (never connected, or `disconnect`)
	linkConnecting                  // a Dial is under way
	linkUp                          // logged in
	linkWaiting                     // waiting to retry after a failure
	linkStopped                     // a failure retrying cannot fix (wrong password, kicked)
)
