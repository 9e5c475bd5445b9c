package channel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

type linkState int

const (
	linkDown       linkState = iota // not connected, not retrying (never connected, or `disconnect`)
	linkConnecting                  // a Dial is under way
	linkUp                          // logged in
	linkWaiting                     // waiting to retry after a failure
	linkStopped                     // a failure retrying cannot fix (wrong password, kicked)
)

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

// account is one MSIM account's state, owned by the session goroutine.
type account struct {
	cfg     Account
	channel string
	joined  bool     // the IRC client has been joined to the channel
	backlog []string // status lines said before the client joined

	state  linkState
	gen    int // bumped on every connect/disconnect; stale events are ignored
	client *msim.Client
	self   msim.Profile
	timer  *time.Timer // reconnect
	alerts *time.Timer // next alert poll
	delay  time.Duration

	buddies map[msim.UID]*buddy
	pending map[msim.UID][]seqEvent // events from strangers awaiting their profile
	queue   []queuedIM

	status     msim.Status // what the user asked for; restored on reconnect
	statusText string
}

type queuedIM struct {
	uid  msim.UID
	nick string
	text string
}

func (a *account) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	if a.alerts != nil {
		a.alerts.Stop()
		a.alerts = nil
	}
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
		a.alerts = time.AfterFunc(s.b.cfg.AlertPoll, func() {
			s.post(call(func() {
				if gen == a.gen {
					s.pollAlerts(a)
				}
			}))
		})
	})
}

// buddy is an MSIM user the IRC client sees as a nick.
type buddy struct {
	a           *account
	uid         msim.UID
	nick        string
	userName    string
	displayName string
	contact     bool // on the contact list (not a stranger who wrote)
	blocked     bool
	status      msim.Status
	statusText  string
	inChan      bool
	voiced      bool
	away        string
	typing      bool // the IRC client was last told the buddy is typing
}

func (s *session) connect(a *account) {
	if a.state == linkConnecting || a.state == linkUp {
		return
	}
	a.stopTimer()
	a.gen++
	a.state = linkConnecting
	gen := a.gen
	cfg := msim.ClientConfig{
		Addr: s.b.cfg.MSIMAddr, Email: a.cfg.Email, Password: a.cfg.Password,
		Status: a.status, StatusText: a.statusText,
		DialTimeout: s.b.cfg.DialTimeout, RequestTimeout: s.b.cfg.RequestTimeout,
		Dial: s.b.cfg.Dial,
		Log:  s.log.WithField("account", a.cfg.Email),
	}
	s.status(a, "Connecting to MSIM as %s…", a.cfg.Email)
	go func() {
		cl, err := msim.Dial(s.ctx, cfg)
		if !s.post(linkResult{a: a, gen: gen, cl: cl, err: err}) && cl != nil {
			_ = cl.Close()
		}
	}()
}

func (s *session) disconnect(a *account, why string) {
	a.stopTimer()
	a.gen++
	if a.client != nil {
		_ = a.client.Close()
		a.client = nil
	}
	s.dropBuddies(a)
	a.state = linkDown
	s.status(a, "%s", why)
}

func (s *session) onLinkResult(ev linkResult) {
	a := ev.a
	if ev.gen != a.gen {
		if ev.cl != nil {
			_ = ev.cl.Close()
		}
		return
	}
	defer s.joinClient(a)
	if ev.err != nil {
		var le *msim.LoginError
		if errors.Is(ev.err, msim.ErrBadPassword) || errors.Is(ev.err, msim.ErrUnknownAccount) || errors.Is(ev.err, msim.ErrNoUserName) {
			a.state = linkStopped
			why := ev.err.Error()
			if errors.As(ev.err, &le) {
				why = le.Reason()
			}
			s.status(a, "Login failed: %s. Not retrying: fix the account's settings, then type connect.", strings.TrimSuffix(why, "."))
			s.failQueue(a, "the account cannot log in")
			return
		} else if errors.As(ev.err, &le) {
			s.status(a, "Login refused by the MSIM server: %v", ev.err)
		} else {
			s.status(a, "Cannot connect to MSIM: %v", ev.err)
		}
		s.scheduleRetry(a)
		return
	}
	a.client = ev.cl
	a.state = linkUp
	a.delay = 0
	a.self = ev.cl.Self()
	if a.cfg.Channel == "" && a.self.UserName != "" {
		s.mem.set(s.mem.channels, a.cfg.Email, "&"+sanitizeNick(a.self.UserName))
	}
	contacts := ev.cl.Contacts()
	s.status(a, "Logged in to MSIM as %s (uid %d), %s.", nameOr(a.self.UserName, a.cfg.Email), a.self.UID, plural(len(contacts), "buddy", "buddies"))
	for _, c := range contacts {
		s.upsertContact(a, c)
	}
	gen := a.gen
	cl := ev.cl
	s.pumps.Add(1)
	go func() {
		defer s.pumps.Done()
		for e := range cl.Events() {
			if !s.post(msimInput{a: a, gen: gen, ev: e}) {
				s.holdIM(a, e)
			}
		}
	}()
	for _, se := range s.mem.takeHeld(a.cfg.Email) {
		s.fromUserSeq(a, senderOf(se.ev), se)
	}
	if s.away != "" && a.status == msim.StatusOnline {
		s.setStatus(a, msim.StatusAway, s.away, replyCtx{})
	}
	s.flushQueue(a)
	s.pollAlerts(a)
}

