package msim

// What the reader goroutine does with each message, the typed events it
// produces, and the client's error types.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/msimircd/msimircd/msim/markup"
)

// Event is something that happened on the session. The set is closed: only
// this package's types implement it.
type Event interface{ isEvent() }

// IMEvent is an instant message (bm 1, or a bm 121 that carries text).
type IMEvent struct {
	From   UID
	Text   string    // plain text (markup.ToPlain)
	Markup string    // the body as received (unescaped)
	Time   time.Time // the date field of an offline message, else the receipt time
	// Offline is set when the message was stored by the server while the
	// user was offline (it carries a date).
	Offline bool
	// Action is set for a bm 121 carrying text, which some clients use for
	// ordinary IMs; treat it as an IM.
	Action bool
}

// PresenceEvent is a presence change of a user (bm 100). Unknown status
// codes are reported as StatusOnline, as the spec asks.
type PresenceEvent struct {
	UID    UID
	Status Status
	Text   string // status text (headline), plain text
}

// TypingEvent reports that a user started or stopped typing.
type TypingEvent struct {
	From   UID
	Typing bool
}

// ZapEvent is a zap ("attention") received.
type ZapEvent struct {
	From UID
	Zap  markup.Zap
	Time time.Time // when it was received
}

// ContactChange says what happened to a contact.
type ContactChange int

// Kinds of ContactEvent.
const (
	ContactAdded ContactChange = iota
	ContactRemoved
	ContactUpdated
)

func (c ContactChange) String() string {
	switch c {
	case ContactAdded:
		return "added"
	case ContactRemoved:
		return "removed"
	case ContactUpdated:
		return "updated"
	}
	return "change " + strconv.Itoa(int(c))
}

// ContactEvent reports a change of the contact list, as made by AddBuddy,
// RemoveBuddy, Block and Allow, or learnt by Profile and ContactInfo.
type ContactEvent struct {
	Change  ContactChange
	Contact Contact
}

// AlertEvent reports new alerts pushed by the server (an unsolicited 7/18
// or 7/10 reply): "Mail", "FriendRequest", "BlogComment"…
type AlertEvent struct {
	Alerts []string
}

// ErrorEvent is an \error\ from the server. A fatal one is followed by the
// DisconnectedEvent. The client also reports so, with Unreadable set (Code
// 0, never fatal), a message from the server that may be an IM and that
// it could not read (no valid sender, an unknown type): Message says so
// and holds the text.
type ErrorEvent struct {
	Code       int
	Message    string
	Fatal      bool
	Unreadable bool // the client's own report, not the server's error
}

// DisconnectedEvent is always the last event. Err says why (a *ServerError
// for a fatal server error or a kick, the net error for a lost link,
// ErrDeadLink, ErrEventOverflow or ErrClosed).
//
// Every IM SendIM accepted (returned nil for) is accounted for: either its
// bytes all reached the socket, or it is in Unsent. MSIM has no delivery
// receipts, so an IM written shortly before the link was lost may still
// have vanished in transit: those are in Unconfirmed. After a Close that
// flushed everything queued before it, both are empty.
type DisconnectedEvent struct {
	Reason DisconnectReason
	Err    error
	// Unsent are the IMs accepted by SendIM whose bytes did not all reach
	// the socket, in SendIM order. They were not delivered; send them again
	// on a new session if they still matter.
	Unsent []OutgoingIM
	// Unconfirmed are the IMs written to the socket within
	// ClientConfig.UnconfirmedWindow before the link was lost (for a
	// timeout, before the last message received), oldest first: they may
	// not have arrived. None is also in Unsent.
	Unconfirmed []OutgoingIM
	// MoreUnconfirmed is set when IMs written within the window are missing
	// from Unconfirmed, because the client keeps only the latest few dozen.
	MoreUnconfirmed bool
	// DroppedIMs counts the IMs and zaps the client received but never
	// queued as events, because the owner had fallen EventBacklog events
	// or EventBacklogBytes bytes behind (the session then ends with
	// DisconnectOverflow), or, with Events, that Close discarded untaken
	// (see Close); the server counts them as delivered. The client's
	// reports of IMs it could not read (ErrorEvent.Unreadable) count too.
	// DroppedFrom names their senders, each once, in the order first
	// dropped. After an overflow, IMs the server had written that the
	// client had not yet read are lost as well, unnamed: with
	// DisconnectOverflow, IMs may be missing even when DroppedIMs is 0.
	DroppedIMs  int
	DroppedFrom []UID
}

// OutgoingIM is an IM given to SendIM, as reported by DisconnectedEvent.
type OutgoingIM struct {
	To      UID
	Text    string    // exactly as given to SendIM or SendStyledIM
	Queued  time.Time // when SendIM accepted it
	Written time.Time // when its last byte was written to the socket; zero if never
}

func (IMEvent) isEvent()           {}
func (PresenceEvent) isEvent()     {}
func (TypingEvent) isEvent()       {}
func (ZapEvent) isEvent()          {}
func (ContactEvent) isEvent()      {}
func (AlertEvent) isEvent()        {}
func (ErrorEvent) isEvent()        {}
func (DisconnectedEvent) isEvent() {}

// Profile is a MySpace profile (persist 4/3, 4/5, 5/7 replies).
type Profile struct {
	UID                   UID
	UserName, DisplayName string // UserName is "" when the account has none
	RealName              string
	ImageURL              string // avatar URL
	BandName, SongName    string // "now playing"
	Headline              string
	Location, Gender      string
	Age, TotalFriends     int
	LastLogin             time.Time // zero when unknown
}

// Contact is an entry of the contact list.
type Contact struct {
	UID                   UID
	UserName, DisplayName string
	Group                 string // GroupName as stored; "" for none (Pidgin shows DefaultGroup)
	NickName              string // local alias
	Headline, ImageURL    string
	Blocked               bool   // Visibility 2: on the block list, not a buddy
	Status                Status // from the latest presence received
	StatusText            string
}

