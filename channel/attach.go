// Attaching IRC connections to a user's session, and sessions that run
// with none attached (always on).
//
// A session belongs to a user, not to a connection. Each IRC connection is
// an attachment: the ircd.Handler ircd calls, which posts what the client
// does to the session it is attached to. With Config.AlwaysOn, a user who
// is not ephemeral keeps their session, and so their MSIM links, when their
// last connection leaves, and sessions start at boot for every user with an
// account that autoconnects. A connection that arrives for a running
// session attaches to it: the session rebuilds the client's world (control
// channels, buddies, presence) and replays what was held meanwhile.

package channel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// attachment is one IRC connection of a user. ircd calls its Handler
// methods; it forwards them to its session, tagged with itself so that the
// session ignores a connection that is no longer the attached one.
type attachment struct {
	c      ircConn
	s      atomic.Pointer[session] // moved by identify to the user's running session
	remote net.Addr                // the client's address (identify's guess limiting)
}

func newAttachment(c ircConn, s *session, remote net.Addr) *attachment {
	at := &attachment{c: c, remote: remote}
	at.s.Store(s)
	return at
}

type attachReq struct {
	at   *attachment
	done chan struct{} // closed once the client's world is rebuilt
}

func (attachReq) isEvent() {}

// Handler methods, called from the IRC connection's goroutine. Join, Part
// and Nick need nothing: ircd keeps the client's memberships (parting a
// control channel keeps the account connected; JOIN brings it back), and
// buddy nicks are checked against the client's nick when made.

func (at *attachment) Message(in ircd.Input) { at.s.Load().post(ircInput{at, in}) }
func (at *attachment) Join(string)           {}
func (at *attachment) Part(string, string)   {}
func (at *attachment) Away(text string)      { at.s.Load().post(ircAway{at, text}) }
func (at *attachment) Nick(string)           {}
func (at *attachment) Closed(string)         { at.s.Load().post(ircClosed{at}) }

// WhoisAsync implements ircd.AsyncWhoisHandler.
func (at *attachment) WhoisAsync(nick string, answer func(lines []string)) {
	at.s.Load().WhoisAsync(nick, answer)
}

// close closes the attachment's connection; nil-safe.
func (at *attachment) close(reason string) {
	if at != nil {
		at.c.Close(reason)
	}
}

// attachClient attaches c to the running session s and returns once the
// client's world is rebuilt; false if s has ended.
func (s *session) attachClient(c ircConn, remote net.Addr) (*attachment, bool) {
	at := newAttachment(c, s, remote)
	return at, s.attachRunning(at)
}

// attachRunning posts at to s and waits until s has attached it; false if
// s has ended.
func (s *session) attachRunning(at *attachment) bool {
	done := make(chan struct{})
	if !s.post(attachReq{at: at, done: done}) {
		return false
	}
	select {
	case <-done:
		return true
	case <-s.done:
		return false
	}
}

// handOver moves the session's connection to to, the running session of the
// user the connection has just identified as, and ends this session (it
// has no accounts left). False if to has ended meanwhile.
func (s *session) handOver(to *session) bool {
	at := s.at
	at.s.Store(to)
	if !to.attachRunning(at) {
		at.s.Store(s)
		return false
	}
	s.at = nil
	s.attached.Store(nil)
	s.irc = &detachedConn{s: s, nick: at.c.Nick()}
	s.cancel()
	return true
}

// persistent reports whether the session outlives its connections.
func (s *session) persistent() bool {
	return s.b.cfg.AlwaysOn && !s.user.Ephemeral && s.user.identify == ""
}

// attach makes at the session's connection and rebuilds its world. A
// connection attached before is closed: it was replaced.
func (s *session) attach(at *attachment) {
	if s.at != nil {
		s.at.c.Close("Replaced by a new connection")
	}
	s.waitSent() // each IM handed to the old connection is shown or held
	s.at = at
	s.attached.Store(at)
	s.irc = at.c
	s.remote = at.remote
	s.rebuild()
}

// detach lets the session run on with no connection: IMs are held for the
// next one (committed to the store when there is one), and what the user
// must be told is kept as notes.
func (s *session) detach() {
	s.at = nil
	s.attached.Store(nil)
	s.irc = &detachedConn{s: s, nick: s.irc.Nick()}
	for _, a := range s.accounts {
		a.joined = false
	}
	s.log.Info("the IRC client left; the MSIM accounts stay online")
	s.pumpOut() // what waits in the outbox is held now
}

