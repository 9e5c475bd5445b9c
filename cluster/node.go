package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// Config tunes a Node. Zero fields take their defaults.
type Config struct {
	URL     string // NATS server URLs, comma-separated (nats://host:4222,…)
	Name    string // this node's name, in logs and incarnation names; default: the host name
	Subject string // subject prefix, default "msimd"; nodes of one network share it

	// A node sends a heartbeat every Heartbeat (default 1s); one silent for
	// DeadAfter (default 5s) is dead, and its users offline. A node whose
	// own heartbeat has not reached NATS for DeadAfter-Heartbeat closes
	// its sessions, before the others count it dead.
	Heartbeat time.Duration
	DeadAfter time.Duration
	// RequestTimeout bounds a request to another node (default 2s): an IM
	// whose recipient's node does not answer in time is stored offline.
	// An IM carries the deadline its sender waits for, by the sender's
	// clock, and the recipient's node does not deliver it once less than
	// a quarter of RequestTimeout is left by its own clock (lateMargin):
	// node clocks are assumed to agree within that, less the answer's way
	// back (NTP does far better). Beyond it, an IM held up past its
	// deadline may be both delivered and stored; none is lost either way.
	RequestTimeout time.Duration

	Metrics prometheus.Registerer // nil counts nothing
	Options []nats.Option         // after the node's own (user credentials, TLS…)
}

func (c *Config) defaults() error {
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "msimd"
		}
		c.Name = h
	}
	if c.Subject == "" {
		c.Subject = "msimd"
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = time.Second
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Second
	}
	switch {
	case c.URL == "":
		return errors.New("cluster: no NATS URL")
	case !validPrefix(c.Subject):
		return fmt.Errorf("cluster: subject prefix %q is not dot-separated tokens without wildcards", c.Subject)
	case strings.ContainsAny(c.Name, " \t\r\n"):
		return fmt.Errorf("cluster: node name %q has white space", c.Name)
	case c.DeadAfter < 3*c.Heartbeat:
		return fmt.Errorf("cluster: DeadAfter (%v) must be at least three heartbeats (%v)", c.DeadAfter, c.Heartbeat)
	}
	return nil
}

// ErrNotInCluster is the error of Claim and Deliver while the node is cut
// off from the cluster (or closed).
var ErrNotInCluster = errors.New("cluster: this node is not in the cluster (NATS link lost)")

// Shards of the per-user subjects, and the messages each may hold before
// NATS drops them (a slow consumer).
const (
	shardCount = 4
	shardQueue = 8192
	fetchers   = 16 // requests of one Watch, or of a resync, at a time; workers of each makeUpPool
	// A watched user's state fetch left unanswered is made again, after
	// a heartbeat, then twice as long each time, at most fetchTries
	// times (fetchAgain).
	fetchTries = 8
)

// noState is the reply to a kick or a state fetch when there is no state.
var noState = []byte{'-'}

// Node is one msimd node's link to the cluster: a server.Bus over NATS.
// Create it with Connect, give it to server.New (Config.Bus), and Close it
// after the server's Shutdown.
type Node struct {
	cfg     Config
	log     *logrus.Entry
	nc      *nats.Conn
	subj    subjects
	peer    server.Peer // set by Attach
	metrics *metricSet
	shards  []chan *nats.Msg
	done    chan struct{}
	wg      sync.WaitGroup // every goroutine but the shards'
	shardWG sync.WaitGroup
	probes  sync.WaitGroup // the probes for IMs for users no longer here (answerIfHeldNowhere)
	closeMu sync.Once

	mu       sync.Mutex
	inc      string // incarnation: Name plus a random suffix, new after each fence
	attached bool
	fenced   bool
	cutOff   bool // the last heartbeat did not reach NATS
	closed   bool
	live     *liveness
	claims   map[msim.UID]*counted
	watches  map[msim.UID]*counted
	ended    *endings // claims ended lately: see endings
	// Make-ups of messages NATS dropped (see madeUp): those the shards
	// have reached, waiting for a worker (pending); the presence make-ups
	// waiting for a heartbeat to be made again (recheck): those that
	// found their user nowhere, once DeadAfter is over, and those whose
	// state fetch was left unanswered, after a back-off (fetchAgain); and
	// the latter, once due, waiting for a worker of their own (retries),
	// so that a node that leaves every fetch unanswered holds up its own
	// users' fetches, not the make-ups of other nodes' users. One of each
	// at most per subscription held.
	pending *makeUpPool
	retries *makeUpPool
	recheck map[makeUpKey]makeUpJob
	// owed: users of other nodes whose mailbox notices (Stored) NATS did
	// not take while the link was down, sent once it is back (resync).
	owed     map[msim.UID]struct{}
	owedLost int // notices neither sent nor kept, past maxOwed, since owed was last taken (takeOwed)
	// Probes (see answerIfHeldNowhere): one at most per user in probing,
	// with the IMs waiting for it; probeRuns counts those running, the
	// ones a Claim took out of probing too, and probeIMs the IMs they
	// hold. Past maxProbes and maxProbeIMs (tests lower them), IMs are
	// left unanswered (unprobed).
	probing                map[msim.UID]*probe
	probeRuns, probeIMs    int
	maxProbes, maxProbeIMs int
	unprobedWarned         bool // since probeRuns was last zero

	unsentWarned atomic.Bool // a message not sent was logged as a warning since the link was last back (notSent)
	fetchWarned  atomic.Bool // a state fetch given up was logged as a warning since one made again was answered (gaveUp)

	dropMu sync.Mutex
	slow   map[*nats.Subscription]*slowSub // see markSlow

	// hook, set by tests, is called at points where a test orders the
	// steps of several nodes: "claim" as a Claim begins, "kicked" in a
	// Claim once its first kick is answered, before the node subscribes,
	// "claimed" as a Claim returns, "kick again" before a kickAgain's
	// kick, "message" as a shard takes a per-user message, "probe" as a
	// probe begins and "probe joined" once an IM waits for one under way
	// (see answerIfHeldNowhere), and "found nowhere" once a presence
	// make-up's first state fetch found nobody, and "unanswered" once a
	// state fetch left unanswered is made again later, or given up.
	hook atomic.Pointer[func(point string, uid msim.UID)]
}

