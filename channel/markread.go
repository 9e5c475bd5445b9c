// Read markers (IRCv3 draft/read-marker): MARKREAD keeps, per
// conversation, how far the user read, and tells their other clients.
// The store is written on worker goroutines, one marker at a time per
// session, so that the session goes on with its other work meanwhile and
// the markers its clients are told never move backwards.

package channel

import (
	"context"
	"time"
)

// MarkRead implements ircd.HistoryHandler (MARKREAD … timestamp=).
func (at *attachment) MarkRead(target string, t time.Time) {
	at.do(func(s *session) { s.markRead(at, target, t) }, nil)
}

// marking is the MARKREADs of a nick under way (see session.marking):
// how many, and what waits for them.
type marking struct {
	n       int
	target  string
	answers []func(time.Time) // the read-marker questions waiting
}

// markRead keeps the read marker of target's conversation, found as
// CHATHISTORY finds it: a nick the session does not know is looked up on
// MSIM first. Until the marker is written, the marker's readers wait
// (readMarker), so that they see it.
func (s *session) markRead(from *attachment, target string, t time.Time) {
	c, err := s.findConversation(target)
	if err != nil && (!s.historyOn() || s.bridgeOwn(target)) {
		return
	}
	user := s.user.Name // whose marker it is, should identify make the session another's meanwhile
	key := nickKey(target)
	m := s.marking[key]
	if m == nil {
		m = &marking{target: target}
		put(&s.marking, key, m)
	}
	m.n++
	done := func() { s.marked(key, m) }
	if err == nil {
		s.setReadMarker(from, user, c, t, done)
		return
	}
	s.lookupConversation(target, func(_ context.Context, c conversation, err error) {
		s.post(call(func() {
			if err != nil {
				done()
				return
			}
			s.setReadMarker(from, user, c, t, done)
		}))
	})
}

// marked ends one of m's MARKREADs; once none is left, the read-marker
// questions that waited for them are answered.
func (s *session) marked(key string, m *marking) {
	if m.n--; m.n > 0 {
		return
	}
	if s.marking[key] == m {
		delete(s.marking, key)
	}
	for _, answer := range m.answers {
		s.readMarker(m.target, answer)
	}
}

// markWrite is a read marker to keep. The store is written on a worker
// goroutine (writeMarker), one markWrite of the session at a time.
type markWrite struct {
	// The session's, never the worker's.
	from *attachment
	done func()
	// Given to the worker: the marker of user's conversation c (user: the
	// session's when it was asked, which a switch, identify or register,
	// may have made another's since).
	user string
	c    conversation
	t    time.Time
	// written is closed once the worker's store calls are through.
	written chan struct{}
	started bool // given to a worker (the session's)
	// Found by the worker, read on the session goroutine once it posts.
	old, now time.Time
	err      error
	failed   string // what failed: "read" or "saved"
}

// setReadMarker keeps t as the read marker of user's conversation c if it
// is later than the one kept, tells the user's other clients (if the
// session is still user's) when that changed it, and then
// calls done. The writes of the session's markers are made one after the
// other, in the order asked (markers): each tells the clients the marker
// it left, so that what they are told never moves backwards.
func (s *session) setReadMarker(from *attachment, user string, c conversation, t time.Time, done func()) {
	if !s.historyOn() && !s.dropping { // dropped as its nick was looked up: nothing to keep
		done()
		return
	}
	// One waiting for its turn, of this conversation and client, takes this
	// one in: the store keeps the latest of the two anyway, and the queue
	// stays as long as the conversations.
	for _, w := range s.markers {
		if !w.started && w.from == from && w.user == user && w.c.email == c.email && w.c.uid == c.uid {
			w.c.nick, w.t = c.nick, laterOf(w.t, t)
			first := w.done
			w.done = func() { first(); done() }
			return
		}
	}
	w := &markWrite{from: from, done: done, user: user, c: c, t: t, written: make(chan struct{})}
	s.markers = append(s.markers, w)
	if len(s.markers) == 1 && !s.dropping { // a drop's end writes it, or not (markersResume)
		s.writeMarker(w)
	}
}

// writeMarker writes w's marker on a tracked worker given only the store
// and w's values; its result is posted back (markerWritten).
func (s *session) writeMarker(w *markWrite) {
	w.started = true
	st, user := s.b.cfg.Store, w.user
	s.goWrite(func(ctx context.Context) {
		w.old, w.err = st.ReadMarker(ctx, user, w.c.email, w.c.uid)
		if w.err != nil {
			w.failed = "read"
		} else if w.now, w.err = st.SetReadMarker(ctx, user, w.c.email, w.c.uid, w.t); w.err != nil {
			w.failed = "saved"
		}
		close(w.written)
		s.post(call(func() { s.markerWritten(w) }))
	})
}

// markerWritten tells the other clients what w's write did, ends w, and
// writes the next marker waiting, if the history is still kept.
func (s *session) markerWritten(w *markWrite) {
	if len(s.markers) == 0 || s.markers[0] != w {
		return
	}
	s.markers[0] = nil
	s.markers = s.markers[1:]
	switch {
	case w.err != nil:
		s.log.WithError(w.err).Errorf("store: a read marker could not be %s", w.failed)
	case !w.now.Equal(w.old) && w.user == s.user.Name: // else the clients are another user's now
		for _, at := range s.cl.ats {
			if at != w.from {
				at.c.SendReadMarker(w.c.nick, w.now)
			}
		}
	}
	w.done()
	if !s.dropping { // else the drop's end writes the next, or not
		s.markersResume()
	}
}

// markersResume writes the first marker waiting, unless one is being
// written: after a write, and as a drop ends. If the history is no longer
// kept (the user was dropped), the markers waiting end unwritten.
func (s *session) markersResume() {
	if len(s.markers) == 0 || s.markers[0].started {
		return
	}
	if s.historyOn() {
		s.writeMarker(s.markers[0])
		return
	}
	for _, w := range s.markers {
		w.done()
	}
	s.markers = nil
}

// markersEnd, as the session ends, writes the markers still waiting for
// their turn (their clients are gone: no one is told).
func (s *session) markersEnd() {
	if len(s.markers) < 2 || !s.historyOn() {
		return
	}
	for _, w := range s.markers[1:] {
		s.writeMarker(w)
	}
}

// ReadMarker implements ircd.HistoryHandler (MARKREAD <target>).
func (at *attachment) ReadMarker(target string, answer func(time.Time)) {
	at.do(func(s *session) { s.readMarker(target, answer) }, func() { answer(time.Time{}) })
}

// readMarker answers the read marker of target's conversation, found as
// CHATHISTORY finds it, after the MARKREADs of target under way.
func (s *session) readMarker(target string, answer func(time.Time)) {
	if m := s.marking[nickKey(target)]; m != nil {
		m.answers = append(m.answers, answer)
		return
	}
	st, user, log, met := s.b.cfg.Store, s.user.Name, s.log, s.b.met
	s.lookupConversation(target, func(ctx context.Context, c conversation, err error) {
		if err != nil {
			answer(time.Time{})
			return
		}
		met.historyQuery("read_marker")
		t, err := st.ReadMarker(ctx, user, c.email, c.uid)
		if err != nil {
			log.WithError(err).Error("store: a read marker could not be read")
		}
		answer(t)
	})
}

// laterOf is the later of a and b.
func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
