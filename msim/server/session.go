package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/deadline"
	"github.com/msimircd/msimircd/msim"
)

// maxBadInput is how many undecodable messages in a row a connection may
// send before it is closed.
const maxBadInput = 5

// ErrCodeNotStored is the (non-fatal) error a sender gets when an IM for an
// offline user could not be stored. The protocol has no code for this; this
// one is msimircd's, and clients show the errmsg.
const ErrCodeNotStored = 4353

// Error texts of \error\ replies.
const (
	textParse       = "There was an error parsing an incoming request."
	textNotLoggedIn = "This request cannot be processed because you are not logged in."
	textBadSession  = "The session key of this request is invalid."
	textElsewhere   = "You have been logged out because you logged in from another location."
	textTooLarge    = "The request is too large."
	textNoSuchUser  = "No such user: "
	textOfflineFull = "Message not stored: the offline mailbox is full for user "
	textNotStored   = "Message not delivered or stored (server error) for user "
)

// session is one client connection. See the package comment for which
// goroutine owns what.
type session struct {
	srv     *Server
	nc      net.Conn
	id      uint64
	log     atomic.Pointer[logrus.Entry]
	release func() // frees the connection's slot under the caps; set before the goroutines start

	// Set by the reader before the session is registered, then constant.
	uid msim.UID
	key int
	// Routing state, guarded by srv.reg.mu.
	rt route

	// In a cluster: the session's version (set by claim, then constant),
	// the sequence number of its last published state (srv.reg.mu), the
	// state of the session it replaced on another node (reader only,
	// before registration), and whether it holds the bus's claim on uid.
	ver     Version
	seq     uint64
	inherit *PeerState
	claimed atomic.Bool

	// Reader goroutine only.
	from     encodedFrom // fromField's
	nonce    []byte
	loggedIn bool
	nick     string // uniquenick: user name, or the uid when none is set
	badInput int
	in       *inflow // the account's flood control (throttle), from the login on
	slowed   bool    // flood control has made the reader wait: logged once
	// listed is the contact list as the login read it, kept for the
	// client's first request of its list (every client asks for it right
	// after the login) so that it is not read twice; nil once used, or
	// once the session has changed the list (forgetListed); haveListed
	// says it holds one (an empty list is nil).
	listed     []Contact
	haveListed bool

	// Outgoing queue: encoded messages, shared read-only between sessions,
	// each with its sender when it is a bm (queued).
	qmu        sync.Mutex
	q, spare   []queued
	burst      int  // burst messages in q, allowed beyond SendQ
	urgent     bool // q holds a message that goes out now, not only presence
	lazy       bool // q holds presence the writer has been woken for
	closing    bool // no more messages are accepted
	flushClose bool // the writer closes the socket once q is written
	// rescue: once the session is closed at once (closeNow), its writer
	// stores the IMs it did not write for the next login (storeUnwritten);
	// IMs refused meanwhile are stored after those (rescueWait).
	rescue     rescueState
	refused    []refusedIM // the writer's only: the IMs rescueIMs could not store
	wake       chan struct{}
	done       chan struct{}
	writerDone chan struct{} // closed once the writer has stored what it had to
	closeOnce  sync.Once
}

// encodedFrom is uid as the f field of a relayed bm (fromField).
type encodedFrom struct {
	uid   msim.UID
	field string
}

// queued is a message in a session's queue. from is a bm's sender, known
// where it is queued (registry.deliver, a mailbox handed over), so that
// an IM the session did not write is stored from its sender, or refused
// to them, whatever its bytes say (rescueIMs); 0 for other messages. The
// recipient is the session's own uid.
type queued struct {
	b    []byte
	from msim.UID
}

type rescueState uint8

const (
	rescueNone    rescueState = iota
	rescuePending             // the writer will store the IMs it did not write
	rescueDone                // it has
)

// refusedIM is an IM a closed session's writer could not store
// (rescueIMs): its sender is told (tellRefused).
type refusedIM struct {
	from      msim.UID
	err       error          // why, from AddOffline, or errMalformedIM
	om        OfflineMessage // the IM, stored after all if its sender cannot be told
	malformed bool           // it did not parse (rescuedIM): counted apart
}

// rescueWait returns a channel closed once the writer has stored the IMs
// it did not write, if it has yet to: an IM the session refused is stored
// after those. nil if there is nothing to wait for.
func (s *session) rescueWait() <-chan struct{} {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.rescue == rescuePending {
		return s.writerDone
	}
	return nil
}