// counted is a subscription held by n claims or watches.
type counted struct {
	n   int
	sub *nats.Subscription // nil if subscribing failed
	ver server.Version     // of claims: the latest session's
	// Of claims: the latest kick from elsewhere newer than every claim
	// here when it came (zero if none). While it is newer than ver, each
	// login here is closed once done, and the node that kicked answers
	// for uid.
	by server.Version
}

// markSlow notes a subscription on which NATS dropped messages (a slow
// consumer): NATS reports only the first drop of a burst, so the heartbeat
// reads how many the subscription dropped since. Only such subscriptions
// are read, and without n.mu: a node follows many users, nearly all idle.
func (n *Node) markSlow(sub *nats.Subscription) {
	n.dropMu.Lock()
	defer n.dropMu.Unlock()
	if _, ok := n.slow[sub]; !ok {
		n.slow[sub] = &slowSub{}
	}
}

// slowSub is a subscription that reported a slow consumer.
type slowSub struct {
	seen int  // the drops counted so far
	owed bool // dropped messages not yet made up: see makeUp
}

// countSlow counts the messages dropped since the last call on the
// subscriptions that reported a slow consumer, and has them made up.
func (n *Node) countSlow() {
	n.dropMu.Lock()
	subs := make([]*nats.Subscription, 0, len(n.slow))
	for sub := range n.slow {
		subs = append(subs, sub)
	}
	n.dropMu.Unlock()
	for _, sub := range subs {
		n.countDropped(sub, false)
		n.makeUp(sub)
	}
}

// countDropped counts the messages NATS dropped on sub since they were
// last counted, and forgets sub once it is closed. final is for a
// subscription about to be closed: its drops are counted, and owe nothing.
func (n *Node) countDropped(sub *nats.Subscription, final bool) {
	n.at("count dropped", 0)
	d, err := sub.Dropped()
	n.dropMu.Lock()
	defer n.dropMu.Unlock()
	s := n.slow[sub]
	switch {
	case err != nil:
		delete(n.slow, sub)
		return
	case s == nil && !final:
		return // closed meanwhile, its drops counted then
	case s == nil:
		// NATS has not reported its drops yet. Kept until the caller
		// unsubscribes and forgets sub: a report meanwhile finds them
		// counted, and a heartbeat does not count them again.
		s = &slowSub{}
		n.slow[sub] = s
	}
	if d > s.seen {
		n.metrics.dropN(d - s.seen)
		s.seen, s.owed = d, true
	}
	if final {
		s.owed = false
	}
}

// makeUp has the messages NATS dropped on sub made up, if some are owed:
// a mark queued on the shard of sub's user, behind every message of the
// user that NATS did not drop, has the node ask again for what the dropped
// ones would have brought (see madeUp). A full shard takes no mark: it is
// queued at a later heartbeat.
func (n *Node) makeUp(sub *nats.Subscription) {
	uid, err := uidOf(sub.Subject)
	if err != nil {
		return
	}
	n.dropMu.Lock()
	defer n.dropMu.Unlock()
	s := n.slow[sub]
	if s == nil || !s.owed {
		return
	}
	select {
	case n.shard(uid) <- &nats.Msg{Subject: sub.Subject}: // no Sub: a mark
		s.owed = false
	default:
	}
}

// Connect joins the NATS servers of cfg.URL. The node takes part in the
// cluster once server.New has attached it.
func Connect(cfg Config, log *logrus.Entry) (*Node, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	redacted, ok := checkURLs(cfg.URL)
	if !ok {
		return nil, fmt.Errorf("cluster: connect %s: %w", redacted, errMalformedURL)
	}
	n := &Node{
		cfg:     cfg,
		subj:    subjects(cfg.Subject),
		done:    make(chan struct{}),
		inc:     incarnation(cfg.Name),
		claims:  map[msim.UID]*counted{},
		watches: map[msim.UID]*counted{},
		pending: newMakeUpPool(),
		retries: newMakeUpPool(),
		recheck: map[makeUpKey]makeUpJob{},
		// A sender waits at most RequestTimeout, from before the claim
		// ended: past that an answer is of no use to it.
		ended: newEndings(cfg.RequestTimeout, endedKept),
		slow:  map[*nats.Subscription]*slowSub{},
		owed:  map[msim.UID]struct{}{},
		// A probe is a goroutine, and an IM waiting for it holds its
		// sender's request: both bounded, however fast IMs come.
		probing:     map[msim.UID]*probe{},
		maxProbes:   maxProbes,
		maxProbeIMs: maxProbeIMs,
	}
	n.log = log.WithField("node", cfg.Name)
	n.live = newLiveness(cfg.DeadAfter, cfg.DeadAfter-cfg.Heartbeat, time.Now())
	m, err := newMetricSet(cfg.Metrics, n)
	if err != nil {
		return nil, err
	}
	n.metrics = m
	opts := []nats.Option{
		nats.Name("msimd " + cfg.Name),
		nats.NoEcho(), // a node never hears itself: its own kicks, states and beats
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.Heartbeat),
		nats.PingInterval(max(cfg.Heartbeat, cfg.DeadAfter/2)),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.mu.Lock()
			closed := n.closed
			n.mu.Unlock()
			if !closed {
				n.unsentWarned.Store(false) // this outage's first loss is told
				n.log.WithError(err).Warn("NATS link lost; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.unsentWarned.Store(false)
			n.log.WithField("server", connectedURL(c)).Info("NATS link back")
			n.resync()
		}),
		nats.ClosedHandler(func(*nats.Conn) { n.onClosed() }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
				n.markSlow(sub) // its drops are counted by countSlow
			} else {
				n.metrics.drop()
			}
			l := n.log.WithError(err)
			if sub != nil {
				l = l.WithField("subject", sub.Subject)
			}
			l.Warn("NATS error")
		}),
	}
	nc, err := nats.Connect(cfg.URL, append(opts, cfg.Options...)...)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			// It quotes the URL, credentials and all (or what is
			// left of it before a '#'), and maybe a piece of them
			// in its detail: none of it is shown.
			err = errMalformedURL
		}
		return nil, fmt.Errorf("cluster: connect %s: %w", redacted, err)
	}
	n.nc = nc
	return n, nil
}

