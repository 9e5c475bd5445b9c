package cluster

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Message kinds, the values of the kind label.
const (
	kindDeliver   = "deliver"
	kindKick      = "kick"
	kindState     = "state"
	kindMailbox   = "mailbox"
	kindPresence  = "presence"
	kindHeartbeat = "heartbeat"
	kindFence     = "fence"
	kindAlert     = "alert"
	kindReply     = "reply"
	kindHandOn    = "handon"
)

var messageKinds = []string{kindDeliver, kindKick, kindState, kindMailbox, kindPresence, kindHeartbeat, kindFence, kindAlert, kindReply, kindHandOn}

// requestKinds are the requests whose round trip is measured.
var requestKinds = []string{kindDeliver, kindKick, kindState, kindHandOn}

// latencyBuckets span a loopback round trip to a request that times out.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// metricSet holds the cluster's collectors; nil counts nothing.
type metricSet struct {
	in, out     map[string]prometheus.Counter
	latency     map[string]prometheus.Observer
	timedOut    map[string]prometheus.Counter
	fences      prometheus.Counter
	nodesDown   prometheus.Counter
	dropped     prometheus.Counter
	unsent      prometheus.Counter
	givenUp     prometheus.Counter
	unprobedIMs prometheus.Counter
}

func newMetricSet(r prometheus.Registerer, n *Node) (*metricSet, error) {
	if r == nil {
		return nil, nil
	}
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimd_nats_messages_total",
		Help: "NATS messages this node sent (out) and received (in), by kind.",
	}, []string{"direction", "kind"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "msimd_cluster_request_duration_seconds",
		Help:    "Round trip of a request to another node (deliver a bm, kick a session, fetch a state, hand a state on): the latency a cross-node hop adds.",
		Buckets: latencyBuckets,
	}, []string{"kind"})
	unanswered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msimd_cluster_requests_unanswered_total",
		Help: "Requests to another node left unanswered until they timed out (that node slow or stuck, or the answer lost), by kind: the IM is stored by its sender, the kick or the state fetch finds nothing, the state handed on is not acknowledged.",
	}, []string{"kind"})
	peers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "msimd_cluster_peers",
		Help: "Other nodes whose heartbeats this node hears.",
	}, func() float64 { return float64(n.peerCount()) })
	fences := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_cluster_fences_total",
		Help: "Times this node lost the cluster and closed every session.",
	})
	nodesDown := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_cluster_nodes_down_total",
		Help: "Other nodes declared dead (silent too long) or gone (goodbye).",
	})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_nats_dropped_messages_total",
		Help: "NATS messages this node received but could not take in time (slow consumer) or could not read.",
	})
	unsent := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_nats_unsent_messages_total",
		Help: "NATS messages and replies this node could not send (the link down and nothing more buffered, or closed).",
	})
	givenUp := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_cluster_state_fetches_given_up_total",
		Help: "Watched users whose state fetch their node left unanswered each time it was made again: their watchers here keep the state they knew until it changes.",
	})
	unprobed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msimd_cluster_late_ims_unanswered_total",
		Help: "IMs for users whose session on this node had just ended, left unanswered because too many waited for a look at whether another node holds their user: their senders store them once their requests time out.",
	})
	for _, c := range []prometheus.Collector{msgs, latency, unanswered, peers, fences, nodesDown, dropped, unsent, givenUp, unprobed} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	m := &metricSet{
		in: map[string]prometheus.Counter{}, out: map[string]prometheus.Counter{},
		latency: map[string]prometheus.Observer{}, timedOut: map[string]prometheus.Counter{},
		fences: fences, nodesDown: nodesDown, dropped: dropped, unsent: unsent, givenUp: givenUp,
		unprobedIMs: unprobed,
	}
	for _, k := range messageKinds {
		m.in[k] = msgs.WithLabelValues("in", k)
		m.out[k] = msgs.WithLabelValues("out", k)
	}
	for _, k := range requestKinds {
		m.latency[k] = latency.WithLabelValues(k)
		m.timedOut[k] = unanswered.WithLabelValues(k)
	}
	return m, nil
}

func (m *metricSet) sent(kind string) {
	if m != nil {
		m.out[kind].Inc()
	}
}

func (m *metricSet) received(kind string) {
	if m != nil {
		m.in[kind].Inc()
	}
}

func (m *metricSet) roundTrip(kind string, d time.Duration) {
	if m != nil {
		m.latency[kind].Observe(d.Seconds())
	}
}

// noAnswer counts a request of kind left unanswered until it timed out.
func (m *metricSet) noAnswer(kind string) {
	if m != nil {
		m.timedOut[kind].Inc()
	}
}

func (m *metricSet) fenced() {
	if m != nil {
		m.fences.Inc()
	}
}

func (m *metricSet) nodeDown() {
	if m != nil {
		m.nodesDown.Inc()
	}
}

func (m *metricSet) drop() { m.dropN(1) }

func (m *metricSet) notSent() {
	if m != nil {
		m.unsent.Inc()
	}
}

func (m *metricSet) gaveUp() {
	if m != nil {
		m.givenUp.Inc()
	}
}

func (m *metricSet) unprobed() {
	if m != nil {
		m.unprobedIMs.Inc()
	}
}

func (m *metricSet) dropN(n int) {
	if m != nil {
		m.dropped.Add(float64(n))
	}
}
