package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/metrics"
	"github.com/msimircd/msimircd/store"
)

// shutdownTimeout bounds the shutdown (tests shorten it).
var shutdownTimeout = 10 * time.Second

// sessionsGrace is how much longer the shutdown waits for the bridge's
// sessions once shutdownTimeout is over: at their end they save what they
// hold (IMs that arrived for their users, the users' queues), each write
// bounded by the store's own limit, and the stores close only after them.
// Within systemd's default TimeoutStopSec (90 s).
const sessionsGrace = time.Minute

// listening is where a running msimircd can be reached.
type listening struct {
	irc     []string // the IRC listeners
	msim    string   // the MSIM server the bridge uses (the embedded one's, if any)
	metrics string   // the metrics listener; "" without one
}

// gateway is msimircd built from its config, listening but not yet serving.
type gateway struct {
	st       store.Store // the gateway's store; nil = memory only
	emb      *embedded   // nil with msim.server
	msimAddr string      // the MSIM server the bridge dials
	bridge   *channel.Bridge
	irc      *ircd.Server
	ircLns   []net.Listener
	log      *logrus.Entry

	reg        *prometheus.Registry // nil: no metrics
	metricsCfg MetricsConfig
	history    HistoryConfig

	sessionsLeft bool // the bridge's sessions outlived the shutdown
}

// serve runs msimircd with cfg until ctx ends (then it returns nil) or a
// listener fails (then it returns its error). ready, when not nil,
// receives the addresses once serving (tests use it).
func serve(ctx context.Context, cfg Config, log *logrus.Entry, ready chan<- listening) error {
	g, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.close() // last: every goroutine using the stores has ended
	return g.run(ctx, ready)
}

// build makes every part of msimircd and opens its listeners. The state
// directory is made and the store opened first, before anything listens:
// a database that cannot be opened stops the start.
func build(ctx context.Context, cfg Config, log *logrus.Entry) (_ *gateway, err error) {
	cfg = cfg.withState()
	g := &gateway{msimAddr: cfg.MSIM.Server, log: log, metricsCfg: cfg.Metrics, history: cfg.History}
	if cfg.Metrics.Listen != "" {
		g.reg = metrics.NewRegistry() // one per process
	}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if err := makeStateDir(cfg.Store.StateDir); err != nil {
		return nil, err
	}
	var key []byte
	if g.st, key, err = openStoreKey(ctx, cfg.Store); err != nil {
		return nil, err
	}
	histElsewhere := false
	if historyOn(cfg, g.st) {
		g.st, histElsewhere = historyProcess(ctx, g.st, cfg.Store, key, g.registerer(), log)
	}
	g.st = store.WithMetrics(g.st, g.registerer())
	if cfg.MSIM.Server == "" {
		if g.emb, err = openEmbedded(cfg, log); err != nil {
			return nil, err
		}
		g.msimAddr = g.emb.addr()
	}
	if g.st != nil {
		if len(cfg.Users) > 0 {
			if err := checkClashes(ctx, g.st, cfg.Users); err != nil {
				return nil, err
			}
		}
		// The [[user]]s and their accounts are in the store from the
		// start, the config winning for what it names; those it no
		// longer names, and their accounts, are deleted (a user another
		// instance still serves is kept).
		var users []channel.User
		for _, su := range staticUsers(cfg.Users) {
			users = append(users, channel.User{Name: su.Name, Accounts: su.Accounts})
		}
		if err := channel.SaveUsers(ctx, g.st, users, channel.SaveOptions{Log: log, Instance: cfg.Cluster.Instance, LeaseTTL: cfg.Cluster.LeaseTTL.Duration}); err != nil {
			return nil, fmt.Errorf("store: the config's users: %w", err)
		}
	}
	dir, err := buildDirectory(cfg, g.emb, g.st, log)
	if err != nil {
		return nil, err
	}
	if g.bridge, err = buildBridge(cfg, g.msimAddr, dir, g.st, histElsewhere, g.registerer(), log); err != nil {
		return nil, err
	}
	g.irc = newIRCServer(cfg, g.bridge, historyOn(cfg, g.st), g.registerer(), log)
	if g.ircLns, err = listenIRC(cfg, log); err != nil {
		return nil, err
	}
	return g, nil
}

