// Command msimircd is an IRC server that bridges MySpaceIM to IRC. Without a
// config file it starts the embedded MSIM network (with the demo buddy Tom)
// and gives every IRC user an MSIM account named after their nick.
package main

import (
	"context"
	"errors"
	_ "expvar" // /debug/vars, with -debug-listen
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -debug-listen
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	if err := run(os.Args[1:], os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "msimircd:", err)
		os.Exit(1)
	}
}

// options is what the command line asks for.
type options struct {
	cfg                   Config
	configPath            string
	configHasPasswords    bool // the config file itself holds passwords
	passwordOnCommandLine bool
	debugListen           string
	version               bool
}

// parseOptions reads the command line (and the config file it names);
// passwords of -msim-account EMAIL are read from stdin.
func parseOptions(args []string, stdin io.Reader) (options, error) {
	var o options
	fs := flag.NewFlagSet("msimircd", flag.ContinueOnError)
	fs.StringVar(&o.configPath, "config", "", "config file (TOML); none = the embedded demo network")
	listen := fs.String("listen", "", "IRC listen address, overriding the config (default 127.0.0.1:6667)")
	serverName := fs.String("server-name", "", "the IRC server's name in prefixes and numerics, overriding the config's irc.server_name (default msimircd)")
	msimListen := fs.String("msim-listen", "", "expose the embedded MSIM server at this address (e.g. 127.0.0.1:1863) so MSIM clients can join its network")
	debug := fs.Bool("debug", false, "log at debug level, protocol lines included (never passwords or keys)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	var msimAccounts accountList
	fs.Var(&msimAccounts, "msim-account", "create the account `EMAIL` on the embedded MSIM network (repeatable), e.g. for an MSIM client joining through -msim-listen; its password is read from standard input, one line per account (EMAIL:PASSWORD works too, but shows the password to every local user)")
	msimAccountFile := fs.String("msim-account-file", "", "create the accounts listed in `FILE` (lines EMAIL:PASSWORD) on the embedded MSIM network")
	fs.StringVar(&o.debugListen, "debug-listen", "", "serve Go's pprof and expvar (memory statistics) at this loopback address, e.g. 127.0.0.1:6060")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.version {
		return o, nil
	}
	o.cfg = Defaults()
	if o.configPath != "" {
		var err error
		if o.cfg, err = LoadConfig(o.configPath); err != nil {
			return o, err
		}
		o.configHasPasswords = o.cfg.holdsPasswords()
	}
	accounts, onCommandLine, err := msimAccounts.passwords(stdin)
	if err != nil {
		return o, err
	}
	o.passwordOnCommandLine = onCommandLine
	cfg := &o.cfg
	if *msimAccountFile != "" {
		cfg.MSIM.AccountsFile = *msimAccountFile
	}
	if *listen != "" {
		cfg.IRC.Listen = []string{*listen} // TLS listeners stay as configured
	}
	if *serverName != "" {
		cfg.IRC.ServerName = *serverName
	}
	if *msimListen != "" {
		cfg.MSIM.EmbeddedAddr = *msimListen
	}
	if *debug {
		cfg.Log.Level = "debug"
	}
	cfg.MSIM.Accounts = append(cfg.MSIM.Accounts, accounts...)
	if err := cfg.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// run starts msimircd with its command-line arguments; passwords of
// -msim-account EMAIL are read from stdin.
func run(args []string, stdin io.Reader) error {
	o, err := parseOptions(args, stdin)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Println("msimircd", version)
		return nil
	}
	log := newLogger(o.cfg.Log)
	if o.passwordOnCommandLine {
		log.Warn("-msim-account EMAIL:PASSWORD shows the password to every local user (ps, /proc); use -msim-account-file FILE, or -msim-account EMAIL and give the password on standard input")
	}
	warnReadableSecrets(o.configPath, o.configHasPasswords, o.cfg, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.debugListen != "" {
		if !isLoopback(o.debugListen) {
			return fmt.Errorf("-debug-listen %s: only loopback addresses are allowed", o.debugListen)
		}
		ln, err := net.Listen("tcp", o.debugListen)
		if err != nil {
			return fmt.Errorf("-debug-listen: %w", err)
		}
		srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Infof("debug endpoints (pprof, expvar) on http://%s/debug/", ln.Addr())
	}
	return locateKey(o.configPath, serve(ctx, o.cfg, log, nil))
}

func newLogger(c LogConfig) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	if lvl, err := logrus.ParseLevel(c.Level); err == nil {
		l.SetLevel(lvl)
	}
	if strings.EqualFold(c.Format, "json") {
		l.SetFormatter(&logrus.JSONFormatter{})
	}
	return logrus.NewEntry(l)
}

// listening is where a running msimircd can be reached.
type listening struct {
	irc  []string // the IRC listeners
	msim string   // the MSIM server the bridge uses (the embedded one's, if any)
}

// ready, when not nil, receives the addresses once serving (tests use it).
func serve(ctx context.Context, cfg Config, log *logrus.Entry, ready chan<- listening) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	serveCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	msimAddr := cfg.MSIM.Server
	var dir channel.Directory
	var msrv *server.Server
	if msimAddr == "" {
		store := server.NewMemStore()
		if cfg.MSIM.DataFile != "" {
			var err error
			if store, err = server.OpenFileStore(cfg.MSIM.DataFile); err != nil {
				return err
			}
		}
		// The store is closed after every goroutine using it has ended.
		defer func() { cancel(); wg.Wait(); store.Close() }()
		var err error
		msrv, err = server.New(embeddedConfig(cfg.MSIM), store, log.WithField("part", "msim-server"))
		if err != nil {
			return err
		}
		var seeded []channel.Account
		for _, spec := range cfg.MSIM.allAccounts() {
			email, pw, _ := strings.Cut(spec, ":")
			uid, created, err := msrv.SeedAccount(spec)
			if err != nil {
				return err
			}
			if created {
				log.WithFields(logrus.Fields{"email": email, "uid": uid}).Info("embedded MSIM account created")
			} else if msrv.CheckPassword(email, pw) != nil {
				log.WithField("email", email).Warn("an account to create on the embedded MSIM network exists with another password: it is kept as it is, and its IRC nick cannot log in to it with the password given")
				continue
			}
			seeded = append(seeded, channel.Account{Email: email, Password: pw})
		}
		if err := seedUserAccounts(msrv, cfg.Users, log); err != nil {
			return err
		}
		addr := cfg.MSIM.EmbeddedAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		} else if !isLoopback(addr) {
			log.Warnf("the embedded MSIM network listens on %s, not on loopback: anyone who can reach it may try to log in", addr)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("embedded MSIM server: %w", err)
		}
		msimAddr = ln.Addr().String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := msrv.Serve(serveCtx, ln); err != nil && !errors.Is(err, context.Canceled) {
				log.WithError(err).Error("embedded MSIM server stopped")
			}
		}()
		if cfg.MSIM.EmbeddedAddr != "" {
			log.Infof("embedded MSIM network: MSIM clients can log in at %s", msimAddr)
		}
		if len(cfg.Users) == 0 {
			key, keyPath, err := demoKey(cfg.MSIM.DataFile)
			if err != nil {
				return err
			}
			if keyPath != "" {
				log.WithField("key_file", keyPath).Debug("demo accounts' MSIM passwords derive from the key file")
			}
			dir = channel.WithServerPassword(cfg.IRC.Password, &channel.DemoDirectory{
				CreateAccount: msrv.AddAccount,
				Exists:        func(err error) bool { return errors.Is(err, server.ErrAccountExists) },
				CheckPassword: msrv.CheckPassword,
				UserNameOwner: userNameOwner(store),
				Retire:        retireAccount(store),
				Key:           key,
				Seeded:        seeded,
				Creations:     guard.NewQuota(cfg.MSIM.AccountCreationPerHour, time.Hour, nil),
				Log:           log.WithField("part", "directory"),
			})
		}
	}
	if dir == nil {
		dir = &channel.StaticDirectory{Users: staticUsers(cfg.Users), ServerPassword: cfg.IRC.Password}
	}
	bridge, err := channel.New(channel.Config{
		MSIMAddr: msimAddr, ServiceNick: cfg.IRC.ServiceNick, Directory: dir,
		DialTimeout: cfg.MSIM.Timeout.Duration, RequestTimeout: cfg.MSIM.Timeout.Duration,
		ReconnectMin: cfg.MSIM.ReconnectMin.Duration, ReconnectMax: cfg.MSIM.ReconnectMax.Duration,
		QueueLimit: cfg.MSIM.QueueLimit,
		Log:        log.WithField("part", "bridge"),
	})
	if err != nil {
		return err
	}
	motd := cfg.IRC.MOTD
	if len(motd) == 0 {
		motd = []string{"msimircd " + version + ": MySpaceIM on IRC.", "Your MSIM accounts are control channels; type help in one."}
	}
	isrv := ircd.NewServer(ircd.Config{
		ServerName: cfg.IRC.ServerName, Network: cfg.IRC.Network, Version: "msimircd-" + version, MOTD: motd,
		PingInterval: cfg.IRC.PingInterval.Duration, SendQ: cfg.IRC.SendQ,
		FloodRate: cfg.IRC.FloodRate, FloodBurst: cfg.IRC.FloodBurst,
		MaxConnections: cfg.IRC.MaxConnections, MaxConnectionsPerAddr: cfg.IRC.MaxConnectionsPerAddr,
	}, bridge, log.WithField("part", "ircd"))

	var addrs []string
	var lns []net.Listener
	for _, a := range cfg.IRC.Listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(lns)
			return fmt.Errorf("irc listener: %w", err)
		}
		lns = append(lns, ln)
	}
	for _, t := range cfg.IRC.TLS {
		ln, err := ircd.ListenTLS(t.Listen, t.Cert, t.Key)
		if err != nil {
			closeAll(lns)
			return fmt.Errorf("irc TLS listener: %w", err)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		addrs = append(addrs, ln.Addr().String())
		if !isLoopback(ln.Addr().String()) {
			log.Warnf("IRC listener %s is not on loopback", ln.Addr())
		}
		wg.Add(1)
		go func(ln net.Listener) {
			defer wg.Done()
			if err := isrv.Serve(serveCtx, ln); err != nil && !errors.Is(err, context.Canceled) {
				log.WithError(err).Error("IRC listener stopped")
			}
		}(ln)
	}
	log.WithField("msim", msimAddr).Infof("msimircd %s: IRC on %s", version, strings.Join(addrs, ", "))
	if ready != nil {
		ready <- listening{irc: addrs, msim: msimAddr}
	}

	<-ctx.Done()
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := isrv.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("IRC shutdown")
	}
	if err := bridge.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("bridge shutdown")
	}
	if msrv != nil {
		if err := msrv.Shutdown(sctx); err != nil {
			log.WithError(err).Warn("MSIM server shutdown")
		}
	}
	cancel()
	return nil
}