// errMalformedURL is Connect's error for NATS URLs that do not parse, or
// whose credentials do not parse as credentials (see checkURLs).
var errMalformedURL = errors.New("malformed NATS URL (credentials in a NATS URL must be percent-encoded)")

// redact hides the credentials of URLs like nats://user:pw@host, or
// user:pw@host (nats.go adds the scheme). See checkURLs.
func redact(urls string) string {
	r, _ := checkURLs(urls)
	return r
}

// checkURLs reads comma-separated NATS URLs as nats.go does (each part
// trimmed, nats:// added to one without "://"), and returns them with
// their credentials hidden, and whether each part's credentials are its
// user information, as url.Parse reads it. They may not be: a '#', '/' or
// '?' in them ends the URL's authority before its '@', which leaves the
// rest of the credentials as the host, path, query or fragment (or with
// an '@' in the credentials, the rest of them after it); a ',' in
// them splits the URL in two for nats.go; and a part may not parse at all
// (url.Parse's error quotes it). Of such parts only the scheme is shown.
//
// A ',' in the credentials leaves a part without an '@' (the URL's scheme
// and the credentials' start) and, after it, one with an '@' but no
// scheme; such a pair is taken for a split URL, though nats.go would take
// the parts as two servers, the second one's credentials its own.
func checkURLs(urls string) (redacted string, ok bool) {
	parts := strings.Split(urls, ",")
	bad := make([]bool, len(parts))
	lastAt := -1   // the last part with an '@' so far
	prevAt := true // whether the last part not empty has one (or there is none)
	for i, raw := range parts {
		raw = strings.TrimSpace(raw)
		parts[i] = raw
		if raw == "" {
			continue // nats.go skips it
		}
		at, scheme := strings.Contains(raw, "@"), strings.Contains(raw, "://")
		s := raw
		if !scheme {
			s = "nats://" + raw
		}
		u, err := url.Parse(s)
		bad[i] = err != nil || at && (u.User == nil || strings.Contains(u.Opaque+u.Path+u.RawQuery+u.Fragment, "@"))
		if at && !scheme && !prevAt {
			// The parts since the last with an '@' may be the start
			// of this one's credentials.
			for j := lastAt + 1; j <= i; j++ {
				bad[j] = bad[j] || parts[j] != ""
			}
		}
		if at {
			lastAt = i
		}
		prevAt = at
	}
	ok = true
	for i, raw := range parts {
		scheme := ""
		if s, _, found := strings.Cut(raw, "://"); found && isScheme(s) {
			scheme = s + "://"
		}
		switch {
		case bad[i]:
			parts[i], ok = scheme+"…", false
		case strings.Contains(raw, "@"):
			parts[i] = scheme + "…" + raw[strings.LastIndexByte(raw, '@'):]
		}
	}
	return strings.Join(parts, ","), ok
}

// connectedURL names the NATS server c is connected to, without the
// credentials: nats.go's ConnectedUrlRedacted hides a password, not a
// token.
func connectedURL(c *nats.Conn) string {
	u, err := url.Parse(c.ConnectedUrl())
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}

