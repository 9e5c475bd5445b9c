package server

import (
	"sync"

	"github.com/msimircd/msimircd/msim"
)

// registry is the routing state shared by all sessions: who is online, who
// watches whom, and each online user's presence and privacy settings (the
// route fields of session). Everything here is guarded by mu; sending to a
// session only appends to its queue, so holding mu never waits on a socket.
type registry struct {
	mu       sync.Mutex
	byUID    map[msim.UID]*session
	keys     map[int]*session
	watchers map[msim.UID]map[*session]struct{} // subject → online sessions listing it
	alerts   map[msim.UID]msim.Dict             // pending persist 7/18 alerts
	demo     bool                               // Tom is online
	metrics  *metricSet                         // set by New; nil counts nothing
}

// route is a logged-in session's routing state, guarded by registry.mu.
type route struct {
	presence       msim.Presence
	announced      bool                  // a \status\ has been received: presence is published
	contacts       map[msim.UID]struct{} // listed, not blocked
	blockList      map[msim.UID]struct{} // \blocklist\ b+ entries (Account.Block)
	blockRecs      map[msim.UID]struct{} // contact records with Visibility=2
	allow          map[msim.UID]struct{}
	showOnlyToList bool
	onlyListMayIM  bool
}

func (r *registry) init(demo bool) {
	r.demo = demo
	r.byUID = map[msim.UID]*session{}
	r.keys = map[int]*session{}
	r.watchers = map[msim.UID]map[*session]struct{}{}
	r.alerts = map[msim.UID]msim.Dict{}
}

func has(m map[msim.UID]struct{}, u msim.UID) bool {
	_, ok := m[u]
	return ok
}

func add(m *map[msim.UID]struct{}, u msim.UID) {
	if *m == nil {
		*m = map[msim.UID]struct{}{}
	}
	(*m)[u] = struct{}{}
}

func setOf(us []msim.UID) map[msim.UID]struct{} {
	if len(us) == 0 {
		return nil
	}
	m := make(map[msim.UID]struct{}, len(us))
	for _, u := range us {
		m[u] = struct{}{}
	}
	return m
}

// blocked reports whether u is on the block list or has a blocked record.
func (rt *route) blocked(u msim.UID) bool {
	return has(rt.blockList, u) || has(rt.blockRecs, u)
}

// listed reports whether viewer is on rt's list (contacts or allow list).
func (rt *route) listed(viewer msim.UID) bool {
	return has(rt.contacts, viewer) || has(rt.allow, viewer)
}

// visibleTo reports whether the session's presence is published to viewer.
func (rt *route) visibleTo(viewer msim.UID) bool {
	return rt.announced && rt.presence.Status != msim.StatusOffline &&
		!rt.blocked(viewer) && (!rt.showOnlyToList || rt.listed(viewer))
}

// mayMessage reports whether sender's bm messages reach the session.
func (rt *route) mayMessage(sender msim.UID) bool {
	return !rt.blocked(sender) && (!rt.onlyListMayIM || rt.listed(sender))
}

func (r *registry) session(uid msim.UID) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byUID[uid]
}

func presenceMsg(uid msim.UID, p msim.Presence) []byte {
	return msim.Encode(msim.NewInt("bm", msim.BMStatus).AddInt("f", int(uid)).AddList("msg", p.List()))
}

var offline = msim.Presence{Status: msim.StatusOffline}

// login registers ss (holding its uid and route) as the live session of its
// account, gives it a fresh session key and subscribes it to its contacts.
// While the registry is still locked, so that nothing routed to ss can
// overtake them, it calls greet with the session it replaces (or nil) and
// the presence messages of ss's online contacts. A replaced session hands
// its published presence to ss, so watchers see no flicker.
func (r *registry) login(ss *session, greet func(old *session, contacts [][]byte)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ss.key == 0 || r.keys[ss.key] != nil {
		ss.key = newSessionKey()
	}
	old := r.byUID[ss.uid]
	if old != nil {
		ss.rt.presence, ss.rt.announced = old.rt.presence, old.rt.announced
	}
	r.byUID[ss.uid] = ss
	r.keys[ss.key] = ss
	for c := range ss.rt.contacts {
		r.watch(ss, c)
	}
	greet(old, r.contactPresences(ss))
}

func (r *registry) watch(ss *session, subject msim.UID) {
	w := r.watchers[subject]
	if w == nil {
		w = map[*session]struct{}{}
		r.watchers[subject] = w
	}
	w[ss] = struct{}{}
}