// embeddedConfig is the embedded MSIM server's configuration. The bridge
// logs every IRC user in from this host: its addresses are not limited per
// address (the total cap and the per-account delays still apply).
func embeddedConfig(m MSIMConfig) server.Config {
	return server.Config{
		Demo: true, TrustedNets: bridgeNets(m.EmbeddedAddr),
		MaxConnections: m.MaxConnections, MaxConnectionsPerAddr: m.MaxConnectionsPerAddr,
		OfflinePerRecipientBytes: m.OfflineBytesPerRecipient, OfflinePerSenderBytes: m.OfflineBytesPerSender,
	}
}

// bridgeNets are the addresses the bridge's MSIM connections come from
// when it dials the embedded server listening at addr: loopback, or the
// listener's own address when it is a specific one.
func bridgeNets(addr string) []netip.Prefix {
	nets := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nets
	}
	if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		nets = append(nets, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return nets
}

// seedUserAccounts makes the [[user.account]]s on the embedded network, as
// the config gives them; one that exists with another password stops the
// start, naming the key to edit.
func seedUserAccounts(msrv *server.Server, users []UserEntry, log *logrus.Entry) error {
	for i, u := range users {
		for j, a := range u.Accounts {
			uid, created, err := msrv.SeedAccount(a.Email + ":" + a.Password)
			if err != nil {
				return err
			}
			if created {
				log.WithFields(logrus.Fields{"email": a.Email, "uid": uid}).Info("embedded MSIM account created")
				continue
			}
			if msrv.CheckPassword(a.Email, a.Password) != nil {
				field := "password"
				if a.PasswordFile != "" {
					field = "password_file"
				}
				return errKey(fmt.Sprintf("the embedded MSIM network has the account %s with another password: give its password here, or set msim.server to use another MSIM network", a.Email),
					field, pathStep{"user", i}, pathStep{"user.account", j})
			}
		}
	}
	return nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
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