// isScheme reports whether s is a URL scheme (RFC 3986), not part of the
// credentials.
func isScheme(s string) bool {
	for i, c := range s {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func incarnation(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// Attach starts the node's part in the cluster (server.New calls it).
func (n *Node) Attach(p server.Peer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attached || n.closed {
		return
	}
	n.attached, n.peer = true, p
	for range shardCount {
		ch := make(chan *nats.Msg, shardQueue)
		n.shards = append(n.shards, ch)
		n.shardWG.Add(1)
		go n.drain(ch)
	}
	for subj, h := range map[string]nats.MsgHandler{
		n.subj.heartbeat(): n.onHeartbeat,
		n.subj.fence():     n.onFence,
		n.subj.alert():     n.onAlert,
	} {
		if _, err := n.nc.Subscribe(subj, h); err != nil {
			n.log.WithError(err).WithField("subject", subj).Error("subscribe")
		}
	}
	n.wg.Add(1)
	go n.heartbeats()
	n.log.WithFields(logrus.Fields{"nats": connectedURL(n.nc), "incarnation": n.inc}).Info("joined the cluster")
}

// Node returns the current incarnation name.
func (n *Node) Node() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inc
}

// Check is a readiness probe: nil while the node is in the cluster.
func (n *Node) Check(context.Context) error {
	if !n.ready() {
		return ErrNotInCluster
	}
	return nil
}

func (n *Node) ready() bool {
	n.mu.Lock()
	ok := n.attached && !n.fenced && !n.closed
	n.mu.Unlock()
	return ok && n.nc.IsConnected()
}

func (n *Node) peerCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.live.count()
}

// Close says goodbye to the other nodes and leaves NATS. Call it after the
// server's Shutdown, whose logouts it lets reach the other nodes first.
// The per-user messages that reached the node before it stopped taking
// them are answered first: a claimer is not left to time out on a kick.
func (n *Node) Close() error {
	n.closeMu.Do(func() {
		n.mu.Lock()
		n.closed = true
		inc, attached := n.inc, n.attached
		for _, table := range []map[msim.UID]*counted{n.claims, n.watches} {
			for _, c := range table {
				if c.sub != nil {
					_ = c.sub.Unsubscribe()
					c.sub = nil
				}
			}
		}
		n.mu.Unlock()
		if attached && n.nc.IsConnected() {
			// Once NATS has the unsubscriptions, what it sent before
			// them is in the shards, which take it all before they stop.
			n.flush()
		}
		close(n.done)
		n.shardWG.Wait()
		n.probes.Wait()
		if attached && n.nc.IsConnected() {
			n.publish(kindHeartbeat, n.subj.heartbeat(), encodeJSON(opBye, beat{Node: inc}))
			if err := n.nc.FlushTimeout(n.cfg.RequestTimeout); err != nil {
				n.log.WithError(err).Warn("goodbye not flushed")
			}
		}
		n.nc.Close()
		n.wg.Wait()
	})
	return nil
}

// Cut drops the NATS link at once, with no goodbye: for tests of what the
// other nodes see when a node dies. The node fences itself.
func (n *Node) Cut() { n.nc.Close() }

func (n *Node) onClosed() {
	n.mu.Lock()
	closing := n.closed || !n.attached
	fence := !closing && !n.fenced
	n.fenced = n.fenced || fence
	n.mu.Unlock()
	if fence {
		n.fence("the NATS connection is closed")
	}
}

func (n *Node) fence(why string) {
	n.metrics.fenced()
	n.log.WithField("reason", why).Warn("out of the cluster: closing every session")
	n.peer.Fence()
}

// publish sends data on subject and reports whether NATS took it (while
// the link is down, into its reconnect buffer, which is bounded).
func (n *Node) publish(kind, subject string, data []byte) bool {
	n.metrics.sent(kind)
	if err := n.nc.Publish(subject, data); err != nil {
		n.notSent(err, subject)
		return false
	}
	return true
}

// request sends a request and measures its round trip, or counts it
// unanswered.
func (n *Node) request(kind, subject string, data []byte) (*nats.Msg, error) {
	n.metrics.sent(kind)
	t0 := time.Now()
	m, err := n.nc.Request(subject, data, n.cfg.RequestTimeout)
	switch {
	case err == nil:
		n.metrics.roundTrip(kind, time.Since(t0))
	case errors.Is(err, nats.ErrTimeout):
		n.metrics.noAnswer(kind)
	}
	return m, err
}

func (n *Node) respond(m *nats.Msg, data []byte) {
	n.metrics.sent(kindReply)
	switch err := m.Respond(data); {
	case errors.Is(err, nats.ErrMsgNoReply):
		n.log.WithField("subject", m.Subject).Debug("a request without a reply subject is not answered")
	case err != nil:
		// The asker times out: an IM is stored by its sender (maybe
		// delivered here too), a kick or a state fetch finds nothing.
		n.notSent(err, m.Reply)
	}
}

// notSent counts a message or reply NATS did not take, and logs it: as a
// warning the first time until the link is back (while it is down, every
// message fails alike), then at debug level.
func (n *Node) notSent(err error, subject string) {
	n.metrics.notSent()
	log := n.log.WithError(err).WithField("subject", subject)
	if !linkDown(err) {
		// Not the link's: this message alone (too large, a bad
		// subject), and no outage to wait out.
		log.Warn("NATS message not sent")
		return
	}
	if n.unsentWarned.CompareAndSwap(false, true) {
		log.Warn("NATS message not sent (the link is down and its buffer full, or closed); the next ones are counted until it is back")
		return
	}
	log.Debug("NATS message not sent")
}

// linkDown reports whether a publish failed for the link's sake (down
// with its reconnect buffer full, or closed), as every publish does until
// it is back.
func linkDown(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionDraining)
}

// shard is the channel of uid's per-user subjects.
func (n *Node) shard(uid msim.UID) chan *nats.Msg { return n.shards[int(uid)%len(n.shards)] }

