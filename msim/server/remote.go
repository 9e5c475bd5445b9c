package server

import (
	"time"

	"github.com/msimircd/msimircd/msim"
)

// The registry's cluster half: the states of users whose sessions may be
// on other nodes, and the hand-over of a user from one node to another.
// Used only with a Bus; everything is guarded by r.mu.

func keys(m map[msim.UID]struct{}) []msim.UID {
	out := make([]msim.UID, 0, len(m))
	for u := range m {
		out = append(out, u)
	}
	return out
}

// pin follows uids for a session logging in, and returns those followed
// anew (for Bus.Watch).
func (r *registry) pin(uids []msim.UID) []msim.UID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pinLocked(uids)
}

func (r *registry) pinLocked(uids []msim.UID) []msim.UID {
	var newly []msim.UID
	for _, u := range uids {
		if u == TomUID && r.demo {
			continue // every node has its own Tom
		}
		e := r.remote[u]
		if e == nil {
			e = &remoteEntry{}
			r.remote[u] = e
			newly = append(newly, u)
			if s := r.byUID[u]; s != nil {
				e.set(s.peerState(false))
			}
		}
		e.pins++
	}
	return newly
}

// unpinLocked undoes pinLocked and returns the uids no longer followed (for
// Bus.Unwatch).
func (r *registry) unpinLocked(uids []msim.UID) []msim.UID {
	var dropped []msim.UID
	for _, u := range uids {
		e := r.remote[u]
		if e == nil {
			continue
		}
		if e.pins--; e.pins <= 0 {
			delete(r.remote, u)
			dropped = append(dropped, u)
		}
	}
	return dropped
}

// setLocal records the state of a local session for the node's own
// watchers, so that its echo from the bus changes nothing.
func (r *registry) setLocal(st *PeerState) {
	if e := r.remote[st.UID]; e != nil && st.newer(e.st) {
		e.set(st)
	}
}

// startClaim and endClaim bracket a login's Claim (endClaim only when the
// Claim failed; login ends it otherwise).
func (r *registry) startClaim(uid msim.UID, v Version) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.claiming[uid] = &claimMark{ver: v}
}

// carry records the state that the login of uid at v took over from a
// session elsewhere, for a later login that claims uid before it is done.
func (r *registry) carry(uid msim.UID, v Version, st *PeerState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.claiming[uid]; c != nil && c.ver == v {
		c.inherit = st
	}
}

// handOn gives st to the login of uid at to under way here, if it took no
// state over itself, or to the session at to, if it has no presence of its
// own yet: its watchers see it, and the state to publish is returned.
func (r *registry) handOn(uid msim.UID, to Version, st *PeerState) *PeerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.claiming[uid]; c != nil && c.ver == to {
		if c.inherit == nil {
			cp := *st
			c.inherit = &cp
		}
		return nil
	}
	s := r.byUID[uid]
	if s == nil || s.ver != to || s.rt.announced || !st.Announced {
		return nil
	}
	return r.updateLocked(s, true, func(rt *route) { rt.setPresence(st.Presence, true) })
}

func (r *registry) endClaim(uid msim.UID, v Version) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.claiming[uid]; c != nil && c.ver == v {
		delete(r.claiming, uid)
	}
}

// kick takes uid's session off this node if it is older than by, and
// returns it with its last state. The node's watchers of uid go on seeing
// that state, now as the new session's (which inherits it), so they see no
// flicker. A login of uid under way here that is older than by is marked,
// and with no session here the state it took over from elsewhere, if any,
// is returned (without a session): that login is closed once done, and the
// state it carried goes on to the later one.
func (r *registry) kick(uid msim.UID, by Version) (*session, *PeerState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.claiming[uid]
	if c != nil && c.ver.Less(by) && (c.by == nil || c.by.Less(by)) {
		c.by = &by
	}
	s := r.byUID[uid]
	if s == nil && c != nil && c.ver.Less(by) && c.inherit != nil {
		st := *c.inherit
		return nil, &st
	}
	if s == nil || !s.ver.Less(by) {
		return nil, nil
	}
	st := s.peerState(false)
	delete(r.byUID, uid)
	if r.keys[s.key] == s {
		delete(r.keys, s.key)
	}
	if e := r.remote[uid]; e != nil {
		seed := *st
		seed.Version, seed.Seq = by, 0
		e.set(&seed)
	}
	return s, st
}

// state returns the state of uid's session here, nil if there is none.
func (r *registry) state(uid msim.UID) *PeerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.byUID[uid]; s != nil {
		return s.peerState(false)
	}
	return nil
}

// uids returns the users with a session here.
func (r *registry) uids() []msim.UID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]msim.UID, 0, len(r.byUID))
	for u := range r.byUID {
		out = append(out, u)
	}
	return out
}

// peerState takes a state published by another node and tells the local
// watchers whose view of the user changed. A user with a session here is
// this node's business: the state is only recorded.
func (r *registry) peerState(st *PeerState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.remote[st.UID]
	if e == nil || !st.newer(e.st) {
		return
	}
	r.apply(e, st)
}

// apply makes st e's state and tells the watchers. The caller holds r.mu.
func (r *registry) apply(e *remoteEntry, st *PeerState) {
	if r.byUID[st.UID] != nil {
		e.set(st)
		return
	}
	ws := r.watchers[st.UID]
	before := make(map[*session]bool, len(ws))
	for w := range ws {
		before[w] = e.visibleTo(w.uid)
	}
	e.set(st)
	var on, off []byte
	n := 0
	for w := range ws {
		if w.uid == st.UID {
			continue
		}
		was, is := before[w], e.visibleTo(w.uid)
		switch {
		case is && (!was || st.Status):
			if on == nil {
				on = presenceMsg(st.UID, st.Presence)
			}
			w.enqueuePresence(on)
			n++
		case was && !is:
			if off == nil {
				off = presenceMsg(st.UID, offline)
			}
			w.enqueuePresence(off)
			n++
		}
	}
	if st.Status || !st.Online {
		r.metrics.presenceFanout(n)
	}
}

// nodeDown marks the users of a node that is gone as offline.
func (r *registry) nodeDown(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.remote {
		if e.st == nil || e.st.Node != node || !e.st.Online {
			continue
		}
		off := *e.st
		off.Online, off.Presence, off.Status = false, offline, false
		r.apply(e, &off)
	}
}

// gone marks uid offline, as nodeDown does, if its state was known
// before asked: a state fetch sent then found uid connected nowhere. A
// state that came meanwhile (a login since) is left alone.
func (r *registry) gone(uid msim.UID, asked time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.remote[uid]
	if e == nil || e.st == nil || !e.st.Online || r.byUID[uid] != nil || !e.at.Before(asked) {
		return
	}
	off := *e.st
	off.Online, off.Presence, off.Status = false, offline, false
	r.apply(e, &off)
}
