// The bridge's Prometheus metrics. The hooks in the rest of the package
// are one call each on the Bridge's *bridgeMetrics, which is nil without
// Config.Metrics: every method then returns at once.

package channel

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/metrics"
	"github.com/msimircd/msimircd/msim"
)

// Label values of the direction label.
const (
	toMSIM = "to_msim"
	toIRC  = "to_irc"
)

// stateLabel is an account's link state as the accounts gauge names it.
var stateLabel = map[linkState]string{
	linkDown:       "offline",
	linkConnecting: "connecting",
	linkUp:         "online",
	linkWaiting:    "retrying",
	linkStopped:    "stopped",
}

// Login results (the result label of msimircd_msim_logins_total).
const (
	loginOK             = "ok"
	loginBadPassword    = "bad_password"
	loginUnknownAccount = "unknown_account"
	loginNoUserName     = "no_user_name"
	loginKicked         = "kicked"
	loginServerError    = "server_error"
	loginTimeout        = "timeout"
	loginNetwork        = "network"
)

var loginResults = []string{loginOK, loginBadPassword, loginUnknownAccount, loginNoUserName, loginKicked, loginServerError, loginTimeout, loginNetwork}

// loginResult names the result of an MSIM login from its error.
func loginResult(err error) string {
	var le *msim.LoginError
	var ne net.Error
	switch {
	case err == nil:
		return loginOK
	case errors.Is(err, msim.ErrBadPassword):
		return loginBadPassword
	case errors.Is(err, msim.ErrUnknownAccount):
		return loginUnknownAccount
	case errors.Is(err, msim.ErrNoUserName), errors.Is(err, msim.ErrUserNameTaken):
		return loginNoUserName
	case errors.Is(err, msim.ErrLoggedInElsewhere):
		return loginKicked
	case errors.As(err, &le):
		return loginServerError
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, msim.ErrTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return loginTimeout
	}
	return loginNetwork
}

// lostLabel names why a logged-in link ended (the reason label of
// msimircd_msim_links_lost_total).
var lostLabel = map[msim.DisconnectReason]string{
	msim.DisconnectNetwork:     "network",
	msim.DisconnectKicked:      "kicked",
	msim.DisconnectServerError: "server_error",
	msim.DisconnectTimeout:     "timeout",
	msim.DisconnectClosed:      "closed",
	msim.DisconnectOverflow:    "overflow",
}

// bridgeMetrics are the bridge's collectors.
type bridgeMetrics struct {
	attached prometheus.Gauge
	accounts map[linkState]prometheus.Gauge
	// IMs and zaps bridged, by direction: each counter resolved once, as
	// they are counted per IM.
	imsToMSIM, imsToIRC   prometheus.Counter
	zapsToMSIM, zapsToIRC prometheus.Counter
	typing                map[string]prometheus.Counter
	presence              map[string]prometheus.Counter
	logins                *prometheus.CounterVec
	linksLost             *prometheus.CounterVec
	reconnect             prometheus.Counter
	queued                prometheus.Counter
	held                  prometheus.Counter
	refused               prometheus.Counter
	dropped               prometheus.Counter
	history               map[string]prometheus.Counter // by historyKinds
	histDrop              prometheus.Counter
	histQueue             prometheus.Gauge
}

// historyDropped counts an entry left out of the history.
func (m *bridgeMetrics) historyDropped() {
	if m != nil {
		m.histDrop.Inc()
	}
}

// historyDroppedN counts n entries left out of the history at once.
func (m *bridgeMetrics) historyDroppedN(n int) {
	if m != nil && n > 0 {
		m.histDrop.Add(float64(n))
	}
}

// historyQueued moves the count of entries waiting for the history's
// writer by delta.
func (m *bridgeMetrics) historyQueued(delta int) {
	if m != nil {
		m.histQueue.Add(float64(delta))
	}
}

// historyKinds label msimircd_history_queries_total.
var historyKinds = []string{"chathistory", "targets", "read_marker", "replay", "command"}

// historyQuery counts a read of the history of kind (historyKinds).
func (m *bridgeMetrics) historyQuery(kind string) {
	if m != nil {
		m.history[kind].Inc()
	}
}

