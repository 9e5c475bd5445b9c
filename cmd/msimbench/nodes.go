package main

// Bridged IM across several msimd nodes (-msim-nodes N).
//
// The design: msimircd dials one MSIM server, so the N-node run starts N
// gateways, gateway g dialing node g, and spreads the im scenario's pairs
// over them so that the two users of every pair are on different
// gateways, hence on different nodes: every IM crosses the bus (IRC →
// gateway → its node → NATS → the partner's node → the partner's gateway →
// IRC). The single-node run in the same invocation has the same N gateways,
// users and load, all dialing one node without a bus: the two runs differ
// by the bus alone. The nodes are in-process, share one MemStore (the
// bench measures the bus, not PostgreSQL) and join an in-process NATS
// server. Then a probe of the bench's own MSIM clients measures a cross-
// node hop directly: one sender's IMs, alternately to a user on its own
// node and to one on another node, one at a time (each sent once the last
// arrived and the sender's node is done with it); the hop is the
// difference of the two, at the median and the 99th percentile.
//
// On one machine every node, gateway, the NATS server and the load share
// the same cores: this shows what the bus costs, not what more machines
// gain.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/cluster"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// clusterNote is said with the figures: what they show on one machine.
const clusterNote = "every node, gateway, the NATS server and the load share this machine's cores: the figures show the cost of the bus, not the gain of more machines"

// msimNodes is the MSIM side of a multi-node run: in-process msimd nodes
// on one MemStore, joined over an in-process NATS server (bus), or one
// node without a bus (the single-node baseline).
type msimNodes struct {
	addrs  []string
	srvs   []*server.Server
	buses  []*cluster.Node
	ns     *natsserver.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// startMSIMNodes starts n nodes holding accts, over NATS if bus, and
// waits until every node hears all the others.
func startMSIMNodes(accts []*acct, n int, bus bool) (_ *msimNodes, err error) {
	st := server.NewMemStore()
	if err := populate(st, accts); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &msimNodes{cancel: cancel}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	natsURL := ""
	if bus {
		ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
		if err != nil {
			return nil, fmt.Errorf("NATS server: %w", err)
		}
		m.ns = ns
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			return nil, errors.New("NATS server not ready within 10s")
		}
		natsURL = ns.ClientURL()
	}
	var regs []*prometheus.Registry
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		cfg := server.Config{SendQ: 1 << 16, MaxConnections: connCap(len(accts)), MaxConnectionsPerAddr: -1}
		if bus {
			reg := prometheus.NewRegistry()
			b, err := cluster.Connect(cluster.Config{URL: natsURL, Name: fmt.Sprintf("bench%d", i+1), Metrics: reg}, quietLog())
			if err != nil {
				ln.Close()
				return nil, err
			}
			m.buses = append(m.buses, b)
			regs = append(regs, reg)
			cfg.Bus, cfg.Metrics = b, reg
		}
		srv, err := server.New(cfg, st, quietLog())
		if err != nil {
			ln.Close()
			return nil, err
		}
		m.srvs = append(m.srvs, srv)
		m.addrs = append(m.addrs, ln.Addr().String())
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			_ = srv.Serve(ctx, ln)
		}()
	}
	deadline := time.Now().Add(15 * time.Second)
	for i, reg := range regs {
		for {
			peers, err := gaugeValue(reg, "msimd_cluster_peers")
			if err != nil {
				return nil, err
			}
			if int(peers) == n-1 && m.buses[i].Check(ctx) == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("msimd node %d hears %v other nodes after 15s, want %d", i+1, peers, n-1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return m, nil
}

// gaugeValue reads the unlabelled gauge name from reg.
func gaugeValue(reg prometheus.Gatherer, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no gauge %s", name)
}

// Close shuts the nodes down, then their buses and the NATS server.
func (m *msimNodes) Close() {
	m.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range m.srvs {
			_ = s.Shutdown(ctx)
		}
		m.cancel()
		m.wg.Wait()
		for _, b := range m.buses {
			_ = b.Close()
		}
		if m.ns != nil {
			m.ns.Shutdown()
			m.ns.WaitForShutdown()
		}
	})
}

