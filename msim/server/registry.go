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

	// In a cluster (bus not nil): what this node knows of the users its
	// sessions list, whose sessions may be on other nodes, and the logins
	// under way between their Claim and login. Bus calls are made after
	// mu is released.
	bus      Bus
	remote   map[msim.UID]*remoteEntry
	claiming map[msim.UID]*claimMark

	// views is update's scratch list of watchers, kept between calls.
	views []watcherView
}

// watcherView is a watcher and whether it saw the session before a change.
type watcherView struct {
	w   *session
	saw bool
}

// claimMark is a login under way in a cluster: by is set when a later
// login on another node claimed the uid meanwhile; inherit is the state of
// the session elsewhere that its Claim closed, which such a later login
// takes over in its stead.
type claimMark struct {
	ver     Version
	by      *Version
	inherit *PeerState
}

// route is a logged-in session's routing state, guarded by registry.mu.
type route struct {
	presence msim.Presence // set only with setPresence
	// wire is presence's bm 100 message once built (nil until then): every
	// watcher gets the same bytes.
	wire           []byte
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
	r.remote = map[msim.UID]*remoteEntry{}
	r.claiming = map[msim.UID]*claimMark{}
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

// setPresence sets the published presence.
func (rt *route) setPresence(p msim.Presence, announced bool) {
	rt.presence, rt.announced, rt.wire = p, announced, nil
}

// presenceWire returns the bm 100 message of uid (the route's owner) with
// the route's presence, built once per presence.
func (rt *route) presenceWire(uid msim.UID) []byte {
	if rt.wire == nil {
		rt.wire = presenceMsg(uid, rt.presence)
	}
	return rt.wire
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
// its published presence to ss, so watchers see no flicker; so does one on
// another node (ss.inherit). In a cluster it returns the version of a later
// login elsewhere that claimed the uid while this one was under way (ss
// must then be closed), and publishes ss's state.
//
// In a cluster, a session of the uid here that is newer than ss (a later
// login of the same user that got here first) stays: ss is not registered
// and greet is not called, its pins are undone, and the state it took over
// from elsewhere goes on to that session; live is false, and ss must be
// closed.
func (r *registry) login(ss *session, greet func(old *session, contacts [][]byte)) (supersededBy *Version, live bool) {
	r.mu.Lock()
	for ss.key == 0 || r.keys[ss.key] != nil {
		ss.key = newSessionKey()
	}
	mark := r.claiming[ss.uid]
	if mark != nil && mark.ver != ss.ver {
		mark = nil
	}
	if ss.inherit == nil && mark != nil && mark.inherit != nil {
		ss.inherit = mark.inherit // handed on by a login elsewhere that this one superseded
	}
	old := r.byUID[ss.uid]
	if r.bus != nil && old != nil && ss.ver.Less(old.ver) {
		r.loseLocked(ss, old, mark) // unlocks r.mu
		return nil, false
	}
	if old != nil {
		ss.rt.setPresence(old.rt.presence, old.rt.announced)
	} else if ss.inherit != nil {
		ss.rt.setPresence(ss.inherit.Presence, ss.inherit.Announced)
	}
	r.byUID[ss.uid] = ss
	r.keys[ss.key] = ss
	for c := range ss.rt.contacts {
		r.watch(ss, c)
	}
	greet(old, r.contactPresences(ss))
	if r.bus == nil {
		r.mu.Unlock()
		return nil, true
	}
	if mark != nil {
		delete(r.claiming, ss.uid)
		supersededBy = mark.by
	}
	if old == nil && ss.inherit != nil {
		r.showTakenOver(ss)
	}
	ss.seq = 1
	st := ss.peerState(false)
	r.setLocal(st)
	r.mu.Unlock()
	r.bus.Publish(st)
	return supersededBy, true
}

// loseLocked is login's work for ss, a login older than the session live
// here, newer: it ends ss's claim mark and pins, and hands the state ss
// took over from elsewhere on to newer, as a kick of ss by newer would
// have. The caller holds r.mu; loseLocked releases it.
func (r *registry) loseLocked(ss, newer *session, mark *claimMark) {
	if mark != nil {
		delete(r.claiming, ss.uid)
	}
	dropped := r.unpinLocked(keys(ss.rt.contacts))
	inherit := ss.inherit
	r.mu.Unlock()
	r.bus.Unwatch(dropped)
	if inherit != nil && inherit.Online && inherit.Version.Less(newer.ver) {
		if pub := r.handOn(ss.uid, newer.ver, inherit); pub != nil {
			r.bus.Publish(pub)
		}
	}
}

// showTakenOver tells the local watchers of ss's user who, by what this
// node last knew of the user elsewhere, do not see it online, that it is:
// a login that took its presence over from another node (ss.inherit) would
// otherwise leave them with the offline state that node's going down
// (NodeDown, Gone) gave them meanwhile. Any other new session has shown
// nobody anything yet. The caller holds r.mu.
func (r *registry) showTakenOver(ss *session) {
	e := r.remote[ss.uid]
	if e == nil {
		return
	}
	for w := range r.watchers[ss.uid] {
		if w.uid != ss.uid && ss.rt.visibleTo(w.uid) && !e.visibleTo(w.uid) {
			w.enqueuePresence(ss.rt.presenceWire(ss.uid))
		}
	}
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
// online are told it is offline (in a cluster, on every node).
func (r *registry) logout(ss *session) {
	r.mu.Lock()
	st := r.logoutLocked(ss)
	var dropped []msim.UID
	if r.bus != nil {
		dropped = r.unpinLocked(keys(ss.rt.contacts))
	}
	r.mu.Unlock()
	if r.bus == nil {
		return
	}
	if st != nil {
		r.bus.Publish(st)
	}
	r.bus.Unwatch(dropped)
	ss.releaseClaim()
}

// logoutLocked is logout's work under r.mu; in a cluster it returns the
// offline state to publish, if ss was the live session.
func (r *registry) logoutLocked(ss *session) *PeerState {
	if r.keys[ss.key] == ss {
		delete(r.keys, ss.key)
	}
	for c := range ss.rt.contacts {
		r.unwatch(ss, c)
	}
	if r.byUID[ss.uid] != ss {
		return nil
	}
	delete(r.byUID, ss.uid)
	var msg []byte
	n := 0
	for w := range r.watchers[ss.uid] {
		if w.uid != ss.uid && ss.rt.visibleTo(w.uid) {
			if msg == nil {
				msg = presenceMsg(ss.uid, offline)
			}
			w.enqueuePresence(msg)
			n++
		}
	}
	r.metrics.presenceFanout(n)
	if r.bus == nil {
		return nil
	}
	ss.seq++
	st := &PeerState{UID: ss.uid, Version: ss.ver, Seq: ss.seq, Presence: offline}
	r.setLocal(st)
	return st
}

// update applies fn to ss's route and tells every watcher whose view of ss
// changed: the new presence, or offline. With always, watchers who see ss
// both before and after get the (new) presence too.
func (r *registry) update(ss *session, always bool, fn func(rt *route)) {
	r.mu.Lock()
	st := r.updateLocked(ss, always, fn)
	r.mu.Unlock()
	if st != nil {
		r.bus.Publish(st)
	}
}

// updateLocked is update's work under r.mu; in a cluster it returns the
// state to publish.
func (r *registry) updateLocked(ss *session, always bool, fn func(rt *route)) *PeerState {
	ws := r.watchers[ss.uid]
	views := r.views[:0]
	for w := range ws {
		views = append(views, watcherView{w, ss.rt.visibleTo(w.uid)})
	}
	fn(&ss.rt)
	if r.byUID[ss.uid] != ss {
		r.keepViews(views)
		return nil
	}
	var off []byte
	n := 0
	for _, v := range views {
		w := v.w
		if w.uid == ss.uid {
			continue
		}
		was, is := v.saw, ss.rt.visibleTo(w.uid)
		switch {
		case is && (!was || always):
			w.enqueuePresence(ss.rt.presenceWire(ss.uid))
			n++
		case was && !is:
			if off == nil {
				off = presenceMsg(ss.uid, offline)
			}
			w.enqueuePresence(off)
			n++
		}
	}
	r.keepViews(views)
	if always { // a status change, not a privacy setting
		r.metrics.presenceFanout(n)
	}
	return r.nextState(ss, always)
}

// keepViews keeps update's scratch list for the next call, unless a large
// fan-out grew it. The caller holds r.mu.
func (r *registry) keepViews(views []watcherView) {
	clear(views)
	if cap(views) > 4*maxContacts {
		views = nil
	}
	r.views = views[:0]
}

// nextState is ss's new state for the cluster (nil without one), also
// recorded for this node's own watchers. The caller holds r.mu.
func (r *registry) nextState(ss *session, status bool) *PeerState {
	if r.bus == nil {
		return nil
	}
	ss.seq++
	st := ss.peerState(status)
	r.setLocal(st)
	return st
}

// presenceFor returns subject's presence as viewer sees it (offline when
// subject is not online or hides from viewer).
func (r *registry) presenceFor(subject msim.UID, viewer msim.UID) msim.Presence {
	if subject == TomUID && r.demo {
		return tomPresence
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.byUID[subject]; s != nil {
		if s.rt.visibleTo(viewer) {
			return s.rt.presence
		}
		return offline
	}
	if e := r.remote[subject]; e != nil && e.visibleTo(viewer) {
		return e.st.Presence
	}
	return offline
}

// setContact lists (or, with listed false, unlists) subject for ss and
// updates the watcher index (in a cluster, what this node follows).
func (r *registry) setContact(ss *session, subject msim.UID, listed bool) {
	r.mu.Lock()
	was := has(ss.rt.contacts, subject)
	saw := ss.rt.visibleTo(subject)
	if listed {
		add(&ss.rt.contacts, subject)
		r.watch(ss, subject)
	} else {
		delete(ss.rt.contacts, subject)
		r.unwatch(ss, subject)
	}
	if is := ss.rt.visibleTo(subject); is != saw && r.byUID[ss.uid] == ss {
		// Under w1 the list says who sees ss: subject's sessions here
		// that follow ss see it come or go (other nodes' hear of it
		// through the state published below).
		for w := range r.watchers[ss.uid] {
			switch {
			case w.uid != subject:
			case is:
				w.enqueuePresence(ss.rt.presenceWire(ss.uid))
			default:
				w.enqueuePresence(presenceMsg(ss.uid, offline))
			}
		}
	}
	if r.bus == nil || was == listed {
		r.mu.Unlock()
		return
	}
	var newly, dropped []msim.UID
	if listed {
		newly = r.pinLocked([]msim.UID{subject})
	} else {
		dropped = r.unpinLocked([]msim.UID{subject})
	}
	var st *PeerState
	if ss.rt.showOnlyToList && r.byUID[ss.uid] == ss {
		st = r.nextState(ss, false) // who may see ss changed
	}
	r.mu.Unlock()
	r.bus.Watch(newly)
	r.bus.Unwatch(dropped)
	if st != nil {
		r.bus.Publish(st)
	}
}

// contactPresences returns the presence message of every contact of ss that
// is online and visible to it. The caller holds r.mu.
func (r *registry) contactPresences(ss *session) [][]byte {
	out := make([][]byte, 0, len(ss.rt.contacts))
	for c := range ss.rt.contacts {
		if c == TomUID && r.demo {
			out = append(out, presenceMsg(TomUID, tomPresence))
			continue
		}
		if s := r.byUID[c]; s != nil {
			if s.rt.visibleTo(ss.uid) {
				out = append(out, s.rt.presenceWire(c))
			}
		} else if e := r.remote[c]; e != nil && e.visibleTo(ss.uid) {
			out = append(out, presenceMsg(c, e.st.Presence))
		}
	}
	return out
}

// deliver queues msg for uid's live session if sender may message it. It
// reports whether uid is online; a message dropped by the target's privacy
// settings still counts as delivered (the sender must not learn of it).
// The session takes msg outside r.mu.
//
// A session that is closing did not take it: the caller stores an IM for
// the next login instead, but if wait is not nil, only once it is closed
// (holding no lock meanwhile): the session was closed at once and its
// writer is storing the IMs it did not write, which come first. The
// Server's deliverLive does so.
func (r *registry) deliver(uid, sender msim.UID, msg []byte) (online bool, wait <-chan struct{}) {
	r.mu.Lock()
	s := r.byUID[uid]
	if s == nil {
		r.mu.Unlock()
		return false, nil
	}
	if !s.rt.mayMessage(sender) {
		r.mu.Unlock()
		return true, nil // dropped by the recipient's privacy settings
	}
	r.mu.Unlock()
	if s.enqueueBM(msg, sender) {
		return true, nil
	}
	return false, s.rescueWait()
}

// addAlert records a pending alert (e.g. FriendRequest) for uid, on every
// node in a cluster.
func (r *registry) addAlert(uid msim.UID, key string) {
	r.setAlert(uid, key)
	if r.bus != nil {
		r.bus.Alert(uid, key)
	}
}

func (r *registry) setAlert(uid msim.UID, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts[uid] = r.alerts[uid].Set(key, "On")
}

// takeAlerts returns and clears uid's pending alerts (on every node).
func (r *registry) takeAlerts(uid msim.UID) msim.Dict {
	r.mu.Lock()
	d := r.alerts[uid]
	delete(r.alerts, uid)
	r.mu.Unlock()
	if r.bus != nil && len(d) > 0 {
		r.bus.AlertsTaken(uid)
	}
	return d
}

func (r *registry) dropAlerts(uid msim.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.alerts, uid)
}

// count returns the number of live sessions.
func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byUID)
}