func (r *registry) unwatch(ss *session, subject msim.UID) {
	if w := r.watchers[subject]; w != nil {
		delete(w, ss)
		if len(w) == 0 {
			delete(r.watchers, subject)
		}
	}
}

// logout removes ss. Unless a newer login replaced it, watchers who saw it
// online are told it is offline.
func (r *registry) logout(ss *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[ss.key] == ss {
		delete(r.keys, ss.key)
	}
	for c := range ss.rt.contacts {
		r.unwatch(ss, c)
	}
	if r.byUID[ss.uid] != ss {
		return
	}
	delete(r.byUID, ss.uid)
	var msg []byte
	n := 0
	for w := range r.watchers[ss.uid] {
		if w.uid != ss.uid && ss.rt.visibleTo(w.uid) {
			if msg == nil {
				msg = presenceMsg(ss.uid, offline)
			}
			w.enqueue(msg)
			n++
		}
	}
	r.metrics.presenceFanout(n)
}

// update applies fn to ss's route and tells every watcher whose view of ss
// changed: the new presence, or offline. With always, watchers who see ss
// both before and after get the (new) presence too.
func (r *registry) update(ss *session, always bool, fn func(rt *route)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.watchers[ss.uid]
	before := make(map[*session]bool, len(ws))
	for w := range ws {
		before[w] = ss.rt.visibleTo(w.uid)
	}
	fn(&ss.rt)
	if r.byUID[ss.uid] != ss {
		return
	}
	var on, off []byte
	n := 0
	for w := range ws {
		if w.uid == ss.uid {
			continue
		}
		was, is := before[w], ss.rt.visibleTo(w.uid)
		switch {
		case is && (!was || always):
			if on == nil {
				on = presenceMsg(ss.uid, ss.rt.presence)
			}
			w.enqueue(on)
			n++
		case was && !is:
			if off == nil {
				off = presenceMsg(ss.uid, offline)
			}
			w.enqueue(off)
			n++
		}
	}
	if always { // a status change, not a privacy setting
		r.metrics.presenceFanout(n)
	}
}

// presenceFor returns subject's presence as viewer sees it (offline when
// subject is not online or hides from viewer).
func (r *registry) presenceFor(subject msim.UID, viewer msim.UID) msim.Presence {
	if subject == TomUID && r.demo {
		return tomPresence
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.byUID[subject]; s != nil && s.rt.visibleTo(viewer) {
		return s.rt.presence
	}
	return offline
}

// setContact lists (or, with listed false, unlists) subject for ss and
// updates the watcher index.
func (r *registry) setContact(ss *session, subject msim.UID, listed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if listed {
		add(&ss.rt.contacts, subject)
		r.watch(ss, subject)
	} else {
		delete(ss.rt.contacts, subject)
		r.unwatch(ss, subject)
	}
}

// contactPresences returns the presence message of every contact of ss that
// is online and visible to it. The caller holds r.mu.
func (r *registry) contactPresences(ss *session) [][]byte {
	var out [][]byte
	for c := range ss.rt.contacts {
		if c == TomUID && r.demo {
			out = append(out, presenceMsg(TomUID, tomPresence))
			continue
		}
		if s := r.byUID[c]; s != nil && s.rt.visibleTo(ss.uid) {
			out = append(out, presenceMsg(c, s.rt.presence))
		}
	}
	return out
}

// deliver queues msg for uid's live session if sender may message it. It
// reports whether uid is online; a message dropped by the target's privacy
// settings still counts as delivered (the sender must not learn of it).
func (r *registry) deliver(uid, sender msim.UID, msg []byte) (online bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.byUID[uid]
	if s == nil {
		return false
	}
	if !s.rt.mayMessage(sender) {
		return true // dropped by the recipient's privacy settings
	}
	// A session that is closing (or just overflowed) did not take it: the
	// caller stores an IM for the next login instead.
	return s.enqueue(msg)
}

// addAlert records a pending alert (e.g. FriendRequest) for uid.
func (r *registry) addAlert(uid msim.UID, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts[uid] = r.alerts[uid].Set(key, "On")
}

// takeAlerts returns and clears uid's pending alerts.
func (r *registry) takeAlerts(uid msim.UID) msim.Dict {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.alerts[uid]
	delete(r.alerts, uid)
	return d
}

// count returns the number of live sessions.
func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byUID)
}