// spreadPairs places user i of the im scenario's pairs (2k, 2k+1) on a
// gateway, and so a node, of n: pair k on k mod n and the next one, so the
// two users of a pair are never together when n ≥ 2, and every gateway
// holds about as many users as the others.
func spreadPairs(users, n int) []int {
	g := make([]int, users)
	for i := range g {
		g[i] = (i/2 + i%2) % n
	}
	return g
}

// hopAccounts are the cross-node probe's MSIM-only users: a sender, a
// receiver on its node and one on another node.
func hopAccounts() (sender, same, cross *acct) {
	sender, same, cross = &acct{name: "hopsend"}, &acct{name: "hopsame"}, &acct{name: "hopcross"}
	sender.buddies = []string{same.name, cross.name}
	same.buddies = []string{sender.name}
	cross.buddies = []string{sender.name}
	return sender, same, cross
}

// clusterResult is the N-node comparison.
type clusterResult struct {
	Nodes    int        `json:"nodes"`
	Gateways int        `json:"gateways"` // the same in both runs
	Single   loadResult `json:"single"`   // the gateways on one node, no bus
	Cluster  loadResult `json:"cluster"`  // gateway g on node g, every IM across nodes
	Hop      *hopResult `json:"hop"`
	Note     string     `json:"note"`
}

// hopResult is the cross-node probe: IMs one at a time from a sender to a
// user on its node and to one on another node, and the difference.
type hopResult struct {
	Samples    int     `json:"samples"` // per receiver
	SameP50us  float64 `json:"same_node_p50_us"`
	SameP99us  float64 `json:"same_node_p99_us"`
	CrossP50us float64 `json:"cross_node_p50_us"`
	CrossP99us float64 `json:"cross_node_p99_us"`
}

// hopFigures is what a cross-node hop adds, at the median and the 99th
// percentile (cross-node minus same-node).
type hopFigures struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// newClusterResult is the empty comparison of n nodes, with its note.
func newClusterResult(n int) *clusterResult {
	return &clusterResult{Nodes: n, Gateways: n, Note: clusterNote}
}

func (h *hopResult) added() hopFigures {
	return hopFigures{P50: h.CrossP50us - h.SameP50us, P99: h.CrossP99us - h.SameP99us}
}

// runNodes runs the im load through n gateways on one node, then on n
// nodes, and the hop probe on the latter.
func runNodes(ctx context.Context, e *env, n, clients, hopSamples int, lo loadOptions, gwo gwOptions) (*clusterResult, error) {
	res := newClusterResult(n)
	single, err := runSpread(ctx, e, "nodes1", clients, n, false, lo, gwo, 0)
	res.Single = single.loadResult
	if err != nil {
		return res, fmt.Errorf("single node: %w", err)
	}
	clustered, err := runSpread(ctx, e, fmt.Sprintf("nodes%d", n), clients, n, true, lo, gwo, hopSamples)
	res.Cluster = clustered.loadResult
	res.Hop = clustered.hop
	if err != nil {
		return res, fmt.Errorf("%d nodes: %w", n, err)
	}
	return res, nil
}

// spreadResult is one run of runSpread.
type spreadResult struct {
	loadResult
	hop *hopResult
}

