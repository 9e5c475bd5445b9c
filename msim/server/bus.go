package server

import (
	"bytes"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// ErrCodeNodeLost is the fatal error every session of a node gets when the
// node loses the cluster (its NATS link, or its lease): the rest of the
// network already counts those users as offline, so they must log in again.
// The protocol has no code for this; this one is msimircd's.
const ErrCodeNodeLost = 4355

const textNodeLost = "This server lost its link to the rest of the network; log in again."

// Bus carries what crosses nodes when several msimd nodes serve one network
// (Config.Bus; package cluster implements it over NATS). Without it the
// Server is a single process and nothing here is used.
//
// A node answers for a uid (Deliver, State, Mailbox) from its Claim to its
// Release. Every method is safe for concurrent use and bounded in time; none
// is called with the registry locked.
type Bus interface {
	// Attach gives the bus the server's side. New calls it once, first.
	Attach(p Peer)
	// Node names this node's incarnation, for PeerState.Node. It changes
	// when the node lost the cluster and came back.
	Node() string
	// Claim announces that uid logs in here as session v: every other node
	// with an older session of uid closes it (err 6) and its state comes
	// back (nil if there was none), handed to Peer.HandOn for v before
	// this node answers for uid, so that a later login's kick finds it. A
	// node with a newer session of uid has this node's older ones closed
	// instead (Peer.Kick), as its own Claim would have, and gets the state
	// taken over (Peer.HandOn there). It fails when the node is not in the
	// cluster.
	Claim(uid msim.UID, v Version) (old *PeerState, err error)
	// Release ends a Claim.
	Release(uid msim.UID)
	// Deliver offers wire, a bm from `from`, to the node holding to's
	// session. taken reports that a node took it: queued it, or dropped it
	// under to's privacy settings. false with a nil error means to is
	// connected nowhere.
	Deliver(to, from msim.UID, wire []byte) (taken bool, err error)
	// Publish tells every node that follows st.UID of its new state.
	Publish(st *PeerState)
	// Watch follows the states of uids (each call is undone by one Unwatch
	// of the same uids) and, for those not followed before, fetches the
	// current state into Peer.PeerState before it returns.
	Watch(uids []msim.UID)
	Unwatch(uids []msim.UID)
	// Stored tells uid's node, if any, that an IM was stored for uid.
	Stored(uid msim.UID)
	// Alert and AlertsTaken keep the other nodes' pending alerts in step.
	Alert(uid msim.UID, key string)
	AlertsTaken(uid msim.UID)
}

// Peer is the server's side of the Bus: what arrives from other nodes.
// None waits on a socket; Deliver and Mailbox may wait for a session
// closed at once to store the IMs it did not write (a store of at most
// its send queue), so that what they store comes after those.
type Peer interface {
	// Deliver queues wire for uid's session here (see Bus.Deliver). An IM
	// (bm 1) is queued only before until, by this node's clock: past it,
	// its sender may have given up on the answer and stored the IM, so it
	// is not queued (false), and the stored copy is the only one. Other
	// bms, which a sender does not store, are queued however late.
	Deliver(to, from msim.UID, wire []byte, until time.Time) bool
	// Kick closes uid's session here if it is older than by, and returns
	// its state (nil if none was closed). With no session here but a
	// login of uid under way that is older than by, it returns the state
	// that login took over from elsewhere (nil if none): the login is
	// closed once done, and by's session takes that state over instead.
	Kick(uid msim.UID, by Version) *PeerState
	// HandOn gives st, the state of an older session of uid closed
	// elsewhere, to uid's login or session here at version to: a login
	// under way takes it over as if its Claim had brought it, a session
	// takes its presence if it has none of its own yet (nothing announced,
	// nothing inherited). Anything else here ignores it.
	HandOn(uid msim.UID, to Version, st *PeerState)
	// State returns uid's state if uid has a session here.
	State(uid msim.UID) *PeerState
	// Mailbox hands uid's stored IMs to its session here, if any.
	Mailbox(uid msim.UID)
	// PeerState takes a new state of a user on another node.
	PeerState(st *PeerState)
	// NodeDown says a node is gone: its users are offline.
	NodeDown(node string)
	// Gone says state fetches of uid, the first sent at asked (by this
	// node's clock), found it connected nowhere: a state known before then
	// is over (its offline state may have been missed while the NATS link
	// was down).
	Gone(uid msim.UID, asked time.Time)
	// Fence says this node lost the cluster: every session is closed.
	Fence()
	// Rescan hands every local user their stored IMs (after the node was
	// cut off for a while: IMs were stored for them meanwhile).
	Rescan()
	Alert(uid msim.UID, key string)
	AlertsTaken(uid msim.UID)
}

// Version orders the sessions of one user across nodes: a later login has a
// larger Epoch (its start in Unix nanoseconds); Node breaks ties.
type Version struct {
	Epoch int64
	Node  string
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	return v.Epoch < w.Epoch || v.Epoch == w.Epoch && v.Node < w.Node
}

// PeerState is what other nodes need of a user's session: its presence and
// the privacy settings that decide who sees it.
type PeerState struct {
	UID msim.UID `json:"uid"`
	Version
	Seq       uint64        `json:"seq"`    // orders the states of one session
	Online    bool          `json:"online"` // false: the session ended
	Announced bool          `json:"announced"`
	Presence  msim.Presence `json:"presence"`
	Hide      []msim.UID    `json:"hide,omitempty"`   // block list and blocked records
	OnlyList  bool          `json:"onlyList"`         // ShowOnlyToList
	Listed    []msim.UID    `json:"listed,omitempty"` // contacts and allow list, with OnlyList
	Status    bool          `json:"status"`           // a status change: watchers get it even if they saw the user before
}

// newer reports whether st supersedes cur.
func (st *PeerState) newer(cur *PeerState) bool {
	if cur == nil {
		return true
	}
	if st.Version != cur.Version {
		return cur.Version.Less(st.Version)
	}
	return st.Seq > cur.Seq
}

// remoteEntry is what a node knows of a user whose session may be on
// another node: followed while local sessions list the user (pins).
type remoteEntry struct {
	pins   int
	st     *PeerState // nil: not known (offline)
	hide   map[msim.UID]struct{}
	listed map[msim.UID]struct{}
	at     time.Time // when st was set, by this node's clock
}

func (e *remoteEntry) set(st *PeerState) {
	e.st, e.hide, e.listed, e.at = st, setOf(st.Hide), setOf(st.Listed), time.Now()
}

// visibleTo is route.visibleTo for a remote state.
func (e *remoteEntry) visibleTo(viewer msim.UID) bool {
	st := e.st
	return st != nil && st.Online && st.Announced && st.Presence.Status != msim.StatusOffline &&
		!has(e.hide, viewer) && (!st.OnlyList || has(e.listed, viewer))
}

// peerState is ss's state for other nodes. The caller holds r.mu.
func (ss *session) peerState(status bool) *PeerState {
	rt := &ss.rt
	st := &PeerState{
		UID: ss.uid, Version: ss.ver, Seq: ss.seq, Online: true,
		Announced: rt.announced, Presence: rt.presence, OnlyList: rt.showOnlyToList, Status: status,
	}
	st.Hide = appendKeys(appendKeys(nil, rt.blockList), rt.blockRecs)
	if rt.showOnlyToList {
		st.Listed = appendKeys(appendKeys(nil, rt.contacts), rt.allow)
	}
	return st
}

func appendKeys(dst []msim.UID, m map[msim.UID]struct{}) []msim.UID {
	for u := range m {
		if !slices.Contains(dst, u) {
			dst = append(dst, u)
		}
	}
	return dst
}

// peer is the Server's Peer.
type peer struct{ srv *Server }

func (p peer) Deliver(to, from msim.UID, wire []byte, until time.Time) bool {
	srv := p.srv
	typ := bmType(wire)
	if typ != msim.BMIM {
		until = time.Time{}
	}
	ok, late := srv.deliverLiveBy(to, from, wire, false, until)
	if !ok && !late {
		// A login may be registering uid right now: wait for it.
		srv.offlineMu.Lock()
		ok, late = srv.deliverLiveBy(to, from, wire, true, until)
		srv.offlineMu.Unlock()
	}
	if late {
		srv.log.WithFields(logrus.Fields{"to": to, "from": from}).Warn("an IM from another node came past its sender's deadline: not delivered here, its sender stores it")
	}
	if ok {
		srv.metrics.routedIM(typ)
	}
	return ok
}

// bmType reads the type of an encoded bm (\bm\N\…); 0 for a message
// that is not a bm. Routing (Deliver) and the rescue (isStoredIM) know an
// IM by it alike.
func bmType(wire []byte) int {
	if !bytes.HasPrefix(wire, []byte(`\bm\`)) {
		return 0
	}
	n := 0
	for _, c := range wire[4:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func (p peer) Kick(uid msim.UID, by Version) *PeerState {
	old, st := p.srv.reg.kick(uid, by)
	if old != nil {
		old.logger().WithField("node", by.Node).Info("logged in on another node; closing this session")
		old.fatal(msim.ErrCodeElsewhere, textElsewhere)
		old.releaseClaim()
	}
	return st
}

func (p peer) HandOn(uid msim.UID, to Version, st *PeerState) {
	if st == nil || st.UID != uid || !st.Online || !st.Version.Less(to) {
		return
	}
	if pub := p.srv.reg.handOn(uid, to, st); pub != nil {
		p.srv.bus.Publish(pub)
	}
}

func (p peer) State(uid msim.UID) *PeerState { return p.srv.reg.state(uid) }

func (p peer) Mailbox(uid msim.UID) {
	srv := p.srv
	// The session is looked up under offlineMu: a login under way holds
	// it from its take of the mailbox until its session is registered,
	// and an IM stored elsewhere in between must find that session.
	srv.offlineMu.Lock()
	ss := srv.reg.session(uid)
	if ss == nil {
		srv.offlineMu.Unlock()
		return
	}
	stored, err := srv.store.TakeOffline(uid)
	if err != nil {
		srv.offlineMu.Unlock()
		ss.logger().WithError(err).Error("offline messages not taken; they stay stored for the next login")
		return
	}
	handed, restored := 0, false
	for i, om := range stored {
		// A burst, as at a login: bounded by what was stored, not by
		// SendQ, so that a mailbox longer than the queue does not
		// close a session that reads.
		if !ss.enqueueStored(om) {
			// The session closed: the IMs it did not write (these
			// among them) are stored first, then the rest of these.
			ss.restore(stored[i:])
			restored = true
			break
		}
		handed++
	}
	srv.metrics.deliveredFromStorage(handed)
	srv.offlineMu.Unlock()
	if restored && srv.reg.session(uid) != ss {
		// A newer session may have logged in while the restore waited,
		// here or on another node (none is registered here then), and
		// taken the mailbox without these: it gets them now, not at its
		// next login (as a login's restore does).
		srv.storedFor(uid)
	}
}

// storedFor tells uid's live session, wherever it is, that IMs were stored
// for it: here, and in a cluster through the bus to the other nodes (the
// bus does not bring a node its own messages).
func (srv *Server) storedFor(uid msim.UID) {
	if srv.bus != nil {
		srv.bus.Stored(uid)
	}
	peer{srv}.Mailbox(uid)
}

// restore stores again the offline messages a closing session did not
// take, after the IMs its writer did not write (rescueWait), so they stay
// in order. One the store fails is lost, logged and counted (lostIM). The
// caller holds offlineMu, let go while it waits: meanwhile msgs are out
// of the store, and the stores that cap the mailbox count them (held), so
// that its ceilings still hold once they are back. msgs themselves are
// stored again whatever the caps: they were stored within them.
func (s *session) restore(msgs []OfflineMessage) {
	if wait := s.rescueWait(); wait != nil {
		s.srv.hold(s.uid, msgs, 1)
		s.srv.awaitRescue(wait, true)
		s.srv.hold(s.uid, msgs, -1)
	}
	for _, om := range msgs {
		if err := s.srv.store.AddOffline(s.uid, om, OfflineLimits{}); err != nil {
			s.srv.metrics.lostIM(lostRestore)
			s.logger().WithError(err).WithField("from", om.From).Error("a stored IM could not be stored again; it is lost")
		}
	}
}

func (p peer) PeerState(st *PeerState) { p.srv.reg.peerState(st) }

func (p peer) NodeDown(node string) { p.srv.reg.nodeDown(node) }

func (p peer) Gone(uid msim.UID, asked time.Time) { p.srv.reg.gone(uid, asked) }

func (p peer) Fence() {
	srv := p.srv
	srv.mu.Lock()
	conns := make([]*session, 0, len(srv.conns))
	for c := range srv.conns {
		conns = append(conns, c)
	}
	srv.mu.Unlock()
	if len(conns) > 0 {
		srv.log.WithField("sessions", len(conns)).Warn("lost the cluster: closing every session")
	}
	for _, c := range conns {
		c.fatal(ErrCodeNodeLost, textNodeLost)
	}
}

func (p peer) Rescan() {
	for _, uid := range p.srv.reg.uids() {
		p.Mailbox(uid)
	}
}

func (p peer) Alert(uid msim.UID, key string) { p.srv.reg.setAlert(uid, key) }

func (p peer) AlertsTaken(uid msim.UID) { p.srv.reg.dropAlerts(uid) }

// releaseClaim ends the session's Claim on the bus, once.
func (s *session) releaseClaim() {
	if s.claimed.Swap(false) {
		s.srv.bus.Release(s.uid)
	}
}

// claim makes the session's uid this node's on the bus: older sessions
// elsewhere are closed and their presence carried over.
func (s *session) claim() error {
	bus := s.srv.bus
	s.ver = Version{Epoch: time.Now().UnixNano(), Node: bus.Node()}
	s.srv.reg.startClaim(s.uid, s.ver)
	old, err := bus.Claim(s.uid, s.ver)
	if err != nil {
		s.srv.reg.endClaim(s.uid, s.ver)
		return err
	}
	s.claimed.Store(true)
	if old != nil && old.Online {
		s.inherit = old
		s.srv.reg.carry(s.uid, s.ver, old)
	}
	return nil
}
