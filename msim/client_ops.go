package msim

// Requests: persist requests matched to their replies by rid, the login-time
// loading of the session, the user-name flow, and the methods the owner calls.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msimircd/msimircd/msim/markup"
	"github.com/sirupsen/logrus"
)

// DefaultGroup is where a contact without a group is filed, as Pidgin does.
const DefaultGroup = "IM Friends"

// pending is a persist request waiting for its reply.
type pending struct {
	rid  int
	cmd  int
	kind DSNLID
	body Dict          // parts received so far (mtf); under c.mu
	ch   chan *Persist // buffered: the reader never blocks on it
	// raw asks for the body's wire form (Persist.parts) rather than
	// Body: a large list read once, record by record.
	raw   bool
	parts []string // as body, for raw
	// size is the bytes of the reply held for the request (see
	// maxReplyBytes), counted in Client.replyBytes until released.
	size int
	// failed: a part had the error bit; the whole reply is an error,
	// whatever the parts after it say.
	failed bool
}

// maxReplyBytes bounds the persist replies the client holds for its
// requests, all together: the parts of replies sent in parts (mtf), and
// replies that have come and wait for their request to take them. Past
// it, the request whose reply would pass it fails, so that neither a
// server that never ends a reply nor one that answers many requests at
// length (a login looks up every contact listed without a user name, and
// takes the replies one at a time) can grow the client's memory without
// end. The largest real replies (a full contact list) are a small
// fraction of it.
const maxReplyBytes = 16 << 20

// maxDropping bounds the requests whose too large replies are being
// dropped (Client.dropping).
const maxDropping = 16

// req describes a persist request.
type req struct {
	cmd   int
	kind  DSNLID
	body  Dict
	noUID bool // Pidgin omits uid in some requests (own IM info)
	raw   bool // the reply's body in wire form (see pending.raw)
}

// start sends a persist request and registers it for its reply.
func (c *Client) start(ctx context.Context, r req) (*pending, error) {
	c.mu.Lock()
	c.rid++
	p := &pending{rid: c.rid, cmd: r.cmd, kind: r.kind, raw: r.raw, ch: make(chan *Persist, 1)}
	c.pending[p.rid] = p
	c.mu.Unlock()

	m := NewInt("persist", 1).AddInt("sesskey", c.sesskey).AddInt("cmd", r.cmd).AddInt("dsn", r.kind.DSN)
	if !r.noUID {
		m.AddInt("uid", int(c.uid))
	}
	m.AddInt("lid", r.kind.LID).AddInt("rid", p.rid)
	if r.kind == PersistOwnProfile {
		m.AddInt("UserID", int(c.uid)) // as Pidgin sends it
	}
	m.AddDict("body", r.body)
	if err := c.send(ctx, m); err != nil {
		c.forget(p)
		return nil, err
	}
	return p, nil
}

// forget ends the request p: it is no longer under way, and its reply,
// taken or not, is no longer held.
func (c *Client) forget(p *pending) {
	c.mu.Lock()
	delete(c.pending, p.rid)
	c.release(p)
	c.mu.Unlock()
}

// release stops counting the bytes held for p's reply. c.mu is held.
func (c *Client) release(p *pending) {
	c.replyBytes -= p.size
	p.size = 0
	p.body, p.parts = nil, nil
}

// await waits for the reply to p, at most RequestTimeout. A reply with the
// error bit is a *PersistError.
func (c *Client) await(ctx context.Context, p *pending) (*Persist, error) {
	defer c.forget(p)
	t := time.NewTimer(c.cfg.RequestTimeout)
	defer t.Stop()
	what := func() string { // only for an error: most requests are answered
		return fmt.Sprintf("msim: persist %d/%d/%d rid %d", p.cmd, p.kind.DSN, p.kind.LID, p.rid)
	}
	var r *Persist
wait:
	for {
		select {
		case r = <-p.ch:
			break wait
		case <-c.done:
			select {
			case r = <-p.ch: // it made it just before the link went
				break wait
			default:
				return nil, errorf("%s: %w", what(), c.linkErr())
			}
		case <-ctx.Done():
			select {
			case r = <-p.ch: // it came, as ctx ended: waiting is over, not the reply
				break wait
			default:
				return nil, errorf("%s: %w", what(), context.Cause(ctx))
			}
		case <-t.C:
			// The server answers in order: while it is sending other
			// messages (a backlog of offline IMs), the reply may be
			// behind them. It is late once the server has been silent.
			if q := c.quiet(); q < c.cfg.RequestTimeout {
				t.Reset(c.cfg.RequestTimeout - q)
				continue
			}
			return nil, errorf("%s: %w: no reply, and nothing else from the server, within %v", what(), ErrTimeout, c.cfg.RequestTimeout)
		}
	}
	if r.overBound {
		return nil, errorf("%s: %w (%d bytes)", what(), ErrRepliesTooLarge, c.cfg.replyLimit)
	}
	if r.IsError() {
		return r, &PersistError{Cmd: r.Cmd, DSN: r.DSN, LID: r.LID, Message: r.ErrorMessage()}
	}
	return r, nil
}