// buildDirectory returns who may connect: the [[user]]s of the config, or,
// on the embedded network without any, every nick (the demo directory)
// behind irc.password. With a store, the users registered in it (register,
// msimircd user add) come first, but never over a [[user]] of the config.
func buildDirectory(cfg Config, emb *embedded, st store.Store, log *logrus.Entry) (channel.Directory, error) {
	withStore := func(d channel.Directory) channel.Directory {
		if st == nil {
			return d
		}
		return channel.WithStore(st, d, cfg.registration())
	}
	if emb == nil || len(cfg.Users) > 0 {
		return withStore(channel.NewLiveDirectory(staticUsers(cfg.Users), cfg.IRC.Password)), nil // reloadable
	}
	demo, err := emb.demoDirectory(cfg, log)
	if err != nil {
		return nil, err
	}
	return channel.WithServerPassword(cfg.IRC.Password, withStore(demo)), nil
}

// checkClashes refuses users (the config's) that a user kept in st
// clashes with, by name (checkNameClashes) or by account
// (checkAccountClashes): at the start and at a reload.
func checkClashes(ctx context.Context, st store.Store, users []UserEntry) error {
	if err := checkNameClashes(ctx, st, users); err != nil {
		return err
	}
	return checkAccountClashes(ctx, st, users)
}

// checkNameClashes refuses users (the config's) when one is spelled
// exactly as a user kept in st with a password of their own (see
// channel.NameClashes): saving the config's users would give that user's
// entry, accounts and history to the [[user]]. The error names the
// user's key, the name and what to do.
func checkNameClashes(ctx context.Context, st store.Store, users []UserEntry) error {
	clashes, err := channel.NameClashes(ctx, st, staticUsers(users))
	if err != nil {
		return fmt.Errorf("store: the config's users: %w", err)
	}
	if len(clashes) == 0 {
		return nil
	}
	name := clashes[0]
	msg := fmt.Sprintf("the user %q is also a user kept in the store with a password of their own (made by register or msimircd user add), holding none of the MSIM accounts the [[user]] lists: the [[user]] would take their entry, with their MSIM accounts, settings and history, and leave them no password to log in with; rename the [[user]], or delete the registered user with msimircd user del '%s'",
		name, name)
	if len(clashes) > 1 {
		msg += fmt.Sprintf("; %d more users are so", len(clashes)-1)
	}
	for i, u := range users {
		if u.Name == name {
			return errKey(msg, "name", pathStep{"user", i})
		}
	}
	return errors.New(msg)
}

// checkAccountClashes refuses users (the config's) when a user kept in st
// whom they do not name holds one of their MSIM accounts (see
// channel.AccountClashes): both would log it in, each logging the other
// out. The error names the account's key, both users and the account.
func checkAccountClashes(ctx context.Context, st store.Store, users []UserEntry) error {
	clashes, err := channel.AccountClashes(ctx, st, staticUsers(users))
	if err != nil {
		return fmt.Errorf("store: the config's users: %w", err)
	}
	if len(clashes) == 0 {
		return nil
	}
	c := clashes[0]
	msg := fmt.Sprintf("the MSIM account %q of the user %q is also the account of %q, a user kept in the store (made by register or msimircd user add, or a nick of the embedded network): an account logs in for one user only, so remove it from one of them (msimircd user del deletes a stored user)",
		c.Email, c.Configured, c.Stored)
	if len(clashes) > 1 {
		msg += fmt.Sprintf("; %d more accounts are so", len(clashes)-1)
	}
	for i, u := range users {
		for j, a := range u.Accounts {
			if u.Name == c.Configured && a.Email == c.Email {
				return errKey(msg, "email", pathStep{"user", i}, pathStep{"user.account", j})
			}
		}
	}
	return errors.New(msg)
}