// rebuild gives a newly attached client the session's world as it is: the
// service nick, notes, each account's control channel with its buddies and
// their presence, and the IMs held for accounts already logged in (those
// of the others come with their login).
func (s *session) rebuild() {
	svc := s.b.cfg.ServiceNick
	// An error says the client has it already (a connection handed over).
	_ = s.irc.AddUser(ircd.User{Nick: svc, User: "root", Host: "msimircd", RealName: "msimircd service"})
	for _, n := range s.mem.takeNotes() {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: svc, Text: n})
	}
	for _, a := range s.accounts {
		if err := s.irc.CreateChannel(a.channel, "MSIM account "+a.cfg.Email+" — type help for commands"); err != nil {
			s.log.WithError(err).WithField("channel", a.channel).Warn("cannot create the control channel")
			continue
		}
		s.irc.JoinUser(a.channel, svc, false)
		s.irc.SetOp(a.channel, svc, true)
		for _, bd := range a.buddies {
			s.addBuddyUser(bd)
			if bd.inChan {
				s.irc.JoinUser(a.channel, bd.nick, bd.voiced)
			}
		}
		a.joined = false
		quiet := len(a.backlog) == 0 // nothing said since the last client left
		s.joinClient(a)
		if a.state == linkUp && quiet {
			n := 0
			for _, bd := range a.buddies {
				if bd.contact {
					n++
				}
			}
			s.say(a, "Logged in to MSIM as %s (uid %d), %s; the account stayed online while no client was attached.",
				nameOr(a.self.UserName, a.cfg.Email), a.self.UID, plural(n, "buddy", "buddies"))
		}
		if a.state == linkUp {
			for _, se := range s.mem.heldFor(a.cfg.Email) {
				s.fromUserSeq(a, senderOf(se.ev), se)
			}
		}
	}
	if s.away != "" {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: svc, Text: "You are still marked away on MSIM (" + s.away + "); /away with no text to come back."})
	}
}

// addBuddyUser gives the attached client bd's virtual user; if the
// client's own nick took bd's meanwhile, bd gets another.
func (s *session) addBuddyUser(bd *buddy) {
	u := ircd.User{Nick: bd.nick, User: sanitizeUser(bd.userName, bd.uid), Host: "msim." + bd.uid.String(),
		RealName: nameOr(bd.displayName, bd.userName), Away: bd.away}
	if s.irc.AddUser(u) == nil {
		return
	}
	memKey := buddyKey{bd.a.cfg.Email, bd.uid}
	old := bd.nick
	nick := uniqueNick(old, func(k string) bool { return s.nickTaken(k) || s.mem.ownedByOther(k, memKey) || k == nickKey(old) })
	delete(s.nicks, nickKey(old))
	bd.nick, u.Nick = nick, nick
	s.nicks[nickKey(nick)] = bd
	s.mem.setNick(memKey, nick, false)
	if err := s.irc.AddUser(u); err != nil {
		s.log.WithError(err).WithField("nick", nick).Error("cannot add buddy nick")
	}
}

// waitSent waits (bounded) until ircd has reported every IM it was handed.
func (s *session) waitSent() {
	if s.out.inflight.Load() <= 0 {
		return
	}
	t := time.NewTimer(sentWait)
	defer t.Stop()
	for s.out.inflight.Load() > 0 {
		select {
		case <-s.out.drained:
		case <-t.C:
			s.log.Warn("ircd has not reported every IM handed to it; those it reports as not sent are held later")
			return
		}
	}
}

// maxBacklog bounds the status lines kept for a client not in the channel.
const maxBacklog = 50

// detachedConn is the session's IRC connection while none is attached. The
// world changes nothing (the next client gets it rebuilt); an IM is
// reported not sent, so the outbox holds it; a notice or message for the
// user is kept as a note for the next connection.
type detachedConn struct {
	s    *session
	nick string
}

func (d *detachedConn) Deliver(dl ircd.Delivery) bool {
	if dl.Sent != nil {
		dl.Sent(false)
		return false
	}
	if (dl.Command == "NOTICE" || dl.Command == "PRIVMSG") && dl.Text != "" {
		from := dl.From
		if from == "" {
			from = d.s.b.cfg.ServiceNick
		}
		d.s.mem.note(fmt.Sprintf("While you were away, %s: %s", from, dl.Text))
	}
	return false
}

func (d *detachedConn) Room() int                          { return 1 << 20 }
func (d *detachedConn) HasCap(string) bool                 { return false }
func (d *detachedConn) Nick() string                       { return d.nick }
func (d *detachedConn) Close(string)                       {}
func (d *detachedConn) AddUser(ircd.User) error            { return nil }
func (d *detachedConn) RenameUser(string, string) error    { return nil }
func (d *detachedConn) SetAway(string, string)             {}
func (d *detachedConn) SetRealName(string, string)         {}
func (d *detachedConn) CreateChannel(string, string) error { return nil }
func (d *detachedConn) JoinUser(string, string, bool)      {}
func (d *detachedConn) PartUser(string, string, string)    {}
func (d *detachedConn) SetVoice(string, string, bool)      {}
func (d *detachedConn) SetOp(string, string, bool)         {}
func (d *detachedConn) JoinClient(string)                  {}
func (d *detachedConn) RemoveUser(string, string)          {}
func (d *detachedConn) RemoveChannel(string)               {}

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
// the directory behind, as Lookup gives them).
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
	for _, su := range stored {
		if d.configures(su.Name) {
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
		if u.Ephemeral || !slices.ContainsFunc(u.Accounts, func(a Account) bool { return a.AutoConnect }) {
			continue
		}
		b.mu.Lock()
		if b.ctx.Err() != nil {
			b.mu.Unlock()
			return n, errors.New("shutting down")
		}
		if b.sessions[u.Name] != nil {
			b.mu.Unlock()
			continue // a client came first
		}
		s, err := b.startLocked(u, nil, nil)
		b.mu.Unlock()
		if err != nil {
			return n, fmt.Errorf("user %s: %w", u.Name, err)
		}
		s.start()
		go b.run(s)
		n++
	}
	return n, nil
}