// request sends a persist request and waits for its reply.
func (c *Client) request(ctx context.Context, r req) (*Persist, error) {
	if err := ctx.Err(); err != nil { // not sent at all: a select would pick at random
		return nil, errorf("msim: request: %w", err)
	}
	p, err := c.start(ctx, r)
	if err != nil {
		return nil, err
	}
	return c.await(ctx, p)
}

// fatal reports whether err must abort the login (the link or the ctx is
// gone) rather than just leave a piece of the session unloaded.
func (c *Client) fatal(ctx context.Context, err error) bool {
	select {
	case <-c.done:
		return true
	default:
	}
	return ctx.Err() != nil || !(errors.Is(err, ErrTimeout) || errors.Is(err, ErrRepliesTooLarge) || errors.As(err, new(*PersistError)))
}

// awaitOptional waits for a reply the session can do without (own profile,
// IM info, groups) until the server has sent nothing for a quarter of the
// login's time (it may be sending a backlog first), so a server that never
// answers one (the 2007 server timed some out) does not fail the login. It
// reports whether a failure must end the login.
func (c *Client) awaitOptional(ctx context.Context, p *pending) (*Persist, bool, error) {
	octx, stop := c.whileHeard(ctx, c.optionalWait(ctx))
	defer stop()
	return c.awaitIn(ctx, octx, p)
}

// optionalWait is how long the server may stay silent before the login
// gives up a reply it can do without.
func (c *Client) optionalWait(ctx context.Context) time.Duration {
	wait := min(c.cfg.RequestTimeout, c.cfg.DialTimeout/4)
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/4)
	}
	return wait
}

// awaitIn is awaitOptional with octx, a whileHeard context of ctx, made
// by the caller: several requests can share it.
func (c *Client) awaitIn(ctx, octx context.Context, p *pending) (*Persist, bool, error) {
	r, err := c.await(octx, p)
	if err == nil {
		return r, false, nil
	}
	if octx.Err() != nil && ctx.Err() == nil {
		return nil, false, errorf("%w (not answered)", err)
	}
	return nil, c.fatal(ctx, err), err
}

