package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/msim"
)

// metricSet holds the server's Prometheus collectors (Config.Metrics). A nil
// *metricSet counts nothing: every method returns at once, so a server
// without metrics pays one nil check per hook.
//
// No label carries a user: results, persist kinds and error codes come from
// fixed sets, anything else is "other".
type metricSet struct {
	logins      map[int]prometheus.Counter // by error code; 0 is "ok"
	loginVec    *prometheus.CounterVec     // for "other"
	routed      prometheus.Counter
	stored      prometheus.Counter
	fromStorage prometheus.Counter
	malformed   [malformedResults]prometheus.Counter
	lost        [lostReasons]prometheus.Counter
	fanout      prometheus.Histogram
	persist     map[persistKey]*[2]prometheus.Counter // [ok, error]
	persistElse [2]prometheus.Counter
	errs        map[int]prometheus.Counter
	errVec      *prometheus.CounterVec // for "other"
}

// loginCodes are the results a login can have: ok (0) and the error codes
// login sends.
var loginCodes = []int{0, msim.ErrCodeParse, msim.ErrCodeBadPassword, msim.ErrCodeElsewhere, ErrCodeRefused}

// errorCodes are the codes of the \error\ messages the server sends.
var errorCodes = []int{
	msim.ErrCodeParse, msim.ErrCodeNotLoggedIn, msim.ErrCodeBadSession, msim.ErrCodeElsewhere,
	msim.ErrCodeBadPassword, msim.ErrCodeBadUID, ErrCodeNotStored, ErrCodeRefused, ErrCodeNodeLost,
}

// persistKinds are the persist requests session.persist answers (keep the
// two in step; TestMetricsPersistKindsAnswered checks this list).
var persistKinds = []persistKey{
	{msim.CmdGet, msim.PersistContactList},
	{msim.CmdGet, msim.PersistContactInfo},
	{msim.CmdGet, msim.PersistOwnIMInfo},
	{msim.CmdGet, msim.PersistIMInfo},
	{msim.CmdGet, msim.PersistIMInfoAlt},
	{msim.CmdGet, msim.PersistGroupList},
	{msim.CmdGet, msim.PersistProfile},
	{msim.CmdGet, msim.PersistOwnProfile},
	{msim.CmdGet, msim.PersistLookup},
	{msim.CmdGet, msim.PersistAlerts},
	{msim.CmdGet, msim.PersistAlertsAlt},
	{msim.CmdPut, msim.PersistSetContact},
	{msim.CmdDelete, msim.PersistDeleteContact},
	{msim.CmdPut, msim.PersistSetPrefs},
	{msim.CmdPut, msim.PersistSetUserName},
	{msim.CmdPut, msim.PersistSetGroup},
	{msim.CmdDelete, msim.PersistSetGroup},
	{msim.CmdPut, msim.DSNLID{DSN: 14, LID: 21}},
	{msim.CmdPut, msim.DSNLID{DSN: 15, LID: 22}},
}

// kindLabel is a persist kind as a label value: cmd/dsn/lid, cmd without
// its action bit (1 get, 2 put, 3 delete).
func (k persistKey) kindLabel() string {
	return fmt.Sprintf("%d/%d/%d", k.op, k.dsn.DSN, k.dsn.LID)
}

// fanoutBuckets bound the recipients of one presence change.
var fanoutBuckets = []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}

// newMetricSet registers the server's collectors on r; nil r is no metrics.
func newMetricSet(r prometheus.Registerer, s *Server) (*metricSet, error) {
	if r == nil {
		return nil, nil
	}
	m := &metricSet{
		logins:  map[int]prometheus.Counter{},
		persist: map[persistKey]*[2]prometheus.Counter{},
		errs:    map[int]prometheus.Counter{},
	}
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "msimd_sessions",
		Help: "Logged-in MSIM sessions.",
	}, func() float64 { return float64(s.reg.count()) })
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimd_logins_total",
		Help: `Login attempts answered, by result: "ok" or the code of the error sent.`,
	}, []string{"result"})
	routed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_ims_routed_total",
		Help: "IMs (bm 1) routed to an online recipient (one their privacy settings refuse counts too: it is dropped as if delivered).",
	})
	stored := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_ims_stored_total",
		Help: "IMs (bm 1) stored for an offline recipient.",
	})
	fromStorage := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_ims_delivered_from_storage_total",
		Help: "Stored IMs handed to their recipient at login.",
	})
	malformed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimd_ims_malformed_total",
		Help: `IMs (bm 1) that a session closed at once had not written and that did not parse (or named no sender), by what became of them: "stored" (the text read from them, for the next login), "refused" (their sender got an error) or "lost" (nobody could be told; each is logged).`,
	}, []string{"result"})
	lost := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimd_ims_lost_total",
		Help: `IMs (bm 1) neither delivered nor stored, each logged, by reason: "untold" (not stored, and its sender could not be told), "restore" (a stored IM a closing session did not take could not be stored again) or "no_sender" (one a closed session had not written names no sender to tell).`,
	}, []string{"reason"})
	fanout := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "msimd_presence_fanout_recipients",
		Help:    "Sessions told of one presence change (a status change or a logout).",
		Buckets: fanoutBuckets,
	})
	persist := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimd_persist_requests_total",
		Help: `Persist requests answered, by kind (cmd/dsn/lid, or "other") and result (ok, error).`,
	}, []string{"kind", "result"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimd_protocol_errors_total",
		Help: `Protocol error messages sent, by error code ("other" for any code not listed).`,
	}, []string{"code"})
	for _, c := range []prometheus.Collector{sessions, logins, routed, stored, fromStorage, malformed, lost, fanout, persist, errs} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("msim/server: register metrics: %w", err)
		}
	}
	m.routed, m.stored, m.fromStorage, m.fanout = routed, stored, fromStorage, fanout
	for r, l := range malformedLabels {
		m.malformed[r] = malformed.WithLabelValues(l)
	}
	for r, l := range lostLabels {
		m.lost[r] = lost.WithLabelValues(l)
	}
	for _, c := range loginCodes {
		l := "ok"
		if c != 0 {
			l = strconv.Itoa(c)
		}
		m.logins[c] = logins.WithLabelValues(l)
	}
	m.loginVec = logins
	for _, k := range persistKinds {
		m.persist[k] = &[2]prometheus.Counter{
			persist.WithLabelValues(k.kindLabel(), "ok"),
			persist.WithLabelValues(k.kindLabel(), "error"),
		}
	}
	m.persistElse = [2]prometheus.Counter{persist.WithLabelValues("other", "ok"), persist.WithLabelValues("other", "error")}
	for _, c := range errorCodes {
		m.errs[c] = errs.WithLabelValues(strconv.Itoa(c))
	}
	m.errVec = errs
	return m, nil
}