func staticUsers(us []UserEntry) []channel.StaticUser {
	out := make([]channel.StaticUser, 0, len(us))
	for _, u := range us {
		su := channel.StaticUser{Name: u.Name, Password: u.Password}
		for _, a := range u.Accounts {
			auto := true
			if a.AutoConnect != nil {
				auto = *a.AutoConnect
			}
			su.Accounts = append(su.Accounts, channel.Account{Email: a.Email, Password: a.Password, Channel: a.Channel, AutoConnect: auto})
		}
		out = append(out, su)
	}
	return out
}

func buildBridge(cfg Config, msimAddr string, dir channel.Directory, st store.Store, histElsewhere bool, reg prometheus.Registerer, log *logrus.Entry) (*channel.Bridge, error) {
	bc := channel.Config{
		MSIMAddr: msimAddr, ServiceNick: cfg.IRC.ServiceNick, Directory: dir, Store: st,
		DialTimeout: cfg.MSIM.Timeout.Duration, RequestTimeout: cfg.MSIM.Timeout.Duration,
		ReconnectMin: cfg.MSIM.ReconnectMin.Duration, ReconnectMax: cfg.MSIM.ReconnectMax.Duration,
		QueueLimit: cfg.MSIM.QueueLimit, AlwaysOn: cfg.MSIM.AlwaysOn, MaxClients: cfg.IRC.MaxClientsPerUser,
		History: historyOn(cfg, st), ReplayPerBuddy: cfg.History.ReplayPerBuddy, HistoryElsewhere: histElsewhere,
		// Nicks registered per address: as many as MSIM accounts may be
		// made per address (register makes one on the embedded network).
		Registrations: guard.NewQuota(cfg.MSIM.AccountCreationPerHour, time.Hour, nil),
		Log:           log.WithField("part", "bridge"),
		Metrics:       reg,
	}
	clusterOf(cfg.Cluster, &bc)
	return channel.New(bc)
}

func newIRCServer(cfg Config, bridge *channel.Bridge, history bool, reg prometheus.Registerer, log *logrus.Entry) *ircd.Server {
	// Failed PASS and SASL logins count with wrong identify and drop
	// passwords: an address has one budget of guesses.
	authLimiter, accountLimiter := bridge.GuessLimiters()
	return ircd.NewServer(ircd.Config{
		ServerName: cfg.IRC.ServerName, Network: cfg.IRC.Network, Version: "msimircd-" + version, MOTD: motdOf(cfg),
		PingInterval: cfg.IRC.PingInterval.Duration, SendQ: cfg.IRC.SendQ,
		FloodRate: cfg.IRC.FloodRate, FloodBurst: cfg.IRC.FloodBurst,
		MaxConnections: cfg.IRC.MaxConnections, MaxConnectionsPerAddr: cfg.IRC.MaxConnectionsPerAddr,
		AuthLimiter: authLimiter, AccountLimiter: accountLimiter,
		History: history, // draft/chathistory and draft/read-marker
		// Lines are traced while the log level is debug or trace (-debug),
		// the control commands' passwords masked by the bridge and other
		// message texts shown as their sizes (by ircd).
		TraceLines: true, Redact: bridge.RedactLine,
		Metrics: reg,
	}, bridge, log.WithField("part", "ircd"))
}