// setup loads the session after lc 2, pipelining the requests as Pidgin
// does: own profile, own IM info, status, contact list, groups; then the
// block-list settings and the user names the contact list lacks.
func (c *Client) setup(ctx context.Context) error {
	if c.unnamed {
		if err := c.chooseUserName(ctx); err != nil {
			return err
		}
	}
	own, err := c.start(ctx, req{cmd: CmdGet, kind: PersistOwnProfile, body: Dict{}.SetInt("UserID", int(c.uid)), noUID: true})
	if err != nil {
		return err
	}
	info, err := c.start(ctx, req{cmd: CmdGet, kind: PersistOwnIMInfo, noUID: true})
	if err != nil {
		return err
	}
	if err := c.sendStatus(ctx, c.cfg.Status, c.cfg.StatusText); err != nil {
		return err
	}
	list, err := c.start(ctx, req{cmd: CmdGet, kind: PersistContactList, raw: true})
	if err != nil {
		return err
	}
	groups, err := c.start(ctx, req{cmd: CmdGet, kind: PersistGroupList})
	if err != nil {
		return err
	}

	if r, fatal, err := c.awaitOptional(ctx, own); err != nil {
		if fatal {
			return err
		}
		c.logger().WithError(err).Warn("msim: own profile not loaded")
	} else {
		p := profileOf(r.Body)
		p.UID = c.uid
		if p.UserName == "" {
			p.UserName = c.self.UserName
		}
		c.mu.Lock()
		c.self = p
		c.mu.Unlock()
	}
	if r, fatal, err := c.awaitOptional(ctx, info); err != nil {
		if fatal {
			return err
		}
		c.logger().WithError(err).Warn("msim: own IM info not loaded")
	} else {
		// As Pidgin: tell the server our privacy settings.
		w, cb := 0, 0
		if r.Body.Bool("ShowOnlyToList", false) {
			w = 1
		}
		if pm, _ := r.Body.Int("PrivacyMode"); pm&1 != 0 {
			cb = 1
		}
		if err := c.blocklist(ctx, "w"+strconv.Itoa(w), "c"+strconv.Itoa(cb)); err != nil {
			return err
		}
	}
	r, err := c.await(ctx, list)
	if err != nil {
		return err // without the contact list there is no session
	}
	buf := contactBufs.Get().(*[]Contact)
	defer putContactBuf(buf)
	contacts, repeated, past := listContacts((*buf)[:0], r.parts)
	*buf = contacts
	if repeated > 0 {
		c.logger().WithField("repeated", repeated).Warn("msim: the contact list repeats contacts; the first entry of each kept")
	}
	if past > 0 {
		c.logger().WithFields(logrus.Fields{"contacts": len(contacts) + past, "kept": len(contacts)}).
			Warn("msim: the contact list is longer than the client keeps; the contacts past it left out")
	}
	var gs []Group
	if r, fatal, err := c.awaitOptional(ctx, groups); err != nil {
		if fatal {
			return err
		}
		c.logger().WithError(err).Warn("msim: group list not loaded")
	} else {
		gs = listGroups(r.Body.Records("GroupID"), c.logger())
	}

	// The contact list need not carry user names: look up those missing.
	lookups := make(map[int]*pending)
	for i := range contacts {
		if contacts[i].UserName == "" {
			p, err := c.start(ctx, req{cmd: CmdGet, kind: PersistProfile, body: Dict{}.SetInt("UserID", int(contacts[i].UID))})
			if err != nil {
				return err
			}
			lookups[i] = p
		}
	}
	// The names can be done without, as the replies awaitOptional
	// waits for: once the server has stayed silent for as long, the
	// lookups not answered are given up together, not the login.
	octx, stop := c.whileHeard(ctx, c.optionalWait(ctx))
	for i, p := range lookups {
		r, fatal, err := c.awaitIn(ctx, octx, p)
		if err != nil {
			if fatal {
				stop()
				return err
			}
			c.logger().WithError(err).WithField("contact", contacts[i].UID).Warn("msim: contact profile not loaded")
			continue
		}
		contacts[i].withProfile(profileOf(r.Body))
	}
	stop()

	packNames(contacts)
	c.mu.Lock()
	c.takeEarly(contacts)
	c.contacts = make([]contactEntry, len(contacts)) // kept for the session: no spare room
	for i, ct := range contacts {
		c.contacts[i] = entryOf(ct)
	}
	c.groups = gs
	c.mu.Unlock()
	return nil
}

// maxUserNameAttempts bounds the 'choose a user name' loop.
const maxUserNameAttempts = 3

// chooseUserName runs the spec's 'username not set' flow (§3.7).
func (c *Client) chooseUserName(ctx context.Context) error {
	if c.cfg.ChooseUserName == nil {
		return &LoginError{Message: "the account has no user name yet", Err: ErrNoUserName}
	}
	suggested := suggestUserName(c.cfg.Email)
	for attempt := 1; attempt <= maxUserNameAttempts; attempt++ {
		name, err := c.cfg.ChooseUserName(ctx, suggested)
		if err != nil {
			return &LoginError{Message: "no user name chosen: " + err.Error(), Err: ErrNoUserName}
		}
		name = strings.TrimSpace(name)
		if !validUserName(name) {
			return &LoginError{Message: fmt.Sprintf("invalid user name %q (1-25 letters, digits or _, not all digits)", name), Err: ErrNoUserName}
		}
		suggested = name + strconv.Itoa(attempt+1)
		if _, err := c.LookupUser(ctx, name); err == nil {
			continue // taken
		} else if !errors.Is(err, ErrNoSuchUser) && !errors.Is(err, ErrTimeout) {
			return err
		} // a check the server timed out says nothing: the set request decides
		if err := c.send(ctx, New("setinfo", "").AddInt("sesskey", c.sesskey).AddDict("info", Dict{{"UserName", name}})); err != nil {
			return err
		}
		if _, err := c.request(ctx, req{cmd: CmdGet, kind: PersistLookup, body: Dict{{"UserName", name}}}); err != nil && !errors.As(err, new(*PersistError)) {
			return err
		}
		r, err := c.request(ctx, req{cmd: CmdPut, kind: PersistSetUserName, body: Dict{{"UserName", name}}})
		if err != nil {
			if errors.As(err, new(*PersistError)) {
				continue // refused: most likely taken meanwhile
			}
			return err
		}
		if code, err := r.Body.Int("Code"); err != nil || code != 0 {
			continue
		}
		c.mu.Lock()
		c.self.UserName = name
		c.mu.Unlock()
		return nil
	}
	return &LoginError{Message: fmt.Sprintf("no available user name after %d attempts", maxUserNameAttempts), Err: ErrUserNameTaken}
}