func newSession(srv *Server, nc net.Conn, id uint64) *session {
	s := &session{
		srv:        srv,
		nc:         nc,
		id:         id,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	s.log.Store(srv.log.WithFields(logrus.Fields{"conn": id, "remote": nc.RemoteAddr().String()}))
	return s
}

func (s *session) logger() *logrus.Entry { return s.log.Load() }

// newSessionKey returns a random non-zero 31-bit session key.
func newSessionKey() int {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		if k := int(binary.BigEndian.Uint32(b[:]) & 0x7fffffff); k != 0 {
			return k
		}
	}
}

// send queues m for the client.
func (s *session) send(m *msim.Message) bool { return s.sendLimit(m, 0) }

// sendBurst queues m as part of a burst (enqueueBurst).
func (s *session) sendBurst(m *msim.Message) bool { return s.sendLimit(m, 1) }

func (s *session) sendLimit(m *msim.Message, burst int) bool {
	if l := s.logger(); l.Logger.IsLevelEnabled(logrus.DebugLevel) {
		l.WithField("msg", m.String()).Debug("send")
	}
	s.srv.metrics.sent(m)
	return s.queue(queued{b: msim.Encode(m)}, burst, false)
}

// sendPersist queues the persistr reply r, its body written straight into
// the message (send would build it as a string first). A persistr is
// never an \error\, the only kind the sent-message metrics count.
func (s *session) sendPersist(r *msim.Persist) bool {
	if s.logger().Logger.IsLevelEnabled(logrus.DebugLevel) {
		return s.send(r.Reply())
	}
	return s.enqueue(r.AppendReply(make([]byte, 0, r.ReplySize())))
}

// enqueue queues an encoded message without blocking. A full queue means the
// client cannot keep up: the session is closed, other sessions never wait.
func (s *session) enqueue(b []byte) bool { return s.queue(queued{b: b}, 0, false) }

// enqueueBM queues a bm from `from` (enqueue), kept with its sender.
func (s *session) enqueueBM(b []byte, from msim.UID) bool {
	return s.queue(queued{b: b, from: from}, 0, false)
}

// enqueuePresence queues a contact's presence change (a watcher's share of
// its fan-out). It may wait up to Config.PresenceDelay for more to share
// its write (in a burst of logins a watcher gets its contacts' presences
// one by one, each a write of the server's and a read of the client's
// otherwise), unless presenceBatch are waiting or anything else is
// queued: that takes them along, in order.
func (s *session) enqueuePresence(b []byte) bool {
	return s.queue(queued{b: b}, 0, s.srv.cfg.PresenceDelay > 0)
}

// defaultPresenceDelay is Config.PresenceDelay's default: short beside
// the time a person takes to notice a status change. presenceBatch is
// how many presence changes wait at most (see Config.presenceBatch).
const (
	defaultPresenceDelay = 50 * time.Millisecond
	presenceBatch        = 64
)

// enqueueBurst queues part of the login burst (presences of up to
// MaxContacts contacts, up to maxOffline stored IMs), the stored IMs
// Mailbox hands a session, or the errors for a sender's IMs that a closed
// session's writer refused (tellRefused, at most that session's queue):
// bounded by those limits rather than by SendQ, so a long mailbox cannot
// make every login overflow, nor one closed session its senders'.
func (s *session) enqueueBurst(b []byte) bool { return s.queue(queued{b: b}, 1, false) }

// enqueueStored queues a stored IM handed over (enqueueBurst), kept with
// its sender.
func (s *session) enqueueStored(om OfflineMessage) bool {
	return s.queue(queued{b: msim.Encode(offlineIM(om)), from: om.From}, 1, false)
}