// plural is "1 buddy", "2 buddies".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func nameOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// scheduleRetry reconnects after an exponential, jittered delay.
func (s *session) scheduleRetry(a *account) {
	lo, hi := s.b.cfg.ReconnectMin, s.b.cfg.ReconnectMax
	if a.delay == 0 {
		a.delay = lo
	} else {
		a.delay = min(2*a.delay, hi)
	}
	d := a.delay/2 + time.Duration(rand.Int64N(int64(a.delay))) // jitter: 0.5×–1.5×
	a.state = linkWaiting
	gen := a.gen
	a.stopTimer()
	a.timer = time.AfterFunc(d, func() { s.post(retryDue{a: a, gen: gen}) })
	s.status(a, "Reconnecting in %s.", roundDur(d))
}

func roundDur(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func (s *session) onMSIM(a *account, gen int, ev msim.Event) {
	if gen != a.gen {
		// Events of a link that was closed on purpose; an IM still
		// counts, and so does one of ours that never left.
		switch ev := ev.(type) {
		case msim.IMEvent:
			s.fromUser(a, ev.From, ev)
		case msim.DisconnectedEvent:
			for _, im := range ev.Unsent {
				s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.nickOf(a, im.To),
					Text: "Message NOT sent (the MSIM link was closed first): " + im.Text})
			}
		}
		return
	}
	switch ev := ev.(type) {
	case msim.IMEvent:
		s.fromUser(a, ev.From, ev)
	case msim.PresenceEvent:
		if bd := a.buddies[ev.UID]; bd != nil {
			bd.status, bd.statusText = ev.Status, fromMSIMLine(ev.Text)
			s.applyPresence(bd)
		}
	case msim.TypingEvent:
		// Clients repeat "stopped typing" (libpurple sends it twice): only
		// a change reaches IRC.
		if bd := a.buddies[ev.From]; bd != nil && s.setting("typing") == "true" && bd.typing != ev.Typing {
			bd.typing = ev.Typing
			s.irc.Deliver(ircd.Delivery{Command: "TAGMSG", From: bd.nick, Tags: typingTags(ev.Typing)})
		}
	case msim.ZapEvent:
		s.fromUser(a, ev.From, ev)
	case msim.ContactEvent:
		switch ev.Change {
		case msim.ContactRemoved:
			if bd := a.buddies[ev.Contact.UID]; bd != nil {
				bd.contact = false
				s.applyPresence(bd)
			}
		default:
			s.upsertContact(a, ev.Contact)
		}
	case msim.AlertEvent:
		for _, al := range ev.Alerts {
			s.notice(a, alertText(al))
		}
	case msim.ErrorEvent:
		s.status(a, "MSIM server error %d: %s", ev.Code, fromMSIMLine(ev.Message))
	case msim.DisconnectedEvent:
		s.onLinkLost(a, ev)
	}
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
	if ev.Reason == msim.DisconnectKicked {
		a.state = linkStopped
		s.status(a, "Logged out: this account logged in from another place. Not reconnecting; type connect to take it back.")
	} else {
		s.status(a, "Lost the MSIM connection: %v", ev.Err)
		s.scheduleRetry(a)
	}
	s.reportUnconfirmed(a, ev)
	// IMs the client had accepted but not written go back in the queue,
	// ahead of anything typed from now on, and the user is told.
	for _, im := range ev.Unsent {
		s.queueIMAs(a, queuedIM{uid: im.To, nick: s.nickOf(a, im.To), text: im.Text}, true)
	}
	if ev.Reason == msim.DisconnectKicked {
		s.failQueue(a, "the account logged in from another place")
	}
}