// suggestUserName derives a user name from an e-mail address's local part.
func suggestUserName(email string) string {
	local, _, _ := strings.Cut(email, "@")
	var b strings.Builder
	for _, r := range local {
		if b.Len() >= 25 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r == '.' || r == '-' || r == '+':
			b.WriteByte('_')
		}
	}
	s := b.String()
	if !validUserName(s) {
		s = "user_" + s
		if len(s) > 25 {
			s = s[:25]
		}
	}
	return s
}

// validUserName applies Pidgin's rules: 1–25 letters, digits or '_', not
// all digits.
func validUserName(s string) bool {
	if s == "" || len(s) > 25 {
		return false
	}
	digits := true
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
			digits = false
		default:
			return false
		}
	}
	return !digits
}

func checkUID(uid UID) error {
	if !validUID(uid) {
		return errorf("%w %d", ErrInvalidUID, int(uid))
	}
	return nil
}

func (c *Client) bmMessage(typ int, to UID, body string) *Message {
	return NewInt("bm", typ).AddInt("sesskey", c.sesskey).AddInt("t", int(to)).
		AddInt("cv", ClientVersion).Add("msg", body)
}

// sendBM queues a buddy message that carries no IM (a typing notice, a
// zap), encoded straight to bytes.
func (c *Client) sendBM(ctx context.Context, typ int, to UID, body string) error {
	var m *Message
	if c.debug {
		m = c.bmMessage(typ, to, body)
	}
	return c.enqueueEncoded(ctx, outItem{b: appendBM(nil, typ, c.sesskey, to, body)}, "bm", m)
}