func newBridgeMetrics(reg prometheus.Registerer) *bridgeMetrics {
	if reg == nil {
		return nil
	}
	counter := func(name, help string) prometheus.Counter {
		return metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
	}
	byDirection := func(name, help string) map[string]prometheus.Counter {
		v := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"direction"}))
		return map[string]prometheus.Counter{toMSIM: v.WithLabelValues(toMSIM), toIRC: v.WithLabelValues(toIRC)}
	}
	ims := byDirection("msimircd_ims_bridged_total", "IMs bridged: sent to MSIM, or written to the IRC client.")
	zaps := byDirection("msimircd_zaps_total", "Zaps bridged: sent to MSIM, or written to the IRC client.")
	m := &bridgeMetrics{
		attached: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "msimircd_users_attached",
			Help: "Users with at least one IRC connection attached to their session.",
		})),
		imsToMSIM:  ims[toMSIM],
		imsToIRC:   ims[toIRC],
		zapsToMSIM: zaps[toMSIM],
		zapsToIRC:  zaps[toIRC],
		typing:     byDirection("msimircd_typing_total", "Typing notifications bridged: sent to MSIM, or handed to an IRC client with message-tags."),
		presence:   byDirection("msimircd_presence_updates_total", "Presence updates: the user's status set on MSIM, or a buddy's status change shown on IRC."),
		logins: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msimircd_msim_logins_total",
			Help: "MSIM logins of the gateway's accounts, by result.",
		}, []string{"result"})),
		linksLost: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msimircd_msim_links_lost_total",
			Help: "Logged-in MSIM links that ended without the gateway closing them, by reason.",
		}, []string{"reason"})),
		reconnect: counter("msimircd_msim_reconnects_total", "Automatic MSIM reconnection attempts after a failure."),
		queued:    counter("msimircd_ims_queued_total", "IMs typed on IRC while the MSIM link was down, queued to be sent when it is back."),
		held:      counter("msimircd_ims_held_total", "IMs and zaps from MSIM held for the user's next IRC connection (they did not reach the IRC client)."),
		refused:   counter("msimircd_ims_refused_total", "IMs typed on IRC that were not taken (link stopped, queue full, MSIM refused the send); the user got a notice."),
		dropped:   counter("msimircd_ims_dropped_total", "IMs taken (queued, or from MSIM) and then lost; the user got a notice."),
	}
	hv := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimircd_history_queries_total",
		Help: "Reads of the history: CHATHISTORY, CHATHISTORY TARGETS, MARKREAD, the replay to a client without chathistory, the history command.",
	}, []string{"kind"}))
	m.histDrop = counter("msimircd_history_dropped_total", "IMs left out of the history: the store failed, or was too far behind (the IMs were delivered).")
	m.histQueue = metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "msimircd_history_queued",
		Help: "History entries waiting for the history's writer or being written (in batches, at low priority).",
	}))
	m.history = map[string]prometheus.Counter{}
	for _, k := range historyKinds {
		m.history[k] = hv.WithLabelValues(k)
	}
	states := metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "msimircd_msim_accounts",
		Help: "MSIM accounts of attached users, by the state of their link.",
	}, []string{"state"}))
	m.accounts = map[linkState]prometheus.Gauge{}
	for st, l := range stateLabel {
		m.accounts[st] = states.WithLabelValues(l)
	}
	for _, r := range loginResults {
		m.logins.WithLabelValues(r)
	}
	for _, r := range lostLabel {
		m.linksLost.WithLabelValues(r)
	}
	return m
}

// attach counts a session that starts (+1) or ends (-1).
func (m *bridgeMetrics) attach(n float64) {
	if m != nil {
		m.attached.Add(n)
	}
}

// accountOpened counts a new account of a session, offline.
func (m *bridgeMetrics) accountOpened() {
	if m != nil {
		m.accounts[linkDown].Inc()
	}
}

// accountClosed uncounts an account that leaves its session in state st.
func (m *bridgeMetrics) accountClosed(st linkState) {
	if m != nil {
		m.accounts[st].Dec()
	}
}

func (m *bridgeMetrics) moveAccount(from, to linkState) {
	if m != nil && from != to {
		m.accounts[from].Dec()
		m.accounts[to].Inc()
	}
}

// setState changes the account's link state, keeping the gauge right.
func (s *session) setState(a *account, st linkState) {
	s.b.met.moveAccount(a.state, st)
	a.state = st
}

func (m *bridgeMetrics) login(err error) {
	if m != nil {
		m.logins.WithLabelValues(loginResult(err)).Inc()
	}
}

func (m *bridgeMetrics) linkLost(r msim.DisconnectReason) {
	if m == nil {
		return
	}
	l, ok := lostLabel[r]
	if !ok {
		l = "network"
	}
	m.linksLost.WithLabelValues(l).Inc()
}

func (m *bridgeMetrics) reconnecting() {
	if m != nil {
		m.reconnect.Inc()
	}
}

func (m *bridgeMetrics) imToMSIM() {
	if m != nil {
		m.imsToMSIM.Inc()
	}
}

// delivered counts an IM or zap written to the IRC client.
func (m *bridgeMetrics) delivered(ev msim.Event) {
	if m == nil {
		return
	}
	switch ev.(type) {
	case msim.IMEvent:
		m.imsToIRC.Inc()
	case msim.ZapEvent:
		m.zapsToIRC.Inc()
	}
}

func (m *bridgeMetrics) zapToMSIM() {
	if m != nil {
		m.zapsToMSIM.Inc()
	}
}

func (m *bridgeMetrics) typed(direction string) {
	if m != nil {
		m.typing[direction].Inc()
	}
}

func (m *bridgeMetrics) presenceUpdate(direction string) {
	if m != nil {
		m.presence[direction].Inc()
	}
}

func (m *bridgeMetrics) imQueued() {
	if m != nil {
		m.queued.Inc()
	}
}

func (m *bridgeMetrics) imHeld() {
	if m != nil {
		m.held.Inc()
	}
}

func (m *bridgeMetrics) imRefused() {
	if m != nil {
		m.refused.Inc()
	}
}

func (m *bridgeMetrics) imDropped() {
	if m != nil {
		m.dropped.Inc()
	}
}

// imsDropped counts n IMs lost at once (a forgotten memory's).
func (m *bridgeMetrics) imsDropped(n int) {
	if m != nil && n > 0 {
		m.dropped.Add(float64(n))
	}
}

// imNotTaken counts an IM the queue would not take: refused when the user
// just typed it, dropped when it was taken before (unsent by a link that
// died).
func (m *bridgeMetrics) imNotTaken(unsent bool) {
	if unsent {
		m.imDropped()
	} else {
		m.imRefused()
	}
}