// Claim implements server.Bus: kick older sessions of uid elsewhere, then
// answer for uid.
func (n *Node) Claim(uid msim.UID, v server.Version) (*server.PeerState, error) {
	if !n.ready() {
		return nil, ErrNotInCluster
	}
	n.at("claim", uid)
	n.mu.Lock()
	n.ended.forget(uid) // what ended here before this claim is over
	// A probe under way looked before this claim: an IM taken after the
	// claim ends may have been sent since, when another node may hold
	// uid, and waits for a probe of its own.
	delete(n.probing, uid)
	n.mu.Unlock()
	old, newer := n.kick(uid, v)
	if old != nil {
		// Before this node answers for uid: a later login's kick finds
		// the state here, instead of nothing while it is on its way.
		n.peer.HandOn(uid, v, old)
	}
	n.at("kicked", uid)
	n.mu.Lock()
	c, fresh := n.hold(n.claims, uid, n.subj.user(uid))
	c.n++
	if c.ver.Less(v) {
		c.ver = v
	}
	if newer != nil {
		// The first kick learnt of a later login elsewhere before there
		// was a claim here to note it on: noted before this node's
		// answers for uid can read it.
		c.supersede(*newer)
	}
	n.mu.Unlock()
	if fresh {
		n.flush()
		// A login of uid on another node at the same moment may have
		// kicked before this node subscribed, as this one did before it
		// subscribed: both found nobody. Kicked again now, with this
		// node subscribed, whichever of the two kicks comes second
		// reaches the other node, and the older session goes.
		again, later := n.kick(uid, v)
		if old == nil {
			old = again
		}
		if later != nil && (newer == nil || newer.Less(*later)) {
			newer = later
		}
	}
	if old != nil && newer != nil {
		// This login is closed once done: the state it took over goes
		// on to the newer one, which claimed uid while it was on its
		// way here and so found nothing to take over.
		n.handOn(uid, *newer, old)
	}
	n.at("claimed", uid)
	return old, nil
}

// handOn gives st, the state of uid's session closed for this node's
// login, to the newer login of uid at version to elsewhere, and waits for
// an answer (bounded by RequestTimeout).
func (n *Node) handOn(uid msim.UID, to server.Version, st *server.PeerState) {
	_, err := n.request(kindHandOn, n.subj.user(uid), encodeJSON(opHandOn, handOnMsg{To: to, State: st}))
	if err != nil && !errors.Is(err, nats.ErrNoResponders) {
		n.log.WithError(err).WithField("uid", uid).Warn("state handed on not acknowledged")
	}
}

// kick asks the node of uid's session elsewhere to close it if it is older
// than v, and returns its state. A node whose session is newer kicks back:
// this node's sessions of uid older than that one are closed, as its own
// claim would have closed them had it reached this node (the state of one
// closed is handed on to it), and that session's version is returned.
//
// Every node that answers for uid gets the kick, and answers it; one with
// no session (a login under way, a session just ended) answers with
// nothing, and that answer may come first. So the answers are read until
// one that carries something (a state, or a newer session), every other
// node has answered, or RequestTimeout; but only kickGrace past the
// first answer of nothing, since a node that holds no claim of uid hears
// no kick and never answers.
func (n *Node) kick(uid msim.UID, v server.Version) (*server.PeerState, *server.Version) {
	log := n.log.WithField("uid", uid)
	inbox := n.nc.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		log.WithError(err).Warn("kick of an older session not sent")
		return nil, nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	n.metrics.sent(kindKick)
	t0 := time.Now()
	if err := n.nc.PublishRequest(n.subj.user(uid), inbox, encodeJSON(opKick, v)); err != nil {
		log.WithError(err).Warn("kick of an older session not sent")
		return nil, nil
	}
	deadline := t0.Add(n.cfg.RequestTimeout)
	for answers := 0; ; answers++ {
		left := time.Until(deadline)
		if left <= 0 {
			err = nats.ErrTimeout
		} else {
			var m *nats.Msg
			m, err = sub.NextMsg(left)
			if err == nil {
				if answers == 0 {
					n.metrics.roundTrip(kindKick, time.Since(t0))
				}
				if !bytes.Equal(m.Data, noState) {
					return n.kicked(uid, v, m.Data)
				}
				if answers+1 >= n.peerCount() {
					return nil, nil
				}
				if grace := time.Now().Add(kickGrace(n.cfg.RequestTimeout)); answers == 0 && grace.Before(deadline) {
					deadline = grace
				}
				continue
			}
		}
		if answers == 0 && errors.Is(err, nats.ErrTimeout) {
			n.metrics.noAnswer(kindKick)
		}
		if answers == 0 && !errors.Is(err, nats.ErrNoResponders) {
			log.WithError(err).Warn("kick of an older session not answered")
		}
		return nil, nil
	}
}

// lateMargin is how long before its sender's deadline an IM from another
// node is no longer delivered: it covers the skew of the two nodes' clocks
// and the answer's way back (see Config.RequestTimeout).
func lateMargin(timeout time.Duration) time.Duration { return timeout / 4 }

// kickGrace is how long a kick waits, after an answer of nothing, for one
// that carries the state: a tenth of the request timeout, at most 250 ms.
func kickGrace(timeout time.Duration) time.Duration {
	return min(timeout/10, 250*time.Millisecond)
}

// kicked reads an answer to a kick of uid for version v that carries
// something: see kick.
func (n *Node) kicked(uid msim.UID, v server.Version, data []byte) (*server.PeerState, *server.Version) {
	if len(data) > 0 && data[0] == opKick {
		newer, err := decodeVersion(data[1:])
		if err != nil || !v.Less(newer) {
			n.badReply("kick", uid, errBadMessage)
			return nil, nil
		}
		n.kickedBy(uid, newer) // this node leaves uid's IMs to that login's
		if st := n.peer.Kick(uid, newer); st != nil {
			// The state of the session closed here (or the one a
			// login here took over) goes on to the newer login.
			n.handOn(uid, newer, st)
		}
		n.noteKicked(uid)
		return nil, &newer
	}
	old, err := decodeState(data, uid)
	if err != nil {
		n.badReply("kick", uid, err)
	}
	return old, nil
}

