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
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/msimircd/msimircd/histproc"
	"github.com/sirupsen/logrus"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	if len(os.Args) == 2 && os.Args[1] == histproc.Arg {
		// The gateway's history writer (histproc): it reads what to do
		// from stdin.
		os.Exit(histproc.Serve(os.Stdin, os.Stdout, os.Stderr))
	}
	if err := run(os.Args[1:], os.Stdin); err != nil && !helpShown(err) {
		fmt.Fprintln(os.Stderr, "msimircd:", err)
		os.Exit(1)
	}
}

// options is what the command line asks for.
type options struct {
	cfg                   Config
	fileCfg               Config // the config file as read, for reloads (SIGHUP)
	configPath            string
	configHasPasswords    bool // the config file itself holds passwords
	passwordOnCommandLine bool
	debugListen           string
	debugContention       bool
	version               bool
	flags                 *flag.FlagSet // for -help
}

// parseOptions reads the command line (and the config file it names);
// passwords of -msim-account EMAIL are read from stdin.
func parseOptions(args []string, stdin io.Reader) (options, error) {
	var o options
	fs := flag.NewFlagSet("msimircd", flag.ContinueOnError)
	o.flags = fs
	setHelp(fs) // help.go
	fs.StringVar(&o.configPath, "config", "", "config file (TOML); none = the embedded demo network")
	stateDir := fs.String("state", "", "keep the gateway's database, its key file and the embedded network's data in `DIR`, overriding the config's store.state_dir (default $XDG_STATE_HOME/msimircd, else ~/.local/state/msimircd)")
	listen := fs.String("listen", "", "IRC listen address, overriding the config (default 127.0.0.1:6667)")
	serverName := fs.String("server-name", "", "the IRC server's name in prefixes and numerics, overriding the config's irc.server_name (default msimircd)")
	msimListen := fs.String("msim-listen", "", "expose the embedded MSIM server at this address (e.g. 127.0.0.1:1863) so MSIM clients can join its network")
	debug := fs.Bool("debug", false, "log at debug level, protocol lines included (never passwords or keys; message texts as their sizes)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	var msimAccounts accountList
	fs.Var(&msimAccounts, "msim-account", "create the account `EMAIL` on the embedded MSIM network (repeatable), e.g. for an MSIM client joining through -msim-listen; its password is read from standard input, one line per account (EMAIL:PASSWORD works too, but shows the password to every local user)")
	msimAccountFile := fs.String("msim-account-file", "", "create the accounts listed in `FILE` (lines EMAIL:PASSWORD) on the embedded MSIM network")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics, /healthz and /readyz at `ADDR` (loopback unless the config sets metrics.public), overriding the config's metrics.listen")
	fs.StringVar(&o.debugListen, "debug-listen", "", "serve Go's pprof and expvar (memory statistics) at this loopback address, e.g. 127.0.0.1:6060")
	fs.BoolVar(&o.debugContention, "debug-contention", false, "with -debug-listen: sample lock contention and goroutine blocking for pprof's mutex and block profiles (costs a little CPU)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.version {
		return o, nil
	}
	if o.debugContention && o.debugListen == "" {
		return o, errors.New("-debug-contention: the profiles are served at -debug-listen, which is not set")
	}
	o.cfg = Defaults()
	if o.configPath != "" {
		var err error
		if o.cfg, err = LoadConfig(o.configPath); err != nil {
			return o, err
		}
		o.fileCfg = o.cfg
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
	if *metricsListen != "" {
		cfg.Metrics.Listen = *metricsListen
	}
	cfg.MSIM.Accounts = append(cfg.MSIM.Accounts, accounts...)
	if err := cfg.resolveStateDir(*stateDir); err != nil {
		return o, err
	}
	*cfg = cfg.withState()
	if err := cfg.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// run starts msimircd with its command-line arguments; passwords of
// -msim-account EMAIL are read from stdin. "msimircd user …" administers
// the stored users instead (runUser).
func run(args []string, stdin io.Reader) error {
	if len(args) > 0 && args[0] == "user" {
		return runUser(args[1:], stdin, os.Stdout, os.Stderr)
	}
	// SIGHUP is caught before anything can wait (parseOptions reads
	// passwords from stdin): its default action would end the process. One
	// that comes before the gateway runs reloads the config once it does.
	hup := make(chan os.Signal, 1) // SIGHUP reloads the config file
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	o, err := parseOptions(args, stdin)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Println(versionLine())
		return nil
	}
	log := newLogger(o.cfg.Log)
	log.Info(stateLine(o.cfg)) // first: where this run keeps what it must not forget
	if o.passwordOnCommandLine {
		log.Warn("-msim-account EMAIL:PASSWORD shows the password to every local user (ps, /proc); use -msim-account-file FILE, or -msim-account EMAIL and give the password on standard input")
	}
	warnReadableSecrets(o.configPath, o.configHasPasswords, o.cfg, log)
	if w := o.cfg.registrationWarning(); w != "" {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.debugListen != "" {
		addr, stop, err := serveDebug(o.debugListen, o.debugContention)
		if err != nil {
			return err
		}
		defer stop()
		log.Infof("debug endpoints (pprof, expvar) on http://%s/debug/", addr)
	}
	return locateKey(o.configPath, serveReloading(ctx, o.cfg, o.fileCfg, o.configPath, log, nil, hup))
}

// Sampling of the mutex and block profiles with -debug-contention: one lock
// contention event in mutexFraction, and blocking events about one per
// blockRate nanoseconds spent blocked.
const (
	mutexFraction = 10
	blockRate     = 100_000
)

// serveDebug serves pprof and expvar at addr (loopback only) until stop;
// contention: sample lock contention and blocking for their profiles.
func serveDebug(addr string, contention bool) (net.Addr, func(), error) {
	if !isLoopback(addr) {
		return nil, nil, fmt.Errorf("-debug-listen %s: only loopback addresses are allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-debug-listen: %w", err)
	}
	if contention {
		runtime.SetMutexProfileFraction(mutexFraction)
		runtime.SetBlockProfileRate(blockRate)
	}
	srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr(), func() { _ = srv.Close() }, nil
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