// runSpread runs the im scenario's load on a stack called name: g
// gateways, each with its share of the users (spreadPairs), on g nodes
// over NATS (bus) or all on one node. With hopSamples > 0 and a bus, the
// hop probe follows the load.
func runSpread(ctx context.Context, e *env, name string, clientsN, g int, bus bool, lo loadOptions, gwo gwOptions, hopSamples int) (spreadResult, error) {
	var res spreadResult
	accts := pairAccounts("im", clientsN)
	hs, hsame, hcross := hopAccounts()
	nodesN := 1
	if bus {
		nodesN = g
	}
	nodes, err := startMSIMNodes(append(accts[:len(accts):len(accts)], hs, hsame, hcross), nodesN, bus)
	if err != nil {
		return res, fmt.Errorf("%s: MSIM nodes: %w", name, err)
	}
	defer nodes.Close()
	place := spreadPairs(len(accts), g)
	groups := make([][]*acct, g)
	for i, a := range accts {
		groups[place[i]] = append(groups[place[i]], a)
	}
	gws := make([]*gateway, g)
	defer func() {
		for _, gw := range gws {
			if gw != nil {
				gw.Stop()
			}
		}
	}()
	for i := range gws {
		dir := filepath.Join(e.tmp, name, "gw"+strconv.Itoa(i+1))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return res, err
		}
		if gws[i], err = startGateway(e.gatewayBin, dir, nodes.addrs[i%nodesN], gwo, groups[i]); err != nil {
			return res, fmt.Errorf("%s: gateway %d: %w", name, i+1, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	clients := make([]*ircClient, len(accts))
	errs := make([]error, g)
	var wg sync.WaitGroup
	for i := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, err := connectAll(cctx, gws[i].ircAddr, groups[i], func(a *acct) []string { return a.buddies })
			if err != nil {
				errs[i] = fmt.Errorf("gateway %d: %w", i+1, err)
				cancel() // the others wait for buddies that will not come
				return
			}
			k := 0
			for j := range accts {
				if place[j] == i {
					clients[j] = cs[k]
					k++
				}
			}
		}()
	}
	wg.Wait()
	defer closeAll(clients)
	if err := firstErrs(errs); err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	nicks := make([]string, len(accts))
	for i, a := range accts {
		nicks[i] = a.name
	}
	l := newLoad(clients, nicks, lo.window)
	res.loadResult = l.run(ctx, lo, e.prog, name)
	for i, gw := range gws {
		if err := gw.alive(); err != nil {
			return res, fmt.Errorf("%s: gateway %d: %w", name, i+1, err)
		}
	}
	if !bus || hopSamples <= 0 || ctx.Err() != nil {
		return res, nil
	}
	closeAll(clients) // the probe runs on a quiet machine
	e.prog.say(fmt.Sprintf("cross-node hop: %d IMs to a user on the sender's node, %d to one on another node", hopSamples, hopSamples))
	h, err := measureHop(cctx, nodes.addrs[0], nodes.addrs[1], hs, hsame, hcross, hopSamples)
	if err != nil {
		return res, fmt.Errorf("%s: cross-node hop: %w", name, err)
	}
	res.hop = h
	return res, nil
}

// measureHop logs the sender and same in to addrA and cross to addrB, and
// times samples IMs to each, alternately, each sent once the one before
// arrived and the sender's node is done with it.
func measureHop(ctx context.Context, addrA, addrB string, sender, same, cross *acct, samples int) (*hopResult, error) {
	dial := func(addr string, a *acct) (*msim.Client, error) {
		return msim.Dial(ctx, msim.ClientConfig{Addr: addr, Email: a.email(), Password: benchPassword, Log: quietLog()})
	}
	var cls []*msim.Client
	defer func() {
		for _, c := range cls {
			_ = c.Close()
		}
	}()
	for _, d := range []struct {
		addr string
		a    *acct
	}{{addrA, sender}, {addrA, same}, {addrB, cross}} {
		c, err := dial(d.addr, d.a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.a.name, err)
		}
		cls = append(cls, c)
	}
	s, to := cls[0], []*msim.Client{cls[1], cls[2]}
	lat := [2][]int64{make([]int64, 0, samples), make([]int64, 0, samples)}
	for i := range 2 * samples {
		r := to[i%2]
		text := "hop " + strconv.Itoa(i)
		t0 := time.Now()
		if err := s.SendIM(ctx, r.UID(), text); err != nil {
			return nil, err
		}
		if err := awaitIM(ctx, r, s.UID(), text); err != nil {
			return nil, err
		}
		lat[i%2] = append(lat[i%2], time.Since(t0).Nanoseconds())
		// A barrier, not timed: the sender's node has finished with this
		// IM (a cross-node one waits for the other node's reply) before
		// the next is sent, so no sample waits for the one before.
		if _, err := s.Profile(ctx, s.UID()); err != nil {
			return nil, err
		}
	}
	h := &hopResult{Samples: samples}
	sp50, sp99, _ := percentiles(lat[0])
	cp50, cp99, _ := percentiles(lat[1])
	h.SameP50us, h.SameP99us, h.CrossP50us, h.CrossP99us = sp50*1e3, sp99*1e3, cp50*1e3, cp99*1e3
	return h, nil
}