// Group is a contact group (persist 2/6).
type Group struct {
	ID       int
	Name     string
	Position int
}

// userName drops a "user name" that is just the uid (the mark of an account
// without one).
func userName(name string, uid UID) string {
	var digits [20]byte
	if name == string(strconv.AppendInt(digits[:0], int64(uid), 10)) {
		return ""
	}
	return name
}

func profileOf(d Dict) Profile {
	uid, _ := d.Int("UserID")
	p := Profile{
		UID:         UID(uid),
		DisplayName: d.Str("DisplayName"),
		RealName:    d.Str("RealName"),
		ImageURL:    d.Str("ImageURL"),
		BandName:    d.Str("BandName"),
		SongName:    d.Str("SongName"),
		Headline:    d.Str("Headline"),
		Location:    d.Str("Location"),
		Gender:      d.Str("Gender"),
	}
	p.UserName = userName(d.Str("UserName"), p.UID)
	p.Age, _ = d.Int("Age")
	p.TotalFriends, _ = d.Int("TotalFriends")
	if ll, err := d.Int("LastLogin"); err == nil && ll > 0 {
		p.LastLogin = FileTime(int64(ll))
	}
	return p
}

// interned holds one copy of values many contacts share (group names, the
// default avatar URL); it is bounded, and values past the bound are copied.
var interned struct {
	sync.Mutex
	m map[string]string
}

// internUnescaped is intern(Unescape(raw)), without making the unescaped
// copy when that value is interned already.
func internUnescaped(raw string) string {
	var buf [128]byte
	if strings.IndexByte(raw, '/') < 0 || len(raw) > len(buf) {
		return intern(Unescape(raw))
	}
	b := appendUnescaped(buf[:0], raw)
	interned.Lock()
	v, ok := interned.m[string(b)]
	interned.Unlock()
	if ok {
		return v
	}
	return intern(string(b))
}

func intern(s string) string {
	if s == "" || len(s) > 128 {
		return strings.Clone(s)
	}
	interned.Lock()
	defer interned.Unlock()
	if v, ok := interned.m[s]; ok {
		return v
	}
	v := strings.Clone(s)
	if interned.m == nil {
		interned.m = make(map[string]string)
	}
	if len(interned.m) < 4096 {
		interned.m[v] = v
	}
	return v
}

func contactOf(d Dict) Contact {
	c := contactOfShared(d)
	same := c.DisplayName == c.UserName
	c.UserName = strings.Clone(c.UserName)
	if same {
		c.DisplayName = c.UserName // one copy when the names are the same
	} else {
		c.DisplayName = strings.Clone(c.DisplayName)
	}
	return c
}

// contactOfShared is contactOf with the user and display names still
// sharing d's memory (the caller copies them).
func contactOfShared(d Dict) Contact { return contactFrom(d, false) }

// contactFrom is contactOfShared for d's values unescaped, or as on the
// wire (eachRecord's) if wire is set: those are unescaped here, making no
// copy of a value interned already (a group, an image's address) or kept
// whole (a name without escapes).
func contactFrom(d Dict, wire bool) Contact {
	str := func(k string) string { // shares d's memory unless unescaped
		if wire {
			return Unescape(d.Str(k))
		}
		return d.Str(k)
	}
	kept := func(k string) string { // a copy of its own
		if v := d.Str(k); !wire || strings.IndexByte(v, '/') < 0 {
			return strings.Clone(v)
		}
		return Unescape(d.Str(k))
	}
	internOf := func(k string) string {
		if wire {
			return internUnescaped(d.Str(k))
		}
		return intern(d.Str(k))
	}
	id, _ := d.Int("ContactID")
	c := Contact{
		UID:      UID(id),
		Group:    internOf("GroupName"),
		NickName: kept("NickName"),
		Headline: kept("Headline"),
		ImageURL: internOf("ImageURL"),
	}
	c.UserName = userName(str("UserName"), c.UID)
	if dn := str("DisplayName"); dn == c.UserName {
		c.DisplayName = c.UserName
	} else {
		c.DisplayName = dn
	}
	if c.ImageURL == "" {
		// Spelt so by the 2007 server (and msimd); the spec says AvatarURL.
		if c.ImageURL = internOf("AvatarUrl"); c.ImageURL == "" {
			c.ImageURL = internOf("AvatarURL")
		}
	}
	vis, _ := d.Int("Visibility")
	c.Blocked = vis == 2
	return c
}

// withProfile fills a contact's names from a profile, keeping what the
// profile lacks. It reports whether anything changed.
func (c *Contact) withProfile(p Profile) bool {
	old := *c
	if p.UserName != "" {
		c.UserName = p.UserName
	}
	if p.DisplayName != "" {
		c.DisplayName = p.DisplayName
	}
	// What is kept is copied (or interned), not a share of the reply.
	if p.ImageURL != "" {
		c.ImageURL = intern(p.ImageURL)
	}
	if p.Headline != "" && c.Headline == "" {
		c.Headline = strings.Clone(p.Headline)
	}
	return *c != old
}

// Events returns the channel of session events. They arrive in order; the
// last is a DisconnectedEvent, after which the channel is closed. Read it
// until then, or call Close. With ClientConfig.Notify there is no channel:
// Events returns nil (a receive from it blocks forever; a select case on it
// is never chosen), and TakeEvents hands the events over.
func (c *Client) Events() <-chan Event { return c.events }

// keptQueue is the largest queue capacity TakeEvents keeps for reuse (a
// few events at a time, as IMs come); a burst's larger array is let go, so
// an idle session does not keep its login's.
const keptQueue = 16