// badReply counts and logs an answer to a request about uid that does not
// read, as bad counts a message.
func (n *Node) badReply(kind string, uid msim.UID, err error) {
	n.metrics.drop()
	n.log.WithError(err).WithField("uid", uid).Warn("bad " + kind + " reply")
}

// at calls the test hook, if any.
func (n *Node) at(point string, uid msim.UID) {
	if h := n.hook.Load(); h != nil {
		(*h)(point, uid)
	}
}

// claimedAfter returns the latest version of uid claimed here if it is
// newer than v.
func (n *Node) claimedAfter(uid msim.UID, v server.Version) (server.Version, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.claims[uid]; c != nil && v.Less(c.ver) {
		return c.ver, true
	}
	return server.Version{}, false
}

// hold returns the subscription of uid in table, subscribing subject if
// there is none. The caller holds n.mu.
func (n *Node) hold(table map[msim.UID]*counted, uid msim.UID, subject string) (*counted, bool) {
	if c := table[uid]; c != nil {
		return c, false
	}
	c := &counted{}
	sub, err := n.nc.ChanSubscribe(subject, n.shard(uid))
	if err != nil {
		n.log.WithError(err).WithField("subject", subject).Warn("subscribe failed")
	} else {
		_ = sub.SetPendingLimits(-1, -1) // the shard channel is the limit
		c.sub = sub
	}
	table[uid] = c
	return c, true
}

// drop undoes one hold of uid's presence subject (presence) or user
// subject, and reports whether it was the last. The caller holds n.mu.
func (n *Node) drop(presence bool, uid msim.UID) bool {
	table := n.table(presence)
	c := table[uid]
	if c == nil {
		return false
	}
	if c.n--; c.n > 0 {
		return false
	}
	delete(table, uid)
	k := makeUpKey{uid, presence}
	delete(n.pending.jobs, k)
	delete(n.retries.jobs, k)
	delete(n.recheck, k)
	if c.sub != nil {
		n.countDropped(c.sub, true) // before it is closed, when its count is lost
		_ = c.sub.Unsubscribe()
		n.dropMu.Lock()
		delete(n.slow, c.sub)
		n.dropMu.Unlock()
	}
	return true
}

// table is the table of the subscriptions to presence subjects (presence)
// or to user subjects. The caller holds n.mu.
func (n *Node) table(presence bool) map[msim.UID]*counted {
	if presence {
		return n.watches
	}
	return n.claims
}

// flush makes sure NATS has the subscriptions made so far.
func (n *Node) flush() {
	if err := n.nc.FlushTimeout(n.cfg.RequestTimeout); err != nil {
		n.log.WithError(err).Debug("flush failed")
	}
}

// Release implements server.Bus.
func (n *Node) Release(uid msim.UID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.drop(false, uid) {
		n.ended.note(uid, time.Now(), false)
	}
}

// noteKicked notes that uid's session here was taken over by another
// node's: that node answers the IMs for uid.
func (n *Node) noteKicked(uid msim.UID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ended.note(uid, time.Now(), true)
}

// endedHere reports whether an IM for uid, which has no session nor claim
// here, came for a session that ended here, not taken over by another
// node: the node is closing (the shutdown ended its sessions), or uid
// logged out here lately.
func (n *Node) endedHere(uid msim.UID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed || n.ended.loggedOut(uid, time.Now())
}

// heldNowhere reports whether no other node answers for uid: a state
// fetch finds nobody.
func (n *Node) heldNowhere(uid msim.UID) bool {
	_, err := n.request(kindState, n.subj.user(uid), []byte{opState})
	return errors.Is(err, nats.ErrNoResponders)
}

func (n *Node) holds(uid msim.UID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.claims[uid] != nil
}

// answersFor reports whether an IM for uid that no session here took is
// this node's to answer "not taken": it holds a claim of uid (a login
// under way, a session ending) that no later login elsewhere has kicked.
// A node whose every claim of uid is older than such a kick leaves the
// IM to that login's node: its "not taken", read first, would have the
// sender store an IM that node delivered.
func (n *Node) answersFor(uid msim.UID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.claims[uid]
	return c != nil && !c.ver.Less(c.by)
}

// answering returns the version of uid's latest claim here while this
// node follows uid's subject and no login elsewhere supersedes that claim.
func (n *Node) answering(uid msim.UID) (server.Version, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.claims[uid]
	if n.closed || c == nil || c.sub == nil || c.ver.Less(c.by) {
		return server.Version{}, false
	}
	return c.ver, true
}

// kickedBy notes a kick of uid from a login elsewhere at version v: if it
// is newer than every claim of uid here, those logins are closed once
// done (answersFor).
func (n *Node) kickedBy(uid msim.UID, v server.Version) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.claims[uid]; c != nil {
		c.supersede(v)
	}
}

// supersede notes on c, a claim, a login elsewhere at version v: if it is
// newer than every claim of c's user here, those logins are closed once
// done, and v's node answers for the user. The caller holds n.mu.
func (c *counted) supersede(v server.Version) {
	if c.ver.Less(v) && c.by.Less(v) {
		c.by = v
	}
}