// appendBM appends the wire form of the message bmMessage builds.
func appendBM(b []byte, typ, sesskey int, to UID, body string) []byte {
	if b == nil {
		b = make([]byte, 0, 64+len(body)+len(body)/8)
	}
	b = appendBMHead(b, typ, sesskey, to)
	b = appendEscaped(b, body)
	return append(b, `\final\`...)
}

// appendIM appends the IM of plain text to to: the bytes of
// bmMessage(BMIM, to, markup.FromPlain(text)), head being imHead of the
// session's key and the markup written escaped as it is converted.
func appendIM(b []byte, head string, to UID, text string) []byte {
	if b == nil {
		b = make([]byte, 0, 96+len(text)+len(text)/4)
	}
	b = appendIMHead(b, head, to)
	b = markup.AppendFromPlainEscaped(b, text)
	return append(b, `\final\`...)
}

// appendStyledIM appends the IM of spans to to: the bytes of
// bmMessage(BMIM, to, markup.FromSpans(spans)), as appendIM writes them.
func appendStyledIM(b []byte, head string, to UID, spans []markup.Span) []byte {
	b = appendIMHead(b, head, to)
	b = markup.AppendFromSpansEscaped(b, spans)
	return append(b, `\final\`...)
}

// imHead is the start of an IM of the session sesskey, up to the value
// of its t: a session's are all the same, so it is made once, at login.
func imHead(sesskey int) string {
	return `\bm\` + strconv.Itoa(BMIM) + `\sesskey\` + strconv.Itoa(sesskey) + `\t\`
}

// imMid is an IM's bytes from the end of its t value to the start of its
// msg value.
var imMid = `\cv\` + strconv.Itoa(ClientVersion) + `\msg\`

// appendIMHead appends an IM up to its msg value, head being imHead.
func appendIMHead(b []byte, head string, to UID) []byte {
	b = append(b, head...)
	b = strconv.AppendInt(b, int64(to), 10)
	return append(b, imMid...)
}

// appendBMHead appends a buddy message up to its msg value.
func appendBMHead(b []byte, typ, sesskey int, to UID) []byte {
	b = append(b, `\bm\`...)
	b = strconv.AppendInt(b, int64(typ), 10)
	b = append(b, `\sesskey\`...)
	b = strconv.AppendInt(b, int64(sesskey), 10)
	b = append(b, `\t\`...)
	b = strconv.AppendInt(b, int64(to), 10)
	b = append(b, `\cv\`...)
	b = strconv.AppendInt(b, int64(ClientVersion), 10)
	return append(b, `\msg\`...)
}

// setSession records the session lc 2 gave: its key and the user's uid.
func (c *Client) setSession(sesskey int, uid UID) {
	c.sesskey, c.uid = sesskey, uid
	c.imHead = imHead(sesskey)
}

func (c *Client) bm(ctx context.Context, typ int, to UID, body string) error {
	if err := checkUID(to); err != nil {
		return err
	}
	return c.sendBM(ctx, typ, to, body)
}

// SendIM sends plain text as an instant message (bm 1, markup on the wire).
// A message to an offline user is stored by the server. It returns once the
// IM is queued for the socket; if the link goes down before the IM is
// written, it is in the DisconnectedEvent's Unsent (and if it goes down
// shortly after, in its Unconfirmed).
func (c *Client) SendIM(ctx context.Context, to UID, text string) error {
	if err := checkUID(to); err != nil {
		return err
	}
	im := OutgoingIM{To: to, Text: text, Queued: c.cfg.Now()}
	var m *Message
	if c.debug {
		m = c.bmMessage(BMIM, to, markup.FromPlain(text))
	}
	bp := imBufs.Get().(*[]byte)
	return c.enqueueEncoded(ctx, outItem{b: appendIM((*bp)[:0], c.imHead, to, text), im: im, isIM: true, pooled: bp}, "bm", m)
}

// SendStyledIM sends styled text as an instant message, its body
// markup.FromSpans(spans), as SendIM sends plain text. text is the message
// as the caller keeps it (with its own formatting, say): it is not sent,
// only given back as OutgoingIM.Text if the IM is unsent or unconfirmed
// when the link goes down.
func (c *Client) SendStyledIM(ctx context.Context, to UID, text string, spans []markup.Span) error {
	if err := checkUID(to); err != nil {
		return err
	}
	im := OutgoingIM{To: to, Text: text, Queued: c.cfg.Now()}
	var m *Message
	if c.debug {
		m = c.bmMessage(BMIM, to, markup.FromSpans(spans))
	}
	bp := imBufs.Get().(*[]byte)
	return c.enqueueEncoded(ctx, outItem{b: appendStyledIM((*bp)[:0], c.imHead, to, spans), im: im, isIM: true, pooled: bp}, "bm", m)
}

// SendTyping tells to that the user started (true) or stopped typing.
func (c *Client) SendTyping(ctx context.Context, to UID, typing bool) error {
	body := markup.StopTyping
	if typing {
		body = markup.Typing
	}
	return c.bm(ctx, BMAction, to, body)
}

// SendZap sends a zap.
func (c *Client) SendZap(ctx context.Context, to UID, z markup.Zap) error {
	return c.bm(ctx, BMAction, to, z.Payload())
}

// SetStatus sets the user's presence and status text. StatusInvisible
// (and StatusOffline) appear offline to others.
func (c *Client) SetStatus(ctx context.Context, s Status, text string) error {
	return c.sendStatus(ctx, s, text)
}

func (c *Client) sendStatus(ctx context.Context, s Status, text string) error {
	switch s {
	case StatusInvisible:
		s = StatusOffline
	case StatusOffline, StatusOnline, StatusIdle, StatusAway:
	default:
		return errorf("msim: set status: unknown status %d", int(s))
	}
	return c.send(ctx, NewInt("status", int(s)).AddInt("sesskey", c.sesskey).
		Add("statstring", text).Add("locstring", ""))
}

// blocklist sends a \blocklist\ edit (no reply).
func (c *Client) blocklist(ctx context.Context, items ...string) error {
	return c.send(ctx, New("blocklist", "").AddInt("sesskey", c.sesskey).AddList("idlist", List(items)))
}

// AddBuddy adds uid to the contact list in group (DefaultGroup when empty),
// as Pidgin does: addbuddy, persist 514/0/9, blocklist a+ b-. The contact's
// profile is then looked up for its names, and a ContactEvent follows.
func (c *Client) AddBuddy(ctx context.Context, uid UID, group string) error {
	if err := checkUID(uid); err != nil {
		return err
	}
	if err := c.addBuddy(ctx, uid, group, ""); err != nil {
		return errorf("msim: add buddy %v: %w", uid, err)
	}
	return nil
}

// addBuddy runs the add-buddy steps: the subscription (addbuddy, to which
// the server answers with the buddy's presence), the list entry (persist
// 514/0/9, Visibility 1) and the allow list.
func (c *Client) addBuddy(ctx context.Context, uid UID, group, nick string) error {
	if group == "" {
		group = DefaultGroup
	}
	id := uid.String()
	if err := c.send(ctx, New("addbuddy", "").AddInt("sesskey", c.sesskey).AddInt("newprofileid", int(uid)).Add("reason", "")); err != nil {
		return err
	}
	rec := Dict{{"ContactID", id}, {"GroupName", group}, {"Position", "1000"}, {"Visibility", "1"}, {"NickName", nick}, {"NameSelect", "0"}}
	r, err := c.request(ctx, req{cmd: CmdPut | CmdAction, kind: PersistSetContact, body: rec})
	if err != nil {
		return err
	}
	if err := c.blocklist(ctx, "a+", id, "b-", id); err != nil {
		return err
	}
	ct := contactOf(r.Body)
	ct.UID, ct.Group, ct.Blocked = uid, group, false
	if ct.NickName == "" {
		ct.NickName = nick
	}
	if p, err := c.Profile(ctx, uid); err == nil {
		ct.withProfile(p)
	} else if errors.Is(err, ErrDisconnected) {
		return err
	}
	c.mu.Lock()
	delete(c.strangers, uid)
	c.mu.Unlock()
	c.putContact(ct)
	return nil
}

// putContact adds or replaces a contact (keeping known names and presence)
// and reports the change.
func (c *Client) putContact(ct Contact) {
	c.mu.Lock()
	change := ContactAdded
	if pr, ok := c.presence[ct.UID]; ok {
		ct.Status, ct.StatusText = pr.Status, pr.Text
		delete(c.presence, ct.UID) // kept in the entry from now on
	}
	if i := c.contactIndex(ct.UID); i >= 0 {
		change = ContactUpdated
		old := c.contacts[i].contact()
		// The entry holds the presence: a bm 100 may have come while the
		// request was under way (the server answers addbuddy with one).
		ct.Status, ct.StatusText = old.Status, old.StatusText
		if ct.UserName == "" {
			ct.UserName = old.UserName
		}
		if ct.DisplayName == "" {
			ct.DisplayName = old.DisplayName
		}
		if ct.ImageURL == "" {
			ct.ImageURL = old.ImageURL
		}
		c.contacts[i] = entryOf(ct)
	} else {
		c.contacts = append(c.contacts, entryOf(ct))
	}
	c.mu.Unlock()
	c.emit(ContactEvent{Change: change, Contact: ct})
}

// dropContact removes a contact from the table and reports it if present.
func (c *Client) dropContact(uid UID) {
	c.mu.Lock()
	i := c.contactIndex(uid)
	var ct Contact
	if i >= 0 {
		ct = c.contacts[i].contact()
		c.contacts = slices.Delete(c.contacts, i, i+1) // (zeroes the freed slot)
		if ct.Status != StatusOffline {
			c.notePresence(uid, Presence{Status: ct.Status, Text: ct.StatusText})
		}
	}
	c.mu.Unlock()
	if i >= 0 {
		c.emit(ContactEvent{Change: ContactRemoved, Contact: ct})
	}
}

// RemoveBuddy removes uid from the contact list: delbuddy, persist 515/0/8,
// blocklist a- b-.
func (c *Client) RemoveBuddy(ctx context.Context, uid UID) error {
	if err := checkUID(uid); err != nil {
		return err
	}
	id := uid.String()
	if err := c.send(ctx, New("delbuddy", "").AddInt("sesskey", c.sesskey).AddInt("delprofileid", int(uid))); err != nil {
		return err
	}
	if _, err := c.request(ctx, req{cmd: CmdDelete | CmdAction, kind: PersistDeleteContact, body: Dict{{"ContactID", id}}}); err != nil {
		return errorf("msim: remove buddy %v: %w", uid, err)
	}
	if err := c.blocklist(ctx, "a-", id, "b-", id); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.strangers, uid)
	c.mu.Unlock()
	c.dropContact(uid)
	return nil
}

// Block blocks uid: delbuddy, blocklist a- b+, persist 514/0/9 with
// Visibility 2. The entry stays in Contacts with Blocked set.
func (c *Client) Block(ctx context.Context, uid UID) error {
	if err := checkUID(uid); err != nil {
		return err
	}
	id := uid.String()
	if err := c.send(ctx, New("delbuddy", "").AddInt("sesskey", c.sesskey).AddInt("delprofileid", int(uid))); err != nil {
		return err
	}
	if err := c.blocklist(ctx, "a-", id, "b+", id); err != nil {
		return err
	}
	if _, err := c.request(ctx, req{cmd: CmdPut | CmdAction, kind: PersistSetContact, body: Dict{{"ContactID", id}, {"Visibility", "2"}}}); err != nil {
		return errorf("msim: block %v: %w", uid, err)
	}
	c.mu.Lock()
	ct := Contact{UID: uid}
	if i := c.contactIndex(uid); i >= 0 {
		ct = c.contacts[i].contact()
		if !ct.Blocked {
			delete(c.strangers, uid) // a buddy: Allow makes it one again
		}
	} else {
		if c.strangers == nil {
			c.strangers = make(map[UID]struct{})
		}
		c.strangers[uid] = struct{}{}
	}
	c.mu.Unlock()
	ct.Blocked = true
	c.putContact(ct)
	return nil
}

// Allow unblocks uid. A blocked entry of the contact list becomes a buddy
// again, in its group, with presence flowing: Block ended the presence
// subscription, so Allow runs the add-buddy steps (addbuddy, persist 514/0/9
// with Visibility 1, blocklist a+ b-) and a ContactEvent (updated, not
// blocked) follows; the server answers addbuddy with the buddy's presence.
// A uid this session blocked without its being on the list, or with no
// entry at all, is only taken off the block list, as the spec's unblock
// does: persist 515/0/8, blocklist a- b-; its entry, if any, leaves the list.
// Blocked entries loaded at login count as the list's: they stay.
func (c *Client) Allow(ctx context.Context, uid UID) error {
	if err := checkUID(uid); err != nil {
		return err
	}
	id := uid.String()
	c.mu.Lock()
	var ct Contact
	i := c.contactIndex(uid)
	if i >= 0 {
		ct = c.contacts[i].contact()
	}
	_, stranger := c.strangers[uid]
	c.mu.Unlock()
	switch {
	case i >= 0 && !ct.Blocked: // a buddy: only make sure the block list lets them through
		return c.blocklist(ctx, "a+", id, "b-", id)
	case i >= 0 && !stranger:
		if err := c.addBuddy(ctx, uid, ct.Group, ct.NickName); err != nil {
			return errorf("msim: allow %v: %w", uid, err)
		}
		return nil
	}
	if _, err := c.request(ctx, req{cmd: CmdDelete | CmdAction, kind: PersistDeleteContact, body: Dict{{"ContactID", id}}}); err != nil {
		return errorf("msim: allow %v: %w", uid, err)
	}
	if err := c.blocklist(ctx, "a-", id, "b-", id); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.strangers, uid)
	c.mu.Unlock()
	c.dropContact(uid)
	return nil
}

// profileReply turns a profile reply into a Profile, or ErrNoSuchUser when
// the reply has no user (no or zero UserID, an ErrorMessage, an error cmd
// other than a timeout, which says nothing of the user).
func profileReply(r *Persist, err error, what string) (Profile, error) {
	if pe := (*PersistError)(nil); errors.As(err, &pe) && !pe.timedOut() {
		return Profile{}, errorf("msim: %s: %w (%w)", what, ErrNoSuchUser, pe)
	}
	if err != nil {
		return Profile{}, errorf("msim: %s: %w", what, err)
	}
	p := profileOf(r.Body)
	if p.UID <= 0 || r.Body.Str("ErrorMessage") != "" {
		return Profile{}, errorf("msim: %s: %w", what, ErrNoSuchUser)
	}
	return p, nil
}

// LookupUser finds a user by user name, or by e-mail address when
// nameOrEmail contains '@' (persist 5/7).
func (c *Client) LookupUser(ctx context.Context, nameOrEmail string) (Profile, error) {
	key := "UserName"
	if strings.Contains(nameOrEmail, "@") {
		key = "Email"
	}
	r, err := c.request(ctx, req{cmd: CmdGet, kind: PersistLookup, body: Dict{{key, nameOrEmail}}})
	return profileReply(r, err, fmt.Sprintf("lookup %q", nameOrEmail))
}

// Profile fetches uid's MySpace profile (persist 4/3). If uid is a contact
// whose names change, the table is updated and a ContactEvent follows.
func (c *Client) Profile(ctx context.Context, uid UID) (Profile, error) {
	if err := checkUID(uid); err != nil {
		return Profile{}, err
	}
	r, err := c.request(ctx, req{cmd: CmdGet, kind: PersistProfile, body: Dict{{"UserID", uid.String()}}})
	p, err := profileReply(r, err, fmt.Sprintf("profile %v", uid))
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	var ct Contact
	changed := false
	if i := c.contactIndex(uid); i >= 0 {
		ct = c.contacts[i].contact()
		if changed = ct.withProfile(p); changed {
			c.contacts[i] = entryOf(ct)
		}
	}
	c.mu.Unlock()
	if changed {
		c.emit(ContactEvent{Change: ContactUpdated, Contact: ct})
	}
	return p, nil
}

// ContactInfo fetches what the server holds about uid as a contact (persist
// 0/2): ErrNoSuchUser for an unknown user (an error reply other than a
// timeout, which is ErrTimeout), ErrNotContact
// when the reply holds no record. If uid is in the contact table, the table
// is updated with the reply (and a ContactEvent follows a change); a user
// who is not a contact is not added.
func (c *Client) ContactInfo(ctx context.Context, uid UID) (Contact, error) {
	if err := checkUID(uid); err != nil {
		return Contact{}, err
	}
	r, err := c.request(ctx, req{cmd: CmdGet, kind: PersistContactInfo, body: Dict{{"ContactID", uid.String()}}})
	if pe := (*PersistError)(nil); errors.As(err, &pe) && !pe.timedOut() {
		return Contact{}, errorf("msim: contact info %v: %w (%w)", uid, ErrNoSuchUser, pe)
	}
	if err != nil {
		return Contact{}, errorf("msim: contact info %v: %w", uid, err)
	}
	recs := r.Body.Records("ContactID")
	if len(recs) == 0 {
		return Contact{}, errorf("msim: contact info %v: %w", uid, ErrNotContact)
	}
	ct := contactOf(recs[0])
	if ct.UID != uid {
		return Contact{}, errorf("msim: contact info %v: %w (reply is about %v)", uid, ErrNotContact, ct.UID)
	}
	c.mu.Lock()
	if pr, ok := c.presence[uid]; ok {
		ct.Status, ct.StatusText = pr.Status, pr.Text
	}
	changed := false
	if i := c.contactIndex(uid); i >= 0 {
		old := c.contacts[i].contact()
		ct.Status, ct.StatusText = old.Status, old.StatusText // the entry holds the presence
		if ct.UserName == "" {
			ct.UserName = old.UserName
		}
		if ct.DisplayName == "" {
			ct.DisplayName = old.DisplayName
		}
		if ct.ImageURL == "" {
			ct.ImageURL = old.ImageURL
		}
		if changed = old != ct; changed {
			c.contacts[i] = entryOf(ct)
		}
	}
	c.mu.Unlock()
	if changed {
		c.emit(ContactEvent{Change: ContactUpdated, Contact: ct})
	}
	return ct, nil
}

// CheckAlerts polls for new alerts (persist 7/18) and returns the kinds
// present: "Mail", "FriendRequest", "BlogComment"…; none when the body is
// empty. Pidgin polls every AlertPollInterval seconds.
func (c *Client) CheckAlerts(ctx context.Context) ([]string, error) {
	r, err := c.request(ctx, req{cmd: CmdGet, kind: PersistAlerts})
	if err != nil {
		return nil, errorf("msim: check alerts: %w", err)
	}
	return alertsOf(r.Body), nil
}