// reportUnconfirmed names the IMs written just before the link was lost:
// MSIM has no receipts, so they may have vanished with the connection.
func (s *session) reportUnconfirmed(a *account, ev msim.DisconnectedEvent) {
	for _, im := range ev.Unconfirmed {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.nickOf(a, im.To),
			Text: "The MSIM link was lost just after this was sent; it may not have arrived: " + im.Text})
	}
	if ev.MoreUnconfirmed {
		s.status(a, "More IMs sent in the last seconds before the link was lost may not have arrived.")
	}
}

// nickOf is the nick of uid on a, or the uid itself for a user the bridge
// no longer knows.
func (s *session) nickOf(a *account, uid msim.UID) string {
	if bd := a.buddies[uid]; bd != nil {
		return bd.nick
	}
	return uid.String()
}

// dropBuddies takes every buddy of a out of its channel (the link is down).
func (s *session) dropBuddies(a *account) {
	for _, bd := range a.buddies {
		if bd.inChan {
			s.irc.PartUser(a.channel, bd.nick, "MSIM link down")
			bd.inChan, bd.voiced = false, false
		}
		bd.status = msim.StatusOffline
	}
}

// upsertContact creates or updates a buddy from the contact list.
func (s *session) upsertContact(a *account, c msim.Contact) {
	bd := a.buddies[c.UID]
	if bd == nil {
		bd = s.newBuddy(a, c.UID, c.UserName, c.DisplayName)
	}
	bd.contact = true
	bd.blocked = c.Blocked
	if c.UserName != "" {
		bd.userName = fromMSIMLine(c.UserName)
	}
	if c.DisplayName != "" {
		bd.displayName = fromMSIMLine(c.DisplayName)
	}
	bd.status, bd.statusText = c.Status, fromMSIMLine(c.StatusText)
	s.applyPresence(bd)
}

// newBuddy creates a buddy and its virtual user, with a stable nick.
func (s *session) newBuddy(a *account, uid msim.UID, userName, displayName string) *buddy {
	userName, displayName = fromMSIMLine(userName), fromMSIMLine(displayName)
	bd := &buddy{a: a, uid: uid, userName: userName, displayName: displayName, status: msim.StatusOffline}
	memKey := buddyKey{a.cfg.Email, uid}
	taken := func(k string) bool { return s.nickTaken(k) || s.mem.ownedByOther(k, memKey) }
	nick, ok := s.mem.nick(memKey)
	if !ok || s.nickTaken(nickKey(nick)) {
		nick = uniqueNick(baseNick(userName, displayName, int(uid)), taken)
		s.mem.setNick(memKey, nick)
	}
	bd.nick = nick
	host := "msim." + uid.String()
	if err := s.irc.AddUser(ircd.User{Nick: nick, User: sanitizeUser(userName, uid), Host: host,
		RealName: nameOr(displayName, userName), Away: "Offline"}); err != nil {
		// The real client took this nick meanwhile: pick another.
		nick = uniqueNick(nick, func(k string) bool { return taken(k) || k == nickKey(nick) })
		bd.nick = nick
		s.mem.setNick(memKey, nick)
		if err := s.irc.AddUser(ircd.User{Nick: nick, User: sanitizeUser(userName, uid), Host: host, RealName: nameOr(displayName, userName), Away: "Offline"}); err != nil {
			s.log.WithError(err).WithField("nick", nick).Error("cannot add buddy nick")
		}
	}
	bd.away = "Offline"
	a.buddies[uid] = bd
	s.nicks[nickKey(nick)] = bd
	return bd
}

func sanitizeUser(userName string, uid msim.UID) string {
	if u := sanitizeNick(userName); u != "" && len(u) <= 10 && u[0] != '_' {
		return u
	}
	return "u" + uid.String()
}

// nickTaken reports whether a nick key is used by a buddy, the service or
// the IRC user.
func (s *session) nickTaken(key string) bool {
	if _, ok := s.nicks[key]; ok {
		return true
	}
	return key == nickKey(s.b.cfg.ServiceNick) || key == nickKey(s.irc.Nick())
}