// Deliver implements server.Bus.
func (n *Node) Deliver(to, from msim.UID, wire []byte) (bool, error) {
	if !n.ready() {
		return false, ErrNotInCluster
	}
	// The deadline is taken before the request's own timer starts: the
	// sender stores the IM only after it.
	deadline := time.Now().Add(n.cfg.RequestTimeout)
	m, err := n.request(kindDeliver, n.subj.user(to), encodeDeliver(deadline, from, wire))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("cluster: deliver to %d: %w", to, err)
	case bytes.Equal(m.Data, replyTaken):
		return true, nil
	case bytes.Equal(m.Data, replyNotTaken):
		return false, nil
	}
	// Not known to be taken: the sender stores the IM (a duplicate if it
	// was delivered, never a loss), and logs the error.
	n.metrics.drop()
	return false, fmt.Errorf("cluster: deliver to %d: the answer is neither taken nor not taken: %w", to, errBadMessage)
}

// Publish implements server.Bus.
func (n *Node) Publish(st *server.PeerState) {
	n.publish(kindPresence, n.subj.presence(st.UID), encodeState(st))
}

// Watch implements server.Bus.
func (n *Node) Watch(uids []msim.UID) {
	if len(uids) == 0 {
		return
	}
	fresh := false
	n.mu.Lock()
	for _, u := range uids {
		c, f := n.hold(n.watches, u, n.subj.presence(u))
		c.n++
		fresh = fresh || f
	}
	n.mu.Unlock()
	if fresh {
		n.flush() // subscribed before fetching: no change falls in between
	}
	n.fetch(uids, makeUpJob{})
}

// fetch asks the nodes of uids for their states, and returns the uids
// found connected nowhere. A fetch left unanswered is made again later,
// as the make-up job (see fetchOne).
func (n *Node) fetch(uids []msim.UID, job makeUpJob) []msim.UID {
	var mu sync.Mutex
	var nowhere []msim.UID
	each(uids, func(uid msim.UID) {
		if n.fetchOne(uid, job) {
			mu.Lock()
			nowhere = append(nowhere, uid)
			mu.Unlock()
		}
	})
	return nowhere
}

// refetch fetches the states of uids after the NATS link came back: a
// logout meanwhile may have been missed. A user found connected nowhere
// may only be on a node that lost the link too and has not resubscribed
// yet, so they are asked for again once such a node is either back or
// dead (DeadAfter); those still connected nowhere are gone (Peer.Gone).
func (n *Node) refetch(uids []msim.UID) {
	asked := time.Now()
	nowhere := n.fetch(uids, makeUpJob{})
	if len(nowhere) == 0 {
		return
	}
	select {
	case <-time.After(n.cfg.DeadAfter):
	case <-n.done:
		return
	}
	for _, uid := range n.fetch(nowhere, makeUpJob{again: true, asked: asked}) {
		n.peer.Gone(uid, asked)
	}
}

// each calls fn for every uid, a few at a time.
func each(uids []msim.UID, fn func(msim.UID)) {
	if len(uids) == 1 {
		fn(uids[0])
		return
	}
	sem := make(chan struct{}, fetchers)
	var wg sync.WaitGroup
	for _, u := range uids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(u)
		}()
	}
	wg.Wait()
}

// fetchOne asks the node of uid for its state, and reports whether uid
// was found connected nowhere. A fetch left unanswered in time is made
// again later, as the make-up job (fetchAgain): for a first fetch, an
// empty one.
func (n *Node) fetchOne(uid msim.UID, job makeUpJob) (nowhere bool) {
	if !n.ready() {
		return false
	}
	m, err := n.request(kindState, n.subj.user(uid), []byte{opState})
	if job.tries > 0 && (err == nil || errors.Is(err, nats.ErrNoResponders)) {
		n.fetchWarned.Store(false) // a node answers again
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return true
	case errors.Is(err, nats.ErrTimeout):
		// Not "nobody holds uid": its node is slow, or the answer was
		// lost. Any other error is the link's, and its return fetches
		// every watched user again (resync).
		n.fetchAgain(uid, job)
		return false
	case err != nil:
		n.log.WithError(err).WithField("uid", uid).Debug("state not fetched")
		return false
	case bytes.Equal(m.Data, noState):
		return false
	}
	st, err := decodeState(m.Data, uid)
	if err != nil {
		n.badReply("state", uid, err)
		return false
	}
	n.peer.PeerState(st)
	return false
}

// fetchAgain has uid's state fetched again, as the make-up job, after a
// fetch of it was left unanswered (uid's node slow, or the answer lost):
// the watchers here would otherwise be left with uid offline, or in a
// state since changed, until it changes again. The fetch waits for the
// heartbeat after a back-off, a heartbeat doubled at each try, so that a
// node stuck for good costs a fetch per user now and then; after
// fetchTries it is given up (gaveUp). A user no longer watched is not
// fetched again, and one whose make-up is queued or waiting already is
// left to it: at most one waits per watched user.
func (n *Node) fetchAgain(uid msim.UID, job makeUpJob) {
	defer n.at("unanswered", uid) // once n.mu is unlocked
	k := makeUpKey{uid, true}
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.watches[uid]
	_, queued := n.queued(k)
	_, waiting := n.recheck[k]
	switch {
	case n.closed || c == nil || c.sub == nil || queued || waiting:
		return
	case job.tries >= fetchTries:
		n.gaveUp(uid)
		return
	}
	job.due = time.Now().Add(n.cfg.Heartbeat << job.tries)
	job.tries++
	n.recheck[k] = job
}

// gaveUp counts a watched user whose state fetches were all left
// unanswered, and logs it as a warning once until a fetch made again is
// answered: a node stuck leaves all its users unanswered at once.
func (n *Node) gaveUp(uid msim.UID) {
	n.metrics.gaveUp()
	log := n.log.WithField("uid", uid)
	if n.fetchWarned.CompareAndSwap(false, true) {
		log.Warn("state of a watched user not fetched: its node leaves every fetch unanswered, and its watchers here keep the state they knew until it changes; the next users given up are counted")
		return
	}
	log.Debug("state of a watched user not fetched")
}