// listenIRC opens the IRC listeners, plain and TLS; on an error none stays
// open.
func listenIRC(cfg Config, log *logrus.Entry) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range cfg.IRC.Listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("irc listener: %w", err)
		}
		lns = append(lns, ln)
	}
	for _, t := range cfg.IRC.TLS {
		ln, err := ircd.ListenTLS(t.Listen, t.Cert, t.Key)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("irc TLS listener: %w", err)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		if !isLoopback(ln.Addr().String()) {
			log.Warnf("IRC listener %s is not on loopback", ln.Addr())
		}
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// run serves the embedded network and the IRC listeners, each on its own
// goroutine of one errgroup, until ctx ends or one of them fails; then it
// shuts everything down and returns the failure, if any.
func (g *gateway) run(ctx context.Context, ready chan<- listening) error {
	msrv, err := g.listenMetrics()
	if err != nil {
		return err
	}
	eg, gctx := errgroup.WithContext(ctx)
	if msrv != nil {
		eg.Go(func() error { return stopped(gctx, "metrics listener", msrv.Serve(gctx)) })
	}
	if g.emb != nil {
		eg.Go(func() error {
			return stopped(gctx, "embedded MSIM server", g.emb.srv.Serve(gctx, g.emb.ln))
		})
	}
	addrs := make([]string, 0, len(g.ircLns))
	for _, ln := range g.ircLns {
		addr := ln.Addr().String()
		addrs = append(addrs, addr)
		eg.Go(func() error {
			return stopped(gctx, "IRC listener "+addr, g.irc.Serve(gctx, ln))
		})
	}
	g.log.WithField("msim", g.msimAddr).Infof("msimircd %s: IRC on %s", version, strings.Join(addrs, ", "))
	if g.history.Enabled && g.st != nil {
		eg.Go(func() error { return pruneHistory(gctx, g.st, g.history.Retention.Duration, g.log) })
	}
	if n, err := g.bridge.Start(gctx); err != nil {
		g.log.WithError(err).Error("always on: not every user's accounts were brought online; they log in when the user connects")
	} else if n > 0 {
		g.log.Infof("always on: logging in the accounts of %d users", n)
	}
	if ready != nil {
		select {
		case ready <- listening{irc: addrs, msim: g.msimAddr, metrics: metricsAddr(msrv)}:
		case <-gctx.Done():
		}
	}
	<-gctx.Done()
	g.shutdown()
	return eg.Wait()
}

// stopped is the result of a serving goroutine that returned err: nil once
// ctx has ended (the listener was closed for it), else an error naming what
// stopped.
func stopped(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	default:
		return fmt.Errorf("%s stopped: its listener was closed", what)
	}
}

// shutdown stops IRC (clients get ERROR), then the bridge (it logs every
// account out of MSIM), then the embedded MSIM server, all within
// shutdownTimeout, except that the bridge's sessions get sessionsGrace
// more to end, and then the embedded server what is left of it. The
// stores are closed after run returns, unless sessions still run.
func (g *gateway) shutdown() {
	g.log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := g.irc.Shutdown(ctx); err != nil {
		g.log.WithError(err).Warn("IRC shutdown")
	}
	if err := g.bridge.Shutdown(ctx); err != nil {
		g.log.WithError(err).Warnf("bridge shutdown: waiting up to %v more for its sessions to save what they hold", sessionsGrace)
		gctx, gcancel := context.WithTimeout(context.Background(), sessionsGrace)
		defer gcancel()
		if err := g.bridge.Shutdown(gctx); err != nil {
			g.log.WithError(err).Error("bridge shutdown: sessions still running; the stores are left open, and what they hold now is lost")
			g.sessionsLeft = true
		}
		ctx = gctx // the first limit is over: the MSIM server has what is left of the grace
	}
	if g.emb != nil {
		if err := g.emb.srv.Shutdown(ctx); err != nil {
			g.log.WithError(err).Warn("MSIM server shutdown")
		}
	}
}

// close releases what build opened and run did not: listeners never
// served, and the stores (the bridge has shut down: nothing writes to
// them any more). With sessions left running, the stores stay open for
// them until the process exits.
func (g *gateway) close() {
	closeAll(g.ircLns)
	if g.sessionsLeft {
		return
	}
	g.emb.close()
	if g.st != nil {
		if err := g.st.Close(); err != nil {
			g.log.WithError(err).Error("closing the gateway's store")
		}
	}
}