// login counts a login's result: 0 for success, else the error code sent.
func (m *metricSet) login(code int) {
	if m == nil {
		return
	}
	if c, ok := m.logins[code]; ok {
		c.Inc()
		return
	}
	m.loginVec.WithLabelValues("other").Inc() // a code login does not send: none yet
}

// routedIM counts a buddy message of type typ routed live (IMs only).
func (m *metricSet) routedIM(typ int) {
	if m != nil && typ == msim.BMIM {
		m.routed.Inc()
	}
}

// storedIMs counts n IMs stored for an offline recipient.
func (m *metricSet) storedIMs(n int) {
	if m != nil {
		m.stored.Add(float64(n))
	}
}

// deliveredFromStorage counts n stored IMs handed over at login.
func (m *metricSet) deliveredFromStorage(n int) {
	if m != nil {
		m.fromStorage.Add(float64(n))
	}
}

// What became of a malformed IM a closed session had not written
// (rescueIMs), the label values of msimd_ims_malformed_total.
type malformedResult int

const (
	malformedStored malformedResult = iota
	malformedRefused
	malformedLost
	malformedResults // how many there are
)

var malformedLabels = [malformedResults]string{"stored", "refused", "lost"}

// malformedIM counts a malformed IM a closed session had not written.
func (m *metricSet) malformedIM(r malformedResult) {
	if m != nil {
		m.malformed[r].Inc()
	}
}

// Why an IM was lost, the label values of msimd_ims_lost_total.
type lostReason int

const (
	lostUntold   lostReason = iota // not stored, and its sender could not be told
	lostRestore                    // a stored IM could not be stored again (restore)
	lostNoSender                   // a closed session's unwritten IM names no sender
	lostReasons                    // how many there are
)

var lostLabels = [lostReasons]string{"untold", "restore", "no_sender"}

// lostIM counts an IM neither delivered nor stored.
func (m *metricSet) lostIM(r lostReason) {
	if m != nil {
		m.lost[r].Inc()
	}
}

// presenceFanout records the recipients of one presence change.
func (m *metricSet) presenceFanout(n int) {
	if m != nil {
		m.fanout.Observe(float64(n))
	}
}

// persistRequest counts one persist request (p nil: it did not parse) and
// whether it was answered without error.
func (m *metricSet) persistRequest(p *msim.Persist, err error) {
	if m == nil {
		return
	}
	res := 0
	if err != nil {
		res = 1
	}
	if p != nil {
		if c := m.persist[persistKey{p.Op(), p.Kind()}]; c != nil {
			c[res].Inc()
			return
		}
	}
	m.persistElse[res].Inc()
}

// sent counts m if it is an \error\ message.
func (m *metricSet) sent(msg *msim.Message) {
	if m == nil || !msg.Is("error") {
		return
	}
	code, _ := msg.Int("err")
	m.protocolError(code)
}

// protocolError counts an \error\ message of code sent.
func (m *metricSet) protocolError(code int) {
	if m == nil {
		return
	}
	if c, ok := m.errs[code]; ok {
		c.Inc()
		return
	}
	m.errVec.WithLabelValues("other").Inc()
}

// ErrNotServing is CheckListening's answer while no listener is served.
var ErrNotServing = errors.New("msim/server: not serving on any listener")

// probeUID is a uid no account has (CreateAccount never assigns 0): the
// store probe reads it.
const probeUID msim.UID = 0

// CheckListening is a readiness probe: nil while the server accepts
// connections on at least one listener, ErrNotServing before Serve and after
// Shutdown.
func (s *Server) CheckListening(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.listeners) == 0 {
		return ErrNotServing
	}
	return nil
}

// storeProbe is one read of the store made for CheckStore; done is closed
// once err is set.
type storeProbe struct {
	done chan struct{}
	err  error
}

// CheckStore is a readiness probe: nil when the store answers a read (of an
// account that does not exist, so it changes nothing). It gives up when ctx
// ends. Callers while a probe runs wait for that probe rather than start
// another, so a store that hangs is not asked again and again.
func (s *Server) CheckStore(ctx context.Context) error {
	s.mu.Lock()
	p := s.probe
	if p == nil {
		p = &storeProbe{done: make(chan struct{})}
		s.probe = p
		go func() {
			_, err := s.store.Account(probeUID)
			if errors.Is(err, ErrNoSuchAccount) {
				err = nil
			}
			p.err = err
			s.mu.Lock()
			s.probe = nil
			s.mu.Unlock()
			close(p.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("msim/server: store: %w", p.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("msim/server: store did not answer: %w", ctx.Err())
	}
}