// queue queues b; burst > 0 marks it as part of a burst (enqueueBurst),
// which raises the session's limit by one until the writer takes the
// queue: then it is the writer's, and what waits behind its write is
// bounded by SendQ again (a limit raised for good would grow with every
// mailbox a long session is handed). lazy: it is presence, which may wait
// for more (enqueuePresence).
//
// A full queue closes the session at once: b is refused, and the writer
// stores the IMs it did not write for the next login (storeUnwritten). No
// store is called here, where the caller may hold the routing table's
// lock; a sender's route that is refused waits for that store
// (rescueWait) before it stores its IM, so the IMs stay in order.
func (s *session) queue(b queued, burst int, lazy bool) bool {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return false
	}
	s.burst += burst
	if len(s.q) >= s.srv.cfg.SendQ+s.burst {
		// Closed from here: nothing more is queued, and a sender refused
		// waits for the rescue (closeNow only closes the socket now).
		s.closing, s.rescue = true, rescuePending
		s.qmu.Unlock()
		s.logger().Warn("send queue exceeded; closing the session")
		s.closeNow()
		return false
	}
	s.q = append(s.q, b)
	wake := true
	switch {
	case s.urgent:
		// The writer has been woken since it last took the queue, and
		// takes this along: another wake would only have it wake again
		// to an empty queue once it has written.
		wake = false
	case !lazy || len(s.q) >= s.srv.cfg.presenceBatch():
		s.urgent = true
	case s.lazy:
		wake = false // the writer is waiting for more already
	default:
		s.lazy = true
	}
	s.qmu.Unlock()
	if wake {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// closeAfterFlush stops accepting messages; the writer closes the socket
// once everything queued so far is written.
func (s *session) closeAfterFlush() {
	s.qmu.Lock()
	s.closing, s.flushClose = true, true
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// fatal queues a fatal error and closes the session after it.
func (s *session) fatal(code int, text string) {
	s.send(msim.ErrorMessage(code, true, text))
	s.closeAfterFlush()
}

// closeNow closes the socket at once; the writer stores the IMs it did not
// write (storeUnwritten). Idempotent.
func (s *session) closeNow() {
	s.closeOnce.Do(func() {
		s.qmu.Lock()
		s.closing = true
		if s.rescue == rescueNone {
			s.rescue = rescuePending
		}
		s.qmu.Unlock()
		close(s.done)
		if s.release != nil {
			s.release() // before the close, so a peer that sees it may connect again
		}
		s.nc.Close()
	})
}

func (s *session) recoverAndLog() {
	if r := recover(); r != nil {
		s.logger().WithField("panic", r).Errorf("session goroutine panicked; closing it\n%s", debug.Stack())
		s.closeNow()
	}
}

// keepaliveWire is the keepalive message, shared by every session.
var keepaliveWire = []queued{{b: msim.Encode(msim.New("ka", ""))}}

// writeLoop is the only writer of the socket.
func (s *session) writeLoop() {
	defer s.srv.wg.Done()
	var w writer
	// Once nobody waits for the writer any more.
	defer s.tellRefused()
	defer close(s.writerDone) // even after a panic
	defer s.recoverAndLog()
	defer s.storeUnwritten(&w)
	// The keepalive timer is not moved by every write: when it fires, it
	// waits out the rest of the interval since the last write instead.
	keepAlive := s.srv.cfg.KeepAlive
	// The keepalive's tick comes on a channel of its own: a timer's
	// channel in the select would be put on and taken off the runtime's
	// timers each time the writer waits.
	kaC := make(chan struct{}, 1)
	ka := time.AfterFunc(keepAlive, func() {
		select {
		case kaC <- struct{}{}:
		default:
		}
	})
	defer ka.Stop()
	// Presence alone waits for more (enqueuePresence): up to
	// PresenceDelay from when the writer first saw it.
	var waited *time.Timer
	var waitC <-chan time.Time
	defer func() {
		if waited != nil {
			waited.Stop()
		}
	}()
	for {
		select {
		case <-s.wake:
			s.qmu.Lock()
			idle := len(s.q) == 0 && !s.flushClose
			presenceOnly := !s.urgent && !s.flushClose && len(s.q) > 0
			s.qmu.Unlock()
			if idle {
				// A wake left from an earlier take: taking now would take
				// a presence change queued meanwhile alone, and those
				// after it would wait anew.
				continue
			}
			if presenceOnly {
				if waitC == nil {
					if waited == nil {
						waited = time.NewTimer(s.srv.cfg.PresenceDelay)
					} else {
						waited.Reset(s.srv.cfg.PresenceDelay)
					}
					waitC = waited.C
				}
				continue
			}
			// In a burst (a login's presence fanned out to many watchers,
			// say) the goroutines that are ready run first: they add to
			// the queue, and one write takes what they added. A message
			// after a pause goes out at once.
			if time.Since(w.last) < burstGap {
				runtime.Gosched()
			}
		case <-waitC:
		case <-kaC:
			if idle := time.Since(w.last); idle < keepAlive {
				ka.Reset(keepAlive - idle)
				continue
			}
			if !s.write(&w, keepaliveWire) {
				return
			}
			ka.Reset(keepAlive)
			continue
		case <-s.done:
			return
		}
		if waitC != nil {
			waited.Stop()
			waitC = nil
		}
		batch, fc := s.take()
		if len(batch) > 0 && !s.write(&w, batch) {
			return
		}
		clear(batch)
		s.spare = batch[:0]
		if fc {
			s.closeNow()
			return
		}
	}
}

// take is the writer's: it takes what is queued, and whether to close
// the socket once that is written. A message queued after it wakes the
// writer again.
func (s *session) take() (batch []queued, flushClose bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	batch, flushClose = s.q, s.flushClose
	s.q, s.spare = s.spare[:0], nil
	s.urgent, s.lazy, s.burst = false, false, 0
	return batch, flushClose
}

// burstGap is how soon after the last write a message counts as part of a
// burst, which the writer gathers before writing.
const burstGap = time.Millisecond

// storeUnwritten runs as the writer ends: it stores the IMs never written,
// w.unsent (a failed write's rest) and then the queue, for the next login
// (rescueIMs), under offlineMu as every offline store. Senders whose IMs
// the session refused meanwhile wait for it (rescueWait).
func (s *session) storeUnwritten(w *writer) {
	s.closeNow()
	defer func() { // even if the store panicked: nobody waits for ever
		s.qmu.Lock()
		s.rescue = rescueDone
		s.qmu.Unlock()
	}()
	s.qmu.Lock()
	left := append(w.unsent, s.q...) // closed: nothing joins q any more
	s.q = nil
	s.qmu.Unlock()
	if !slices.ContainsFunc(left, isStoredIM) {
		return
	}
	stored := func() int {
		s.srv.offlineMu.Lock()
		defer s.srv.offlineMu.Unlock()
		stored, refused := s.rescueIMs(left)
		s.refused = refused
		return stored
	}()
	if stored > 0 && s.srv.reg.session(s.uid) != s {
		// Another session took over meanwhile (a newer login, here or
		// on another node), and may have taken the account's stored IMs
		// before these: it gets them now, not at its next login.
		s.srv.storedFor(s.uid)
	}
}

// writer is the write loop's state between writes.
type writer struct {
	last   time.Time      // when the last write began
	dl     deadline.Write // the socket's write deadline
	bufs   net.Buffers    // scratch: WriteTo consumes its argument
	v      net.Buffers    // what WriteTo consumes
	unsent []queued       // the messages a failed write did not write whole
}

// write writes msgs with one system call where the socket takes them. The
// socket's deadline is moved only once it has gone stale (package
// deadline), so a write may time out a little sooner than writeTimeout.
func (s *session) write(w *writer, msgs []queued) bool {
	now := time.Now()
	w.last = now
	w.dl.Arm(s.nc, now, writeTimeout)
	bufs := w.bufs[:0]
	for _, m := range msgs {
		bufs = append(bufs, m.b)
	}
	w.v = bufs // WriteTo consumes w.v (a field: a local would be allocated for each write); bufs keeps the array
	n, err := w.v.WriteTo(s.nc)
	w.v = nil
	clear(bufs)
	w.bufs = bufs[:0]
	if cap(bufs) > 256 {
		w.bufs = nil // a burst's array is let go
	}
	if err != nil {
		s.logger().WithError(err).Debug("write failed; closing")
		// IMs not written whole go back to the offline store, when the
		// writer ends (rescueIMs).
		for i, m := range msgs {
			if n < int64(len(m.b)) {
				w.unsent = msgs[i:]
				break
			}
			n -= int64(len(m.b))
		}
		s.closeNow()
		return false
	}
	return true
}

// isStoredIM says whether a queued message is an IM that a closed
// session's writer stores for the next login (rescueIMs): one whose bytes
// begin as an IM's, or a bm queued with its sender (queued) that was
// routed as an IM (bmType) whatever else its bytes say, such as another
// node's cut short just after its type.
func isStoredIM(q queued) bool {
	return bytes.HasPrefix(q.b, []byte(`\bm\1\`)) ||
		q.from != 0 && bmType(q.b) == msim.BMIM
}

// rescueIMs stores the IMs among msgs as offline messages again: they were
// meant for this session but never reached its socket, so the recipient
// gets them at the next login rather than never. The offline caps do not
// apply: they refuse an IM for an offline user, whose sender is told, and
// these were taken for delivery (their senders told nothing); what they
// add is bounded by the session's queue. Logins that read nothing would
// each add that much, so the mailbox is bounded by the ceiling
// rescueFactor sets, which counts the IMs a restore holds out of the
// mailbox meanwhile (addOffline): past it, or when the store fails, an IM
// is refused, and its sender is told (tellRefused). One whose sender is
// not logged in here to be told is stored past that ceiling, up to the
// hard one (untoldFactor); past that it is lost, logged and counted
// (lostUntold).
// Its sender is the one it was queued from (queued), else the one its
// bytes name. An IM that does not parse (rescuedIM) is stored with the
// text read from it, or refused when none can be; one with no sender known
// has nobody to tell and is lost: each is logged and counted
// (malformedIM). The writer calls it as it ends, holding offlineMu. It
// returns how many it stored, and those it refused.
func (s *session) rescueIMs(msgs []queued) (stored int, refused []refusedIM) {
	for _, q := range msgs {
		if !isStoredIM(q) {
			continue
		}
		b := q.b
		om, malformed, text := rescuedIM(b, q.from)
		from := om.From
		log := s.logger().WithField("from", from)
		switch {
		case from == 0:
			// Nobody to tell, and nobody to say it came from.
			s.srv.metrics.malformedIM(malformedLost)
			s.srv.metrics.lostIM(lostNoSender)
			s.logger().WithField("bytes", len(b)).Error("an IM for a closed session is lost: it does not parse and names no sender")
			continue
		case !text:
			log.WithField("bytes", len(b)).Warn("an IM for a closed session does not parse and its text cannot be read from it; its sender is told")
			refused = append(refused, refusedIM{from: from, err: errMalformedIM, malformed: true})
			continue
		}
		err := s.srv.addOffline(s.uid, om, s.srv.rescueLimits)
		if errors.Is(err, errOfflineFull) && s.srv.reg.session(from) == nil {
			// Its sender is not logged in here to be told (in a cluster,
			// another node took it for delivery): past the ceiling rather
			// than lost, up to the hard ceiling. Past that it is lost.
			err = s.srv.addOffline(s.uid, om, s.srv.untoldLimits)
			if errors.Is(err, errOfflineFull) {
				s.lostUntold(log, malformed, "an IM the session could not take is lost: its mailbox is past the hard ceiling, and its sender is not logged in here to be told")
				continue
			}
		}
		if err != nil {
			if errors.Is(err, errOfflineFull) {
				log.Info("an IM the session could not take was refused: its mailbox is full even for those; its sender is told")
			} else {
				log.WithError(err).Error("an IM for a closed session could not be stored; its sender is told")
			}
			refused = append(refused, refusedIM{from: from, err: err, om: om, malformed: malformed})
			continue
		}
		s.srv.metrics.storedIMs(1)
		stored++
		if malformed {
			s.srv.metrics.malformedIM(malformedStored)
			log.Warn("an IM the session could not take does not parse; its text was stored for its next login")
			continue
		}
		log.Info("an IM the session could not take was stored for its next login")
	}
	return stored, refused
}

// tellRefused tells the sender of each IM rescueIMs refused with the
// error onBM gives for an IM the offline caps refuse. The errors come at
// once, as a burst (enqueueBurst). An IM whose sender cannot be told (gone
// meanwhile, or their queue full) is stored past the ceiling after all, up
// to the hard one (untoldFactor); one past that, or that the store failed,
// is then lost, logged and counted (lostIM).
func (s *session) tellRefused() {
	defer s.recoverAndLog()
	for _, r := range s.refused {
		if ss := s.srv.reg.session(r.from); ss != nil && ss.sendBurst(notStored(s.uid, r.err)) {
			if r.malformed {
				s.srv.metrics.malformedIM(malformedRefused)
			}
			continue
		}
		log := s.logger().WithField("from", r.from)
		if errors.Is(r.err, errOfflineFull) {
			s.srv.offlineMu.Lock()
			err := s.srv.addOffline(s.uid, r.om, s.srv.untoldLimits)
			s.srv.offlineMu.Unlock()
			if err == nil {
				s.srv.metrics.storedIMs(1)
				if r.malformed {
					s.srv.metrics.malformedIM(malformedStored)
				}
				log.Info("an IM for a closed session was stored past the mailbox's ceiling: its sender could not be told of a refusal")
				continue
			}
			log = log.WithError(err)
		}
		s.lostUntold(log, r.malformed, "an IM for a closed session is lost: it could not be stored (its mailbox past the hard ceiling, or the store failed), and its sender could not be told")
	}
	s.refused = nil
}

// lostUntold counts and logs an IM for a closed session that is lost with
// its sender untold (why says how, never the IM's text).
func (s *session) lostUntold(log *logrus.Entry, malformed bool, why string) {
	if malformed {
		s.srv.metrics.malformedIM(malformedLost)
	}
	s.srv.metrics.lostIM(lostUntold)
	log.Error(why)
}

// readLoop decodes and handles the client's messages until the connection
// ends, then logs the session out.
func (s *session) readLoop() {
	defer s.srv.wg.Done()
	defer s.finish()
	defer s.recoverAndLog()
	cfg := &s.srv.cfg
	_ = s.nc.SetReadDeadline(time.Now().Add(cfg.LoginTimeout))
	if !s.challenge() {
		return
	}
	dec := msim.NewDecoder(bufio.NewReaderSize(s.nc, 4096))
	dec.MaxSize = cfg.MaxMessage
	// One message is decoded into again and again: handle keeps neither
	// it nor its fields (only their values, which each decoding makes
	// anew), and it is done with each before the next is read.
	m := new(msim.Message)
	for {
		err := dec.DecodeInto(m)
		if err != nil {
			if s.decodeError(err) {
				continue
			}
			return
		}
		s.badInput = 0
		if l := s.logger(); l.Logger.IsLevelEnabled(logrus.DebugLevel) {
			l.WithField("msg", m.String()).Debug("recv")
		}
		if !s.throttle(m) || !s.handle(m) {
			return
		}
	}
}

// decodeError answers a decoding failure and reports whether to go on.
func (s *session) decodeError(err error) bool {
	var se *msim.SyntaxError
	switch {
	case errors.Is(err, msim.ErrTooLarge):
		s.logger().Warn("oversized message; closing")
		s.fatal(msim.ErrCodeParse, textTooLarge)
		return false
	case errors.Is(err, io.ErrUnexpectedEOF), !errors.As(err, &se):
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			s.logger().WithError(err).Debug("connection ended")
		}
		return false
	}
	s.badInput++
	if s.badInput >= maxBadInput {
		s.logger().WithError(err).Warn("repeated undecodable input; closing")
		s.fatal(msim.ErrCodeParse, textParse)
		return false
	}
	s.logger().WithError(err).Debug("undecodable input")
	s.send(msim.ErrorMessage(msim.ErrCodeParse, false, textParse))
	return true
}

// finish logs the session out once its reader has stopped.
func (s *session) finish() {
	s.closeAfterFlush()
	// A session closed at once has a writer storing the IMs it did not
	// write: the account goes offline (from when senders' routes store
	// IMs themselves) only after that, so theirs come after those.
	if wait := s.rescueWait(); wait != nil {
		<-wait
	}
	if s.loggedIn {
		s.srv.reg.logout(s)
		s.logger().Info("logged out")
	}
	if s.in != nil {
		s.srv.flood.release(s.uid, s.in, s.srv.now())
	}
	if s.srv.bus != nil {
		s.releaseClaim()
	}
	s.srv.forget(s)
}

// challenge sends \lc\1 with a fresh nonce and the server information.
func (s *session) challenge() bool {
	nonce, err := msim.NewNonce()
	if err != nil {
		s.logger().WithError(err).Error("no randomness for a login challenge")
		return false
	}
	s.nonce = nonce
	s.send(msim.NewInt("lc", 1).AddBase64("nc", nonce).AddInt("id", 1))
	s.send(s.srv.serverInfo())
	return true
}

// serverInfo is the unsolicited persistr 101/20 every connection gets once,
// right after the challenge (clients keep every copy they get).
func (srv *Server) serverInfo() *msim.Message {
	p := &msim.Persist{
		Cmd: msim.CmdGet | msim.CmdReply, DSN: msim.PersistServerInfo.DSN, LID: msim.PersistServerInfo.LID,
		RID: srv.nextRID(),
		Body: msim.Dict{
			{Key: "AdUnitRefreshInterval", Value: "10"},
			{Key: "AlertPollInterval", Value: "180"},
			{Key: "CurClientVersion", Value: "697"},
			{Key: "EnableIMBrowse", Value: "False"},
			{Key: "EnableIMStuffAvatars", Value: "False"},
			{Key: "EnableIMStuffZaps", Value: "True"},
			{Key: "MaxAddAllFriends", Value: "100"},
			{Key: "MaxContacts", Value: "1000"},
			{Key: "MinClientVersion", Value: "529"},
			{Key: "MySpaceNowTimer", Value: "720"},
			{Key: "PersistenceDataTimeout", Value: "900"},
			{Key: "UseWebChallenge", Value: "0"},
		},
	}
	return p.Reply()
}

// handle processes one request and reports whether to keep reading.
func (s *session) handle(m *msim.Message) bool {
	if !s.loggedIn {
		switch m.Type() {
		case "login2":
			return s.login(m)
		case "logout":
			return false
		}
		s.send(msim.ErrorMessage(msim.ErrCodeNotLoggedIn, false, textNotLoggedIn))
		return true
	}
	if k, err := m.Int("sesskey"); err != nil || k != s.key {
		s.send(msim.ErrorMessage(msim.ErrCodeBadSession, false, textBadSession))
		return true
	}
	switch m.Type() {
	case "bm":
		s.onBM(m)
	case "status":
		s.onStatus(m)
	case "persist":
		s.onPersist(m)
	case "addbuddy":
		s.onAddBuddy(m)
	case "delbuddy":
		s.onDelBuddy(m)
	case "blocklist":
		s.onBlockList(m)
	case "setinfo":
		s.onSetInfo(m)
	case "webchlg":
		s.onWebChallenge()
	case "getinfo":
		// Purpose unknown (spec §8); no client waits for an answer.
	case "logout":
		return false
	default:
		s.send(msim.ErrorMessage(msim.ErrCodeParse, false, textParse))
	}
	return true
}

// login checks a login2 answer and, on success, registers the session.
func (s *session) login(m *msim.Message) bool {
	alg, err := m.TypeInt()
	email, err2 := m.Str("username")
	resp, err3 := m.Base64("response")
	if err := errors.Join(err, err2, err3); err != nil || alg != msim.LoginAlgorithm {
		s.logger().WithError(err).Info("malformed login")
		s.srv.metrics.login(msim.ErrCodeParse)
		s.fatal(msim.ErrCodeParse, textParse)
		return false
	}
	log := s.logger().WithField("email", loggedEmail(email))
	srv := s.srv
	addrKey, acctKey := srv.addrKey(s.nc.RemoteAddr()), accountKey(email)
	wait, err := srv.loginWait(addrKey, acctKey)
	if err != nil {
		// Refused without looking at the password; the burst was logged
		// when the refusal began. Not err 260: clients take that for a
		// wrong password and stop trying, where this refusal ends.
		log.WithError(err).Debug("login refused: too many failed logins from this address")
		srv.metrics.login(ErrCodeRefused)
		s.fatal(ErrCodeRefused, textLoginsLater)
		return false
	}
	if wait > 0 {
		log.WithField("delay", wait).Debug("login delayed after failed logins")
		if !srv.sleep(wait, s.done) {
			return false
		}
	}
	acct, err := srv.store.AccountByEmail(email)
	if err != nil && !errors.Is(err, ErrNoSuchAccount) {
		log.WithError(err).Error("login: store")
		srv.metrics.login(msim.ErrCodeParse)
		s.fatal(msim.ErrCodeParse, "The server could not process the login.")
		return false
	}
	// An unknown address (or Tom, who never logs in) is checked against a
	// decoy hash: the same work and the same answer as a wrong password,
	// so neither the reply nor its timing tells whether an account exists.
	known := err == nil && !(acct.UID == TomUID && srv.tom != nil)
	hash, want := srv.decoy, email
	if known {
		hash, want = acct.Hash, acct.Email
	}
	if ok, _ := msim.VerifyLogin(s.nonce, hash, want, resp); !ok || !known {
		if known {
			log.Info("login refused: wrong password")
		} else {
			log.Info("login refused: unknown e-mail address")
		}
		srv.loginFailed(log, addrKey, acctKey)
		srv.metrics.login(msim.ErrCodeBadPassword)
		s.fatal(msim.ErrCodeBadPassword, textBadLogin)
		return false
	}
	srv.loginSucceeded(acctKey)
	contacts, err := s.srv.store.Contacts(acct.UID)
	if err != nil {
		log.WithError(err).Error("login: contacts")
		srv.metrics.login(msim.ErrCodeParse)
		s.fatal(msim.ErrCodeParse, "The server could not process the login.")
		return false
	}
	s.nonce = nil
	s.uid = acct.UID
	s.nick = uniqueNick(acct)
	s.listed, s.haveListed = contacts, true
	s.rt = route{
		presence:       msim.Presence{Status: msim.StatusOnline},
		blockList:      setOf(acct.Block),
		allow:          setOf(acct.Allow),
		showOnlyToList: acct.ShowOnlyToList,
		onlyListMayIM:  acct.OnlyListMayIM,
	}
	for _, c := range contacts {
		if c.Blocked() {
			add(&s.rt.blockRecs, c.UID)
		} else {
			add(&s.rt.contacts, c.UID)
		}
	}
	s.log.Store(log.WithField("uid", acct.UID))
	if srv.bus != nil {
		// Other nodes close their sessions of this account, and this node
		// follows the contacts' states before greeting.
		if err := s.claim(); err != nil {
			s.logger().WithError(err).Error("login: cluster")
			srv.metrics.login(msim.ErrCodeParse)
			s.fatal(msim.ErrCodeParse, "The server could not process the login.")
			return false
		}
		srv.bus.Watch(srv.reg.pin(keys(s.rt.contacts)))
	}

	// Offline messages are taken under offlineMu so that none stored by a
	// sender who still saw this account offline can be missed.
	srv.offlineMu.Lock()
	stored, err := srv.store.TakeOffline(s.uid)
	if err != nil {
		s.logger().WithError(err).Error("login: offline messages not taken; they stay stored for the next login")
	}
	var refused []OfflineMessage // the stored IMs a session closing meanwhile did not take
	supersededBy, live := srv.reg.login(s, func(old *session, presences [][]byte) {
		if old != nil {
			old.send(msim.ErrorMessage(msim.ErrCodeElsewhere, true, textElsewhere))
			old.closeAfterFlush()
		}
		s.send(msim.NewInt("lc", 2).AddInt("sesskey", s.key).Add("proof", s.nick).
			AddInt("userid", int(s.uid)).AddInt("profileid", int(s.uid)).
			Add("uniquenick", s.nick).AddInt("id", 1))
		for _, p := range presences {
			s.enqueueBurst(p)
		}
		handed := 0
		for i, om := range stored {
			if !s.enqueueStored(om) {
				refused = stored[i:] // closed: it takes none of the rest either
				break
			}
			handed++
		}
		srv.metrics.deliveredFromStorage(handed)
	})
	if !live {
		refused = stored // the newer session takes them from the store
	}
	if len(refused) > 0 {
		// Closed during the login (a shutdown, a failed write, a login
		// elsewhere): these are stored again for the next login, as
		// Mailbox does.
		s.restore(refused)
	}
	srv.offlineMu.Unlock()
	if len(refused) > 0 && srv.reg.session(s.uid) != s {
		srv.storedFor(s.uid) // a newer session may have taken the mailbox before these
	}

	if !live {
		// A later login of the user here got in first: it stays.
		s.logger().Info("a later login of this user is live here; closing this one")
		srv.metrics.login(msim.ErrCodeElsewhere)
		s.fatal(msim.ErrCodeElsewhere, textElsewhere)
		return false
	}
	s.loggedIn = true
	s.in = srv.flood.acquire(s.uid)
	if supersededBy != nil {
		// A later login on another node won while this one was under way.
		peer{srv}.Kick(s.uid, *supersededBy)
	}
	srv.metrics.login(0)
	_ = s.nc.SetReadDeadline(time.Time{})
	s.logger().WithField("offline_messages", len(stored)).Info("logged in")
	srv.lastLogin.record(s.uid, time.Now().UTC())
	return true
}

func offlineIM(om OfflineMessage) *msim.Message {
	m := msim.NewInt("bm", msim.BMIM).AddInt("f", int(om.From))
	if om.CV != 0 {
		m.AddInt("cv", om.CV)
	}
	return m.Add("msg", om.Body).AddInt("date", int(om.Time.Unix()))
}

// uniqueNick is what lc 2 calls uniquenick: the user name, or the uid when
// none is set (how clients detect "user name not set").
func uniqueNick(a *Account) string {
	if a.UserName == "" {
		return a.UID.String()
	}
	return a.UserName
}

// errorf logs nothing and queues a non-fatal error for the client.
func (s *session) errorf(code int, format string, args ...any) {
	s.send(msim.ErrorMessage(code, false, fmt.Sprintf(format, args...)))
}