// Unwatch implements server.Bus.
func (n *Node) Unwatch(uids []msim.UID) {
	if len(uids) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range uids {
		n.drop(true, u)
	}
}

// Stored implements server.Bus. A notice NATS did not take is owed
// (owe), and sent once the link is back.
func (n *Node) Stored(uid msim.UID) {
	if !n.publish(kindMailbox, n.subj.user(uid), []byte{opMailbox}) {
		n.owe(uid)
	}
}

// maxOwed bounds the mailbox notices kept while the link is down.
const maxOwed = 1 << 16

// owe keeps uid's mailbox notice, which NATS did not take, for resync to
// send: the IM is in the store, but a session of uid on another node
// would otherwise get it only at its next login.
func (n *Node) owe(uid msim.UID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if _, ok := n.owed[uid]; !ok && len(n.owed) >= maxOwed {
		// Logged once until the link is back, not once a notice: the
		// others are counted, and their number logged then (takeOwed).
		if n.owedLost++; n.owedLost == 1 {
			n.log.WithField("uid", uid).Error("a notice of an IM stored is neither sent nor kept (too many kept while the link is down): its recipient gets the IM at their next login; the next ones are counted until the link is back")
		}
		return
	}
	n.owed[uid] = struct{}{}
}

// takeOwed returns the mailbox notices owed, for sendOwed, leaves none
// owed, and logs how many were neither sent nor kept since it last ran.
// The caller holds n.mu.
func (n *Node) takeOwed() map[msim.UID]struct{} {
	owed := n.owed
	n.owed = map[msim.UID]struct{}{}
	if n.owedLost > 0 {
		n.log.WithField("notices", n.owedLost).Error("notices of IMs stored were neither sent nor kept while the link was down: their recipients get the IMs at their next login")
		n.owedLost = 0
	}
	return owed
}

// sendOwed sends the mailbox notices owed (owe); those NATS does not take
// now are owed again.
func (n *Node) sendOwed(owed map[msim.UID]struct{}) {
	for uid := range owed {
		n.Stored(uid)
	}
}

// Alert implements server.Bus.
func (n *Node) Alert(uid msim.UID, key string) {
	n.publish(kindAlert, n.subj.alert(), encodeJSON(opAlert, alertMsg{UID: uid, Key: key, Node: n.Node()}))
}

// AlertsTaken implements server.Bus.
func (n *Node) AlertsTaken(uid msim.UID) {
	n.publish(kindAlert, n.subj.alert(), encodeJSON(opAlertTaken, alertMsg{UID: uid, Node: n.Node()}))
}

// resync runs after the NATS link came back: local users may have logged
// in elsewhere, states may have changed and IMs been stored for local users
// meanwhile.
func (n *Node) resync() {
	n.mu.Lock()
	if n.closed || !n.attached {
		n.mu.Unlock()
		return
	}
	claimed := make(map[msim.UID]server.Version, len(n.claims))
	for u, c := range n.claims {
		claimed[u] = c.ver
	}
	uids := make([]msim.UID, 0, len(n.watches))
	for u := range n.watches {
		uids = append(uids, u)
	}
	owed := n.takeOwed()
	n.wg.Add(2)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer n.recoverAndLog()
		n.sendOwed(owed)
		n.reclaim(claimed)
		n.peer.Rescan() // stored IMs go to the sessions the kicks left
	}()
	go func() { // beside the kicks: watchers do not wait for a node's every user
		defer n.wg.Done()
		defer n.recoverAndLog()
		n.refetch(uids)
	}()
}

// reclaim kicks again for the users claimed here, each with its latest
// version: a login elsewhere while the link was down found nobody to kick,
// and of two sessions of a user the older must go, here or there. Where an
// older session is closed, that node's watchers are left with its state, as
// at a login (whose session inherits it); this node's session did not, so
// its own state is published again.
func (n *Node) reclaim(claimed map[msim.UID]server.Version) {
	uids := make([]msim.UID, 0, len(claimed))
	for u := range claimed {
		uids = append(uids, u)
	}
	each(uids, func(uid msim.UID) { n.kickFor(uid, claimed[uid]) })
}

// kickFor kicks the sessions of uid elsewhere older than this node's, at
// version v, and publishes this node's state again if one was closed (its
// node's watchers were left with that session's state).
func (n *Node) kickFor(uid msim.UID, v server.Version) {
	if !n.ready() {
		return
	}
	old, _ := n.kick(uid, v)
	if old == nil {
		return
	}
	// The closed session may be a login that carried the state of one
	// before it: this node's session at v takes it if it has none yet.
	n.peer.HandOn(uid, v, old)
	if st := n.peer.State(uid); st != nil {
		n.Publish(st)
	}
}

// kickAgain kicks, in the background, for this node's session of uid at
// version newer, after a node with an older one asked to kick it. A kick
// reads the answers only up to the first that carries something: with
// three nodes or more the asker may have taken another older session's
// state first and kept its own, which this kick, reaching every node that
// holds uid, closes.
func (n *Node) kickAgain(uid msim.UID, newer server.Version) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || !n.attached {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.recoverAndLog()
		n.at("kick again", uid)
		n.kickFor(uid, newer)
	}()
}

func (n *Node) recoverAndLog() {
	if r := recover(); r != nil {
		n.log.WithField("panic", r).Errorf("cluster goroutine panicked\n%s", debug.Stack())
	}
}