// applyPresence makes the channel show bd's status: online = voiced;
// away or idle = present, marked away (devoiced unless away_devoice is off);
// offline = not present unless show_offline.
func (s *session) applyPresence(bd *buddy) {
	a := bd.a
	away := ""
	switch bd.status {
	case msim.StatusOnline:
	case msim.StatusOffline:
		away = "Offline"
	case msim.StatusIdle:
		away = nameOr(bd.statusText, "Idle")
	case msim.StatusAway:
		away = nameOr(bd.statusText, "Away")
	}
	if away != bd.away {
		s.irc.SetAway(bd.nick, away)
		bd.away = away
	}
	show := bd.contact && !bd.blocked && a.state == linkUp &&
		(bd.status != msim.StatusOffline || s.setting("show_offline") == "true")
	voice := show && (bd.status == msim.StatusOnline ||
		(bd.status != msim.StatusOffline && s.setting("away_devoice") != "true"))
	switch {
	case show && !bd.inChan:
		s.irc.JoinUser(a.channel, bd.nick, voice)
		bd.inChan, bd.voiced = true, voice
	case !show && bd.inChan:
		reason := "Offline"
		if !bd.contact {
			reason = "Removed from the buddy list"
		} else if bd.blocked {
			reason = "Blocked"
		}
		s.irc.PartUser(a.channel, bd.nick, reason)
		bd.inChan, bd.voiced = false, false
	case show && voice != bd.voiced:
		s.irc.SetVoice(a.channel, bd.nick, voice)
		bd.voiced = voice
	}
}

// holdIM keeps an IM or zap that arrived after the session ended for the
// user's next connection.
func (s *session) holdIM(a *account, ev msim.Event) {
	if !s.mem.holdEvent(a.cfg.Email, ev, s.mem.nextSeq()) {
		s.log.WithField("account", a.cfg.Email).WithField("from", senderOf(ev)).
			Errorf("an IM arrived after the IRC client left and %d are already held; it is lost (the user is told)", maxHeld)
	}
}

// fromUser delivers an event from uid that has just arrived.
func (s *session) fromUser(a *account, uid msim.UID, ev msim.Event) {
	s.fromUserSeq(a, uid, seqEvent{ev, s.mem.nextSeq()})
}

// senderOf is the sender of an IM or zap.
func senderOf(ev msim.Event) msim.UID {
	switch ev := ev.(type) {
	case msim.IMEvent:
		return ev.From
	case msim.ZapEvent:
		return ev.From
	}
	return 0
}

// fromUserSeq puts an IM or zap from uid in the outbox, first learning who
// a stranger is.
func (s *session) fromUserSeq(a *account, uid msim.UID, se seqEvent) {
	bd := a.buddies[uid]
	if bd == nil {
		if q, ok := a.pending[uid]; ok {
			a.pending[uid] = append(q, se)
			return
		}
		a.pending[uid] = []seqEvent{se}
		cl := a.client
		if cl == nil {
			s.strangerKnown(a, uid, msim.Profile{})
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
			p, err := cl.Profile(ctx, uid)
			cancel()
			if err != nil {
				p = msim.Profile{}
			}
			s.post(call(func() { s.strangerKnown(a, uid, p) }))
		}()
		return
	}
	s.enqueue(bd, se.ev, se.seq)
}

func (s *session) strangerKnown(a *account, uid msim.UID, p msim.Profile) {
	evs := a.pending[uid]
	delete(a.pending, uid)
	if a.buddies[uid] == nil {
		s.newBuddy(a, uid, p.UserName, p.DisplayName)
	}
	for _, se := range evs {
		s.fromUserSeq(a, uid, se)
	}
}

// sendIM sends text to bd, or queues it while the link is down.
func (s *session) sendIM(bd *buddy, text string) {
	a := bd.a
	if a.client == nil {
		s.queueIM(a, queuedIM{uid: bd.uid, nick: bd.nick, text: text})
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
	err := a.client.SendIM(ctx, bd.uid, text)
	cancel()
	switch {
	case errors.Is(err, msim.ErrDisconnected):
		// The link just died; its DisconnectedEvent follows and the
		// reconnect sends the queue.
		s.queueIM(a, queuedIM{uid: bd.uid, nick: bd.nick, text: text})
	case err != nil:
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: bd.nick,
			Text: fmt.Sprintf("Message NOT sent (%v): %s", err, text)})
	}
}

func (s *session) queueIM(a *account, q queuedIM) { s.queueIMAs(a, q, false) }