// awaitIM reads c's events until the IM text from arrives.
func awaitIM(ctx context.Context, c *msim.Client, from msim.UID, text string) error {
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				return io.ErrUnexpectedEOF
			}
			switch ev := ev.(type) {
			case msim.IMEvent:
				if ev.From == from && ev.Text == text {
					return nil
				}
			case msim.DisconnectedEvent:
				return fmt.Errorf("disconnected: %v", ev.Err)
			}
		case <-ctx.Done():
			return fmt.Errorf("IM %q not received: %w", text, ctx.Err())
		}
	}
}

// setCluster records the N-node comparison, with its figures at the top
// level.
func (r *report) setCluster(c *clusterResult) {
	r.Cluster = c
	r.SingleIMPerSec, r.SingleP99ms = fp(c.Single.IMPerSec), fp(c.Single.P99ms)
	r.ClusterIMPerSec, r.ClusterP99ms = fp(c.Cluster.IMPerSec), fp(c.Cluster.P99ms)
	if c.Cluster.RateOffered > 0 {
		r.SingleRateP99ms, r.ClusterRateP99ms = fp(c.Single.RateP99ms), fp(c.Cluster.RateP99ms)
	}
	if c.Hop != nil {
		h := c.Hop.added()
		r.CrossNodeHopUs = &h
	}
}

// printClusterRows writes the table's rows of the N-node comparison.
func printClusterRows(tw io.Writer, r *report) {
	c := r.Cluster
	if c == nil {
		return
	}
	fmt.Fprintf(tw, "bridged across %d msimd nodes (%d gateways): IMs/s\t%.0f (one node: %.0f)\t\t\n", c.Nodes, c.Gateways, c.Cluster.IMPerSec, c.Single.IMPerSec)
	fmt.Fprintf(tw, "  p50 / p99\t%.2f / %.2f ms (one node: %.2f / %.2f)\t\t\n", c.Cluster.P50ms, c.Cluster.P99ms, c.Single.P50ms, c.Single.P99ms)
	if c.Cluster.RateOffered > 0 {
		fmt.Fprintf(tw, "  at %.0f IMs/s offered: p99\t%.2f ms (one node: %.2f)\t\t\n", c.Cluster.RateOffered, c.Cluster.RateP99ms, c.Single.RateP99ms)
	}
	fmt.Fprintf(tw, "  sent / delivered / lost / errors\t%d / %d / %d / %d\t\t\n", c.Cluster.Sent, c.Cluster.Delivered, c.Cluster.Lost, c.Cluster.Errors)
	if h := c.Hop; h != nil {
		a := h.added()
		fmt.Fprintf(tw, "  a cross-node hop adds, p50 / p99\t%.0f / %.0f µs\t\t\n", a.P50, a.P99)
		fmt.Fprintf(tw, "    one IM, same node / across nodes\tp50 %.0f / %.0f µs, p99 %.0f / %.0f µs\t\t\n", h.SameP50us, h.CrossP50us, h.SameP99us, h.CrossP99us)
	}
}