// TakeEvents appends the events queued since the last call to dst, in the
// order they happened, and returns the extended slice; it takes them off the
// backlog, so EventBacklog and EventBacklogBytes count only events not yet
// taken. It is for clients dialled with ClientConfig.Notify: call it after
// Notify, from any one goroutine. The last event ever returned is the
// DisconnectedEvent; after it TakeEvents returns dst unchanged. Without
// Notify the events go to Events, and TakeEvents returns dst unchanged.
func (c *Client) TakeEvents(dst []Event) []Event {
	if c.cfg.Notify == nil {
		return dst
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	dst = append(dst, c.queue...)
	clear(c.queue) // let go of the events
	c.qbytes = 0
	if cap(c.queue) > keptQueue {
		c.queue = nil
	} else {
		c.queue = c.queue[:0]
	}
	return dst
}

// UndeliveredError is the error of a Dial that failed after the server
// had handed over IMs or zaps: a user's stored offline IMs come before the
// replies the login waits for, and the server keeps them no longer. They
// are the caller's to show or keep, all of them, in order, with the
// client's own ErrorEvents (code 0) among them: each tells of an IM the
// client could not read, which is not to be lost either. A login whose
// events overflowed the backlog (Err wraps ErrEventOverflow) dropped the
// IMs past it: DroppedIMs and DroppedFrom say so, as in
// DisconnectedEvent.
type UndeliveredError struct {
	Err         error
	Events      []Event // IMEvent, ZapEvent and the client's ErrorEvent values, as received
	DroppedIMs  int
	DroppedFrom []UID
}

func (e *UndeliveredError) Error() string {
	n := 0
	for _, ev := range e.Events {
		if SenderOf(ev) != 0 {
			n++
		}
	}
	s := fmt.Sprintf("%v (after %d IMs or zaps", e.Err, n)
	if unread := len(e.Events) - n; unread > 0 {
		s += fmt.Sprintf(", %d unreadable", unread)
	}
	if e.DroppedIMs > 0 {
		s += fmt.Sprintf("; %d more dropped", e.DroppedIMs)
	}
	return s + ")"
}

func (e *UndeliveredError) Unwrap() error { return e.Err }

// Undelivered returns the IMs and zaps a failed Dial had received, and
// its reports of IMs it could not read (see UndeliveredError); nil when
// there were none.
func Undelivered(err error) []Event {
	var ue *UndeliveredError
	if errors.As(err, &ue) {
		return ue.Events
	}
	return nil
}

// drainEvents reads events until the channel is closed (the pump closes
// it once Close has run) and returns them.
func drainEvents(events <-chan Event) []Event {
	var all []Event
	for ev := range events {
		all = append(all, ev)
	}
	return all
}

// onlyIMs keeps the IMs and zaps of evs, and the client's own reports of
// IMs it could not read (ErrorEvent.Unreadable): what a failed login must
// not lose.
func onlyIMs(evs []Event) []Event {
	var ims []Event
	for _, ev := range evs {
		if e, ok := ev.(ErrorEvent); ok && e.Unreadable || SenderOf(ev) != 0 {
			ims = append(ims, ev)
		}
	}
	return ims
}

// emit queues an event for the owner. Past the backlog cap the session
// ends; an IM or zap left out is counted for the DisconnectedEvent.
func (c *Client) emit(ev Event) {
	n := eventBytes(ev)
	c.qmu.Lock()
	queued, over := c.queueLocked(ev, n)
	c.qmu.Unlock()
	c.settle(queued, over)
}

// queueLocked queues ev, of size n (eventBytes), with c.qmu held, unless
// the backlog is full (by count, or by size, with the events not yet
// taken from the Events channel: an event alone always fits) or the final
// event is queued: then it counts an IM or zap left out, and over reports
// that the backlog has overflowed.
func (c *Client) queueLocked(ev Event, n int) (queued, over bool) {
	// Alone: nothing waits for the owner, but perhaps an event on its way
	// from the pump's hand into an empty channel.
	alone := len(c.queue) == 0 && len(c.events) == 0
	if c.qfinal || len(c.queue) >= c.backlog || !alone && c.qbytes+c.unsentBytes()+n > c.cfg.EventBacklogBytes {
		if from, ok := droppedIM(ev); ok {
			c.droppedIMs++ // from 0: an IM, perhaps, from no one it could name
			if from != 0 && !slices.Contains(c.droppedFrom, from) {
				c.droppedFrom = append(c.droppedFrom, from)
			}
		}
		return false, !c.qfinal
	}
	c.queue = append(c.queue, ev)
	c.qbytes += n
	return true, false
}

// eventOverhead is about what an event costs beside its strings: its
// slot in the queue, its boxed value, the allocator's rounding.
const eventOverhead = 128

// eventBytes is a fair estimate of the memory ev keeps while queued: a
// fixed overhead and its strings (once for those that share memory, as an
// IM's text often is its markup's). The strings of events are copies
// where they would otherwise pin a much larger message (see keep).
func eventBytes(ev Event) int {
	n := eventOverhead
	switch ev := ev.(type) {
	case IMEvent:
		n += len(ev.Markup)
		if !within(ev.Text, ev.Markup) {
			n += len(ev.Text)
		}
	case PresenceEvent:
		n += len(ev.Text)
	case ErrorEvent:
		n += len(ev.Message)
	case AlertEvent:
		n += cap(ev.Alerts) * int(unsafe.Sizeof(""))
		for _, a := range ev.Alerts {
			n += len(a)
		}
	case ContactEvent:
		ct := &ev.Contact
		n += len(ct.UserName) + len(ct.DisplayName) + len(ct.Group) + len(ct.NickName) +
			len(ct.Headline) + len(ct.ImageURL) + len(ct.StatusText)
	}
	return n
}

// sizedEvent is an event with its size (eventBytes), worked out once.
type sizedEvent struct {
	ev Event
	n  int
}

// sentSizes are the sizes of the events the pump took from the queue that
// the owner may not have taken from the Events channel yet, oldest first,
// and bytes their sum. The channel hands the events over in the order the
// pump sent them: those the owner has taken are the oldest.
type sentSizes struct {
	sizes []int
	head  int // sizes[head:] are the ones kept
	bytes int
	// hand: the pump has taken the newest from the queue and may not
	// have put it in the channel yet.
	hand bool
}

// trim lets go of the oldest sizes until in are left.
func (s *sentSizes) trim(in int) {
	for len(s.sizes)-s.head > in {
		s.bytes -= s.sizes[s.head]
		s.head++
	}
	if s.head == len(s.sizes) {
		s.sizes, s.head = s.sizes[:0], 0
	}
}

// push adds the size of the event the pump took last.
func (s *sentSizes) push(n int) {
	if len(s.sizes) == cap(s.sizes) && s.head > 0 {
		k := copy(s.sizes, s.sizes[s.head:])
		s.sizes, s.head = s.sizes[:k], 0
	}
	s.sizes = append(s.sizes, n)
	s.bytes += n
}

// unsentBytes is the size of the events the pump took from the queue that
// the owner has not taken yet: those in the Events channel's buffer and
// the one in the pump's hand (counted until the pump is back for the
// next: an event just handed over may be counted a moment too long,
// never one not yet taken too little). c.qmu held; 0 with Notify.
func (c *Client) unsentBytes() int {
	in := len(c.events)
	if c.sent.hand {
		in++
	}
	c.sent.trim(in)
	return c.sent.bytes
}

// within reports whether s's bytes are some of in's.
func within(s, in string) bool {
	if s == "" {
		return true
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	q := uintptr(unsafe.Pointer(unsafe.StringData(in)))
	return p >= q && p+uintptr(len(s)) <= q+uintptr(len(in))
}

// keepSlack is what a message may hold beside twice a value that keep
// keeps in place: its type, session key, sender and the like.
const keepSlack = 256

// keep returns s, a value read from m, for an event that outlives m: s
// itself when m's text is not much more than s, else a copy. A value
// shares the memory of m's whole text (or of the decoder's room for it,
// which holds the text and the value unescaped), so a short one kept in
// place would keep a message of up to ClientMaxSize alive for as long as
// its event waits in the backlog; a text that is most of its message
// costs no copy, and keeps a few times its size at most.
func keep(m *Message, s string) string {
	if pinnedBytes(m) <= 2*len(s)+keepSlack {
		return s
	}
	return strings.Clone(s)
}

// pinnedBytes is what a value of m's keeps alive: the room its values
// were unescaped into (the wire form and the unescaped text side by
// side), or else its wire form.
func pinnedBytes(m *Message) int {
	if m.room != nil {
		return m.room.Len()
	}
	return textBytes(m)
}

// textBytes is the length of m's wire form.
func textBytes(m *Message) int {
	n := 0
	for _, f := range m.fields {
		n += len(f.Key) + len(f.Value) + 2 // and the backslashes
	}
	return n
}

// settle wakes the owner for events queued, and ends the session once
// the backlog has overflowed.
func (c *Client) settle(queued, over bool) {
	if queued {
		c.wake()
	}
	if over {
		c.down(DisconnectOverflow, errorf("%w: %s not taken", ErrEventOverflow, c.backlogCap()))
	}
}

// backlogCap says what the backlog holds at most, for an overflow's error.
func (c *Client) backlogCap() string {
	return fmt.Sprintf("%d events or %d bytes", c.backlog, c.cfg.EventBacklogBytes)
}

// heldEvents is the most events the reader holds before it queues them.
const heldEvents = 16

// hold is emit for the reader handling a buddy message: the event waits
// with the reader until flush, which the reader calls before it could
// wait for more bytes (and before anything else it handles), so that the
// IMs of one read are queued under one lock with one wake. It holds no
// more than the backlog takes: an owner that takes every event it is told
// of never sees the backlog overflow because events waited together.
func (c *Client) hold(ev Event) {
	n := eventBytes(ev)
	if len(c.held) >= min(heldEvents, c.backlog) || len(c.held) > 0 && c.heldBytes+n > c.cfg.EventBacklogBytes {
		c.flush()
	}
	c.held = append(c.held, sizedEvent{ev, n})
	c.heldBytes += n
}

// flush queues the events the reader holds, in order, as emit would.
func (c *Client) flush() { c.settle(c.queueHeld()) }

// queueHeld queues the events the reader holds, in order, and reports
// what queueLocked did with them: that one was queued, that the backlog
// overflowed.
func (c *Client) queueHeld() (queued, over bool) {
	if len(c.held) == 0 {
		return false, false
	}
	c.qmu.Lock()
	for _, h := range c.held {
		q, o := c.queueLocked(h.ev, h.n)
		queued, over = queued || q, over || o
	}
	c.qmu.Unlock()
	clear(c.held)
	c.held, c.heldBytes = c.held[:0], 0
	return queued, over
}

// beforeLogin handles a buddy message that came before lc 2, on the
// handshake's goroutine, as the reader handles those after it: its event
// is queued ahead of the session's. A server may hand over IMs before it
// answers the login, and counts them delivered. Past the backlog the
// login fails with ErrEventOverflow, the IM left out counted (see
// handshakeFailed), rather than through down: no reader runs yet to let
// the writer end the session.
func (c *Client) beforeLogin(m *Message) error {
	c.handle(m)
	queued, over := c.queueHeld()
	c.settle(queued, false)
	if over {
		return errorf("msim: login %s: %w: %s before lc 2", c.cfg.Email, ErrEventOverflow, c.backlogCap())
	}
	return nil
}

// handshakeFailed is the error of a login whose handshake failed with
// err: with the IMs received before it and those dropped past the
// backlog, if any, an UndeliveredError, as for a login failed later.
func (c *Client) handshakeFailed(err error) error {
	c.qmu.Lock()
	ims := onlyIMs(c.queue)
	c.queue, c.qbytes = nil, 0
	dropped, from := c.droppedIMs, c.droppedFrom
	c.qmu.Unlock()
	if len(ims) == 0 && dropped == 0 {
		return err
	}
	return &UndeliveredError{Err: err, Events: ims, DroppedIMs: dropped, DroppedFrom: from}
}

// wake tells the owner (with Notify) or the pump that events are queued.
// It never blocks.
func (c *Client) wake() {
	if c.cfg.Notify != nil {
		c.cfg.Notify()
		return
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// pump moves queued events into the Events channel one at a time. Their
// sizes go from the queue's count to c.sent's: the events in the
// channel's buffer and in the pump's hand still count against
// EventBacklogBytes until the owner takes them.
func (c *Client) pump() {
	defer c.wg.Done()
	defer close(c.events)
	defer c.recover("pump")
	for {
		c.qmu.Lock()
		c.sent.hand = false // the last event taken is in the channel
		var ev Event
		if len(c.queue) > 0 {
			ev, c.queue[0] = c.queue[0], nil
			c.queue = c.queue[1:]
			n := eventBytes(ev)
			c.qbytes -= n
			c.sent.trim(len(c.events)) // before it grows: it stays within the channel's buffer and one
			c.sent.push(n)
			c.sent.hand = true
		}
		c.qmu.Unlock()
		if ev == nil {
			select {
			case <-c.notify:
				continue
			case <-c.closing:
				c.finish(nil)
				return
			}
		}
		select {
		case c.events <- ev:
			if _, last := ev.(DisconnectedEvent); last {
				return
			}
		case <-c.closing:
			c.finish([]Event{ev})
			return
		}
	}
}

// finish runs after Close: it delivers what fits in the channel without
// blocking and makes sure the DisconnectedEvent ends the stream, dropping
// older undelivered events to make room for it. The IMs it drops (and the
// client's reports of IMs it could not read) are counted in the
// DisconnectedEvent, as those past the backlog are.
func (c *Client) finish(rest []Event) {
	c.qmu.Lock()
	rest = append(rest, c.queue...)
	c.queue, c.qbytes = nil, 0
	c.qmu.Unlock()
	if len(rest) == 0 {
		return
	}
	final, _ := rest[len(rest)-1].(DisconnectedEvent)  // always the last
	final.DroppedFrom = slices.Clip(final.DroppedFrom) // appended to below, never in place
	dropped := 0
	defer func() {
		if dropped > 0 {
			c.logger().WithField("dropped", dropped).Warn("msim: IMs received before Close were not taken from Events")
		}
	}()
	drop := func(ev Event) {
		if from, ok := droppedIM(ev); ok {
			dropped++
			final.DroppedIMs++
			if from != 0 && !slices.Contains(final.DroppedFrom, from) {
				final.DroppedFrom = append(final.DroppedFrom, from)
			}
		}
	}
	grace := time.NewTimer(c.cfg.closeGrace)
	defer grace.Stop()
	expired := false
	for _, ev := range rest[:len(rest)-1] {
		if _, im := droppedIM(ev); im && !expired {
			// An IM or zap was received: give a reader that is still
			// draining Events the time to take it rather than drop it.
			select {
			case c.events <- ev:
				continue
			case <-grace.C:
				expired = true
			}
		}
		select {
		case c.events <- ev:
		default:
			drop(ev)
		}
	}
	if !expired {
		// Making room for the last event drops the oldest in the
		// channel, which may be an IM: a draining reader takes it first.
		select {
		case c.events <- final:
			return
		case <-grace.C:
		}
	}
	for {
		select {
		case c.events <- final:
			return
		default:
		}
		select {
		case ev := <-c.events: // make room (the channel has a buffer of at least 1)
			drop(ev)
		default:
		}
	}
}

// droppedIM reports whether ev, left out of the events, is to be counted
// in DroppedIMs: an IM or zap (from names its sender), or the client's
// report of an IM it could not read (from 0).
func droppedIM(ev Event) (from UID, ok bool) {
	if from = SenderOf(ev); from != 0 {
		return from, true
	}
	e, ok := ev.(ErrorEvent)
	return 0, ok && e.Unreadable
}

// SenderOf is the sender of an IM or zap, and 0 for any other event: an
// IM or zap always has a valid (positive) sender.
func SenderOf(ev Event) UID {
	switch ev := ev.(type) {
	case IMEvent:
		return ev.From
	case ZapEvent:
		return ev.From
	}
	return 0
}

// handle dispatches one received message. It runs on the reader goroutine.
func (c *Client) handle(m *Message) {
	if !m.Is("bm") {
		c.flush() // the events of the buddy messages before it come first
	}
	switch m.Type() {
	case "persistr":
		c.onPersist(m)
	case "bm":
		c.onBM(m)
	case "error":
		c.onError(m)
	case "ka":
		// Liveness only: the read deadline was already pushed back.
	default:
		c.logger().WithField("type", m.Type()).Debug("msim: ignoring message")
	}
}

func (c *Client) onPersist(m *Message) {
	p, err := parsePersist(m, false)
	if err != nil {
		c.logger().WithError(err).Warn("msim: bad persist reply")
		return
	}
	c.mu.Lock()
	pd := c.pending[p.RID]
	raw := pd != nil && pd.kind == p.Kind() && pd.raw
	c.mu.Unlock()
	if !raw && !p.IsError() { // (an error's body is parsed already)
		p.Body = persistBody(m)
	}
	mtf, _ := m.Int("mtf") // "more to follow": a reply split in parts
	c.mu.Lock()
	if pd := c.pending[p.RID]; pd != nil && pd.kind == p.Kind() {
		n := heldBytes(m, p)
		if c.replyBytes+n > c.cfg.replyLimit {
			// The rest of this reply, as it comes, is dropped.
			delete(c.pending, p.RID)
			c.release(pd)
			if mtf != 0 {
				if len(c.dropping) >= maxDropping {
					clear(c.dropping) // a server that never ends them: forget the oldest too
				}
				if c.dropping == nil {
					c.dropping = make(map[int]struct{})
				}
				c.dropping[p.RID] = struct{}{}
			}
			c.mu.Unlock()
			c.logger().WithField("kind", p.Kind()).Warnf("msim: the persist replies held passed %d bytes; the request fails", c.cfg.replyLimit)
			pd.ch <- &Persist{Cmd: p.Cmd, DSN: p.DSN, LID: p.LID, UID: p.UID, RID: p.RID, overBound: true}
			return
		}
		pd.size += n // until the request lets the reply go (forget)
		c.replyBytes += n
		pd.failed = pd.failed || p.IsError()
		switch {
		case pd.raw && !p.IsError():
			if b, ok := m.Raw("body"); ok {
				pd.parts = append(pd.parts, b)
			}
		case mtf != 0 || pd.body != nil:
			pd.body = append(pd.body, p.Body...) // a reply in parts
		default:
			pd.body = p.Body // the whole reply in one message: no copy
		}
		if mtf == 0 {
			delete(c.pending, p.RID)
			p.Body, p.parts = pd.body, pd.parts
			if pd.failed {
				p.Cmd |= CmdError
			}
			pd.ch <- p // buffered, and sent to only once
		}
		c.mu.Unlock()
		return
	}
	if _, ok := c.dropping[p.RID]; ok {
		if mtf == 0 {
			delete(c.dropping, p.RID)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if p.IsError() {
		// An error reply to a request given up (the 2007 server timed
		// out alerts polls so): it pushes nothing, and its body's keys
		// (ErrorMessage) are no alerts.
		c.logger().WithFields(map[string]any{"kind": p.Kind(), "rid": p.RID}).
			WithField("error", p.ErrorMessage()).Debug("msim: error reply to no pending request")
		return
	}
	switch p.Kind() {
	case PersistAlerts, PersistAlertsAlt:
		if a := alertsOf(p.Body); len(a) > 0 {
			c.emit(AlertEvent{Alerts: a})
		}
	default:
		c.logger().WithField("kind", p.Kind()).Debug("msim: unsolicited persist reply")
	}
}

// pairBytes is what an item of a Dict costs beside its text.
const pairBytes = int(unsafe.Sizeof(Pair{}))

// heldBytes is about the memory a persist reply m, parsed as p, holds
// once kept for its request: its body's text, which the items' keys and
// values share, and the array of p.Body's items (sized by the body's
// separators, which may be more than its items).
func heldBytes(m *Message, p *Persist) int {
	b, _ := m.Raw("body")
	return len(b) + cap(p.Body)*pairBytes
}

// alertsOf lists the alert keys of a 7/18 reply that are switched on,
// copied: d's keys share the memory of the whole reply, which may be far
// larger than they are, and the event outlives it.
func alertsOf(d Dict) []string {
	var out []string
	n := 0
	for _, p := range d {
		if p.Key == "" || p.Key[0] < 'A' || p.Key[0] > 'Z' {
			continue // the server's occasional junk key
		}
		if (Dict{p}).Bool(p.Key, true) {
			out = append(out, p.Key)
			n += len(p.Key)
		}
	}
	var b strings.Builder // one copy for all of them
	b.Grow(n)
	for _, k := range out {
		b.WriteString(k)
	}
	all := b.String()
	for i, k := range out {
		out[i], all = all[:len(k)], all[len(k):]
	}
	return out
}

func (c *Client) onBM(m *Message) {
	typ, err1 := m.TypeInt()
	from, err2 := m.Int("f")
	if err1 != nil || err2 != nil || !validUID(UID(from)) {
		c.logBadBM(m, errors.Join(err1, err2))
		switch {
		case err1 != nil || !knownBM(typ): // it may be an IM
			c.unknownBM(m)
		case typ == BMIM || typ == BMAction:
			c.unreadableIM(m, typ)
		}
		// A presence (bm 100) or another known type from no valid
		// sender carries no IM: the log says enough.
		return
	}
	uid := UID(from)
	body := m.StrOr("msg", "")
	switch typ {
	case BMIM, BMAction:
		switch markup.Classify(body) {
		case markup.KindTyping:
			c.hold(TypingEvent{From: uid, Typing: true})
		case markup.KindStopTyping:
			c.hold(TypingEvent{From: uid, Typing: false})
		case markup.KindZap:
			z, _ := markup.ParseZap(body)
			c.hold(ZapEvent{From: uid, Zap: z, Time: c.receivedAt()})
		default:
			if typ == BMAction && (body == "" || isChatControl(body) || strings.HasPrefix(body, "!!!") && inChat(m)) {
				c.logger().WithField("from", uid).Debug("msim: ignoring group-chat control message")
				return
			}
			body = keep(m, body) // before ToPlain: the text may be a part of it
			ev := IMEvent{From: uid, Text: markup.ToPlain(body), Markup: body, Time: c.receivedAt(), Action: typ == BMAction}
			// A live IM has no date: look before parsing, which would
			// build a missing-field error for every one.
			if _, dated := m.Raw("date"); dated {
				if d, err := m.Int("date"); err == nil && d > 0 {
					ev.Offline = true
					// Stored before it came: a later date (a server's
					// clock gone wrong, or a value past the year 9999)
					// is not when it was sent, and reads as the receipt.
					if int64(d) <= ev.Time.Unix() {
						ev.Time = time.Unix(int64(d), 0)
					}
				}
			}
			c.hold(ev)
		}
	case BMStatus:
		raw, _ := m.Raw("msg")
		st, text, err := parseStatus(raw)
		if err != nil {
			c.logger().WithError(err).Warn("msim: bad presence")
			return
		}
		switch st {
		case StatusOffline, StatusOnline, StatusIdle, StatusAway:
		default:
			st = StatusOnline
		}
		c.mu.Lock()
		// Kept small: no extra items, and text that does not pin the message.
		pr := Presence{Status: st, Text: strings.Clone(text)}
		if !c.listed {
			c.noteEarly(uid, pr.Status, pr.Text)
		} else if i := c.contactIndex(uid); i >= 0 {
			// A contact's presence lives in its entry only.
			c.contacts[i].setPresence(pr.Status, pr.Text)
			delete(c.presence, uid)
		} else {
			c.notePresence(uid, pr)
		}
		c.mu.Unlock()
		c.hold(PresenceEvent{UID: uid, Status: pr.Status, Text: pr.Text})
	case BMAddNotify, BMMedia, BMProfile, BMStatusMood, BMClientInfo:
		// No useful payload.
		c.logger().WithFields(map[string]any{"bm": typ, "from": uid}).Debug("msim: ignoring buddy message")
	default:
		c.logger().WithFields(map[string]any{"bm": typ, "from": uid, "msg_bytes": len(body)}).Debug("msim: buddy message of an unknown type")
		c.unknownBM(m)
	}
}

// knownBM reports whether typ is a buddy message type the client reads.
func knownBM(typ int) bool {
	switch typ {
	case BMIM, BMAction, BMStatus, BMAddNotify, BMMedia, BMProfile, BMStatusMood, BMClientInfo:
		return true
	}
	return false
}

// unknownBM tells the owner of a buddy message of a type the client does
// not know, or cannot read (Pidgin's atoi reads one without digits as 0),
// that carries text: it may be an IM, and must not vanish. A typing
// notice or a chat control is no IM and is not reported.
func (c *Client) unknownBM(m *Message) {
	body, ok := reportedText(m, func(body string) bool { return body == "" || isChatControl(body) })
	if !ok {
		return
	}
	typ, _ := m.Raw(m.Type())
	from := "no sender"
	if f, ok := m.Raw("f"); ok {
		from = fmt.Sprintf("sender %q", cut(Unescape(f)))
	}
	c.hold(ErrorEvent{Unreadable: true, Message: fmt.Sprintf("a message of unknown type %q arrived that may be an IM (%s): %s", cut(Unescape(typ)), from, body)})
}

// logBadBM logs a buddy message that does not read (err, if any, says
// which field) as an operator may see it: its type and sender as they
// came, cut, and the size of its text, never the text (an IM, which its
// users did not write for the log).
func (c *Client) logBadBM(m *Message, err error) {
	raw := func(k string) string {
		v, ok := m.Raw(k)
		if !ok {
			return "(none)"
		}
		return cut(v)
	}
	body, _ := m.Raw("msg")
	log := c.logger().WithFields(map[string]any{"bm": raw(m.Type()), "f": raw("f"), "msg_bytes": len(body)})
	if err != nil {
		log = log.WithError(err)
	}
	log.Warn("msim: bad bm message")
}

// reportedText is the text of m, a message that may be an IM and that the
// client could not read, as its report says it: plain, "(a zap)" for a
// zap; ok is false for one that is no IM (a typing notice, or a body
// noIM says is none).
func reportedText(m *Message, noIM func(body string) bool) (text string, ok bool) {
	body := m.StrOr("msg", "")
	switch markup.Classify(body) {
	case markup.KindTyping, markup.KindStopTyping:
		return "", false
	case markup.KindZap:
		return "(a zap)", true
	}
	if noIM(body) {
		return "", false
	}
	return markup.ToPlain(body), true
}

// cut shortens a field's wire value for a log, as FieldError does.
func cut(v string) string {
	if len(v) > 40 {
		return strings.ToValidUTF8(v[:40], "") + "…"
	}
	return v
}

// unreadableIM tells the owner of an IM (bm 1 or 121) whose sender could
// not be read: it cannot be delivered as from anyone, and must not vanish
// either. A typing notice or a chat control is no IM and is not reported.
func (c *Client) unreadableIM(m *Message, typ int) {
	body, ok := reportedText(m, func(body string) bool {
		return typ == BMAction && (body == "" || isChatControl(body) || strings.HasPrefix(body, "!!!") && inChat(m))
	})
	if !ok {
		return
	}
	why := "it names no sender"
	if f, ok := m.Raw("f"); ok {
		why = fmt.Sprintf("its sender %q is no user ID", cut(Unescape(f)))
	}
	c.hold(ErrorEvent{Unreadable: true, Message: fmt.Sprintf("an IM arrived that could not be read (%s): %s", why, body)})
}

// chatControls start the bm 121 bodies that are no text (spec §8): the
// group-chat controls, and a zap ParseZap could not read.
var chatControls = [...]string{"!!!GroupCount=", "!!!Offline=", "!!!ExitChat", "!!!ZAP_SEND!!!"}

// isChatControl reports whether a bm 121 body is one of chatControls. Any
// other text is an IM (spec §4.2), even one that starts with "!!!".
// inChat reports whether a buddy message names a group chat (gid, aid):
// a bm 121 body of such a one starting "!!!" is a chat control, whether
// or not the spec names it.
func inChat(m *Message) bool { return m.Has("gid") || m.Has("aid") }

func isChatControl(body string) bool {
	for _, p := range chatControls {
		if strings.HasPrefix(body, p) {
			return true
		}
	}
	return false
}

func (c *Client) onError(m *Message) {
	code, _ := m.Int("err")
	e := &ServerError{Code: code, Message: keep(m, m.StrOr("errmsg", "")), Fatal: m.Has("fatal")}
	c.emit(ErrorEvent{Code: e.Code, Message: e.Message, Fatal: e.Fatal})
	if !e.Fatal {
		c.logger().WithError(e).Warn("msim: server reported an error")
		return
	}
	reason := DisconnectServerError
	if code == ErrCodeElsewhere {
		reason = DisconnectKicked
	}
	c.down(reason, e)
}

// DisconnectReason says why a session ended.
type DisconnectReason int

// Reasons for a DisconnectedEvent.
const (
	DisconnectNetwork     DisconnectReason = iota // connection lost or closed by the server
	DisconnectKicked                              // err 6: the account logged in elsewhere; do not reconnect automatically
	DisconnectServerError                         // a fatal \error\ or a protocol violation by the server
	DisconnectTimeout                             // nothing received for DeadAfter
	DisconnectClosed                              // Close was called
	DisconnectOverflow                            // the Events consumer fell EventBacklog events (or EventBacklogBytes) behind
)

func (r DisconnectReason) String() string {
	switch r {
	case DisconnectNetwork:
		return "network"
	case DisconnectKicked:
		return "kicked"
	case DisconnectServerError:
		return "server error"
	case DisconnectTimeout:
		return "timeout"
	case DisconnectClosed:
		return "closed"
	case DisconnectOverflow:
		return "event overflow"
	}
	return "reason " + strconv.Itoa(int(r))
}

// Client errors. Login failures are *LoginError, fatal server errors after
// login *ServerError, failed persist replies *PersistError; all wrap one of
// these where it applies, so test with errors.Is.
var (
	ErrBadPassword       = errors.New("msim: incorrect password")
	ErrUnknownAccount    = errors.New("msim: unknown account")
	ErrNoUserName        = errors.New("msim: the account has no user name")
	ErrUserNameTaken     = errors.New("msim: user name not available")
	ErrLoggedInElsewhere = errors.New("msim: logged in from another location")
	ErrServer            = errors.New("msim: server error")
	ErrNoSuchUser        = errors.New("msim: no such user")
	// ErrRepliesTooLarge: the request's reply would have passed what the
	// client holds of replies at once (maxReplyBytes); it was dropped.
	ErrRepliesTooLarge = errors.New("msim: the server's replies passed what the client holds")
	ErrNotContact      = errors.New("msim: not in the contact list")
	ErrTimeout         = errors.New("msim: request timed out")
	ErrDisconnected    = errors.New("msim: disconnected")
	ErrClosed          = errors.New("msim: client closed")
	ErrDeadLink        = errors.New("msim: connection silent")
	ErrEventOverflow   = errors.New("msim: event backlog overflow")
	ErrInvalidUID      = errors.New("msim: invalid uid") // not positive, or past 31 bits
)

// sentinelFor maps an \error\ code to its sentinel.
func sentinelFor(code int) error {
	switch code {
	case ErrCodeBadPassword:
		return ErrBadPassword
	case ErrCodeUnknownAccount:
		return ErrUnknownAccount
	case ErrCodeElsewhere:
		return ErrLoggedInElsewhere
	}
	return ErrServer
}

// LoginError is a login the server (or the user-name flow) refused.
type LoginError struct {
	Code    int    // the server's err code; 0 when the client gave up
	Message string // the server's errmsg, for a person
	Err     error  // ErrBadPassword, ErrUnknownAccount, ErrNoUserName, ErrLoggedInElsewhere, ErrServer…
}

// Error reads "msim: login failed: " and Reason.
func (e *LoginError) Error() string {
	if r := e.Reason(); r != "" {
		return "msim: login failed: " + r
	}
	return "msim: login failed"
}

// Reason says why, for a person: "<what> (err <code>): <server's text>",
// without the package prefix and without a final full stop, e.g.
// "incorrect password (err 260): The password provided is incorrect".
func (e *LoginError) Reason() string {
	var parts []string
	if e.Err != nil {
		parts = append(parts, bare(e.Err.Error()))
	}
	if e.Code != 0 {
		parts = append(parts, "(err "+strconv.Itoa(e.Code)+")")
	}
	s := strings.Join(parts, " ")
	if m := serverText(bare(e.Message)); m != "" {
		if s != "" {
			s += ": "
		}
		s += m
	}
	return s
}

func (e *LoginError) Unwrap() error { return e.Err }

func loginErrorOf(m *Message) *LoginError {
	code, _ := m.Int("err")
	return &LoginError{Code: code, Message: m.StrOr("errmsg", ""), Err: sentinelFor(code)}
}

// ServerError is an \error\ received after login. Fatal ones end the session
// and are the Err of its DisconnectedEvent.
type ServerError struct {
	Code    int
	Message string
	Fatal   bool
}

func (e *ServerError) Error() string {
	s := "msim: server error " + strconv.Itoa(e.Code)
	if m := serverText(e.Message); m != "" {
		s += ": " + m
	}
	return s
}

func (e *ServerError) Unwrap() error { return sentinelFor(e.Code) }

// PersistError is a persist reply with the error bit set.
type PersistError struct {
	Cmd, DSN, LID int
	Message       string // the reply's ErrorMessage
}

// timedOut reports whether the reply says the server gave the request up
// rather than refused it: the 2007 server answered so ("Request timeout",
// "Request time elapsed configured has passed.") requests about users
// that exist.
func (e *PersistError) timedOut() bool {
	const prefix = "request time"
	m := strings.TrimSpace(e.Message)
	return len(m) >= len(prefix) && strings.EqualFold(m[:len(prefix)], prefix)
}

// Unwrap is ErrTimeout for a reply that says the server timed the request
// out (see timedOut), and nil for any other.
func (e *PersistError) Unwrap() error {
	if e.timedOut() {
		return ErrTimeout
	}
	return nil
}

func (e *PersistError) Error() string {
	s := fmt.Sprintf("msim: persist %d/%d/%d failed", e.Cmd&^CmdError, e.DSN, e.LID)
	if m := serverText(e.Message); m != "" {
		s += ": " + m
	}
	return s
}

// onceError is an error whose text has the "msim: " prefix once, however
// many msim errors it wraps (see errorf).
type onceError struct {
	text string
	err  error
}

func (e *onceError) Error() string { return e.text }
func (e *onceError) Unwrap() error { return e.err }

// errorf is fmt.Errorf for the client's errors: the text starts with the
// "msim: " prefix at most once, where wrapped msim errors would repeat it.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &onceError{text: once(err.Error()), err: err}
}

// once removes the "msim: " prefixes that wrapping put after the first:
// those that follow ": " or "(".
func once(s string) string {
	if !strings.Contains(s[min(len(s), 1):], "msim: ") {
		return s
	}
	s = strings.ReplaceAll(s, ": msim: ", ": ")
	return strings.ReplaceAll(s, "(msim: ", "(")
}

// bare drops the "msim: " prefix from a text about to be put inside another
// msim error, so that the prefix is written once.
func bare(s string) string { return strings.TrimPrefix(s, "msim: ") }

// serverText readies a server's message for the end of an error text:
// trimmed, and without a final full stop (an ellipsis is kept), since error
// texts end without punctuation and callers may add their own.
func serverText(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "..") {
		s = strings.TrimSpace(s[:len(s)-1])
	}
	return s
}