// queueIMAs queues q for the reconnect and tells the user; unsent marks an
// IM the MSIM client had taken but never written when the link died, which
// the notice names by its text.
func (s *session) queueIMAs(a *account, q queuedIM, unsent bool) {
	limit := s.b.cfg.QueueLimit
	notSent := "Message NOT sent"
	if unsent {
		notSent = "The MSIM link was lost before this message went out; it was NOT sent"
	}
	if a.state == linkStopped || a.state == linkDown {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: q.nick,
			Text: fmt.Sprintf("%s: account %s is %s. Type connect in %s. The message: %s", notSent, a.cfg.Email, a.state, a.channel, q.text)})
		return
	}
	if len(a.queue) >= limit {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: q.nick,
			Text: fmt.Sprintf("%s: %d messages are already waiting for the MSIM link to come back. The message: %s", notSent, limit, q.text)})
		return
	}
	a.queue = append(a.queue, q)
	text := fmt.Sprintf("The MSIM link is down; your message is queued (%d waiting) and will be sent when it is back.", len(a.queue))
	if unsent {
		text = fmt.Sprintf("The MSIM link was lost before this message went out; it is queued (%d waiting) and will be sent when the link is back: %s", len(a.queue), q.text)
	}
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: q.nick, Text: text})
}

func (s *session) flushQueue(a *account) {
	if len(a.queue) == 0 {
		return
	}
	q := a.queue
	a.queue = nil
	sent := 0
	for i, m := range q {
		ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
		err := a.client.SendIM(ctx, m.uid, m.text)
		cancel()
		if err != nil {
			a.queue = append(a.queue, q[i:]...)
			s.say(a, "Sent %d queued messages; %d still waiting (%v).", sent, len(a.queue), err)
			return
		}
		sent++
	}
	s.say(a, "The MSIM link is back: sent %d queued message(s).", sent)
}

func (s *session) failQueue(a *account, why string) {
	if len(a.queue) == 0 {
		return
	}
	for _, m := range a.queue {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: m.nick, Text: "Message NOT sent (" + why + "): " + m.text})
	}
	a.queue = nil
}

func (s *session) sendTyping(bd *buddy, on bool) {
	a := bd.a
	if a.client == nil || s.setting("typing") != "true" {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
	defer cancel()
	_ = a.client.SendTyping(ctx, bd.uid, on) // best effort: typing is not a message
}

func (s *session) setStatus(a *account, st msim.Status, text string, r replyCtx) {
	a.status, a.statusText = st, text
	if a.client == nil {
		if r.a != nil {
			s.reply(r, "Status saved; it is sent when %s connects.", a.cfg.Email)
		}
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
	defer cancel()
	if err := a.client.SetStatus(ctx, st, text); err != nil {
		s.say(a, "Setting the status failed: %v", err)
		return
	}
	if r.a != nil {
		s.reply(r, "Status of %s is now %s%s.", a.cfg.Email, st, suffix(": ", text))
	}
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// whoisInfo renders the extra WHOIS lines of a buddy, from its profile when
// one was fetched (p may be nil).
func (s *session) whoisInfo(bd *buddy, p *msim.Profile) []string {
	var out []string
	add := func(label, v string) {
		if v != "" {
			out = append(out, label+": "+fromMSIMLine(v))
		}
	}
	fetched := p != nil
	if p == nil {
		p = &msim.Profile{}
	}
	add("Display name", nameOr(p.DisplayName, bd.displayName))
	add("User name", fmt.Sprintf("%s (uid %d, account %s)", nameOr(nameOr(p.UserName, bd.userName), "(none)"), bd.uid, bd.a.cfg.Email))
	add("Headline", p.Headline)
	switch {
	case p.BandName != "" && p.SongName != "":
		add("Now playing", p.BandName+" - "+p.SongName)
	default:
		add("Now playing", p.BandName+p.SongName)
	}
	add("Avatar", p.ImageURL)
	if fetched {
		add("Friends", fmt.Sprint(p.TotalFriends))
	}
	if !p.LastLogin.IsZero() {
		add("Last login", p.LastLogin.UTC().Format("2006-01-02 15:04 UTC"))
	}
	if p.Location != "" {
		add("Location", p.Location)
	}
	if bd.blocked {
		out = append(out, "Blocked: yes")
	}
	return out
}

// zapByArg finds a zap by name or number; "" = Zap.
func zapByArg(arg string) (markup.Zap, bool) {
	if arg == "" {
		return markup.Zap(0), true
	}
	var n int
	if _, err := fmt.Sscanf(arg, "%d", &n); err == nil && fmt.Sprint(n) == arg {
		if n >= 0 && n <= 9 {
			return markup.Zap(n), true
		}
		return 0, false
	}
	return markup.ZapByName(arg)
}
