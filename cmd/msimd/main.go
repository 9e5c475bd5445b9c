// Command msimd runs a standalone MSIM (MySpaceIM) server: the network
// msimircd embeds, on its own, for real MSIM clients and for testing.
//
//	msimd [-config FILE] [-listen ADDR] [-data PATH | -db DSN] [-key PATH] [-demo] [-account-file FILE] [limits] [-metrics-listen ADDR [-metrics-public]] [-nats URL[,URL] [-node NAME]] [-debug]
//	msimd (-data PATH | -db DSN) [-key PATH] [-demo] adduser [-username NAME] EMAIL   (password on standard input)
//	msimd (-data PATH | -db DSN) [-key PATH] import [-key OLD.key] OLD.db
//
// Without -data or -db the network lives in memory and is gone at exit.
// -data PATH keeps it in a SQLite database file; -db DSN in PostgreSQL
// (a postgres:// URL, which several msimd nodes may share) or, given a
// path, in SQLite too. The password hashes in the database are sealed
// under the key file -key (for SQLite, default: the database file's path +
// ".key", created mode 0600 at first start; PostgreSQL needs -key): keep it
// out of the database's backups.
//
// import copies the data file of an earlier msimd (a bbolt file, sealed
// under OLD.db.key unless its own -key says otherwise) into an empty
// -data or -db store.
//
// Accounts are created out of band, because the login never reveals the
// password to the server: with adduser on the durable store (it prompts for
// the password, or reads one line from standard input; a running msimd sees
// the account at once), or from an -account-file of EMAIL:PASSWORD lines
// (mode 0600; the user name is the part of the address before '@'). A
// running msimd re-reads its -account-file on SIGHUP. The older forms
// "adduser EMAIL PASSWORD [USERNAME]" and "-account EMAIL:PASSWORD" still
// work but put the password where other local users can read it (ps,
// /proc), and say so.
//
// -config FILE reads the settings from a TOML file whose keys mirror the
// flags (msimd.toml.example; config.go); flags on the command line win
// over it. -account has no key: passwords stay out of the file. A password
// (or NATS token) in -db or -nats is on the command line too, and msimd
// says so: it belongs in PGPASSFILE, or in db or cluster.nats of a config
// file only its owner may read (mode 0600).
//
// With -nats, msimd is one node of a cluster: nodes that share the store
// and a NATS server (or cluster) serve one network (package cluster).
//
// With -metrics-listen, msimd serves Prometheus metrics at /metrics,
// liveness at /healthz and readiness (the MSIM listener is served, the store
// answers) at /readyz, on a loopback address unless -metrics-public.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"

	"github.com/msimircd/msimircd/cluster"
	"github.com/msimircd/msimircd/internal/secretflag"
	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/metrics"
	"github.com/msimircd/msimircd/msim/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is pending already
			}
		}
	}()
	e := env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, reload: reload}
	if err := run(ctx, os.Args[1:], e); err != nil && !helpShown(err) {
		fmt.Fprintln(os.Stderr, "msimd:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// env is what run takes from the process; tests pass their own.
type env struct {
	stdin  io.Reader
	stdout io.Writer // -help's text; nil = os.Stdout
	stderr io.Writer
	ready  func(addr string)      // called with the listening address, if not nil
	reload <-chan struct{}        // re-read the -account-file (SIGHUP)
	flags  func(fs *flag.FlagSet) // called with the flags once defined, if not nil (the help's tests)

	// metricsReady is called with the metrics listener's address, if not
	// nil and there is one, before ready.
	metricsReady func(addr string)
}

// accountFlags collects repeated -account EMAIL:PASSWORD flags, never
// shown (secretflag).
type accountFlags = secretflag.List

// checkAccounts refuses a malformed -account, saying which one but not
// what it holds.
func checkAccounts(a accountFlags) error {
	err := a.Check("account", "EMAIL:PASSWORD", func(v string) bool {
		email, pw, ok := strings.Cut(v, ":")
		return ok && email != "" && pw != ""
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}

type options struct {
	listen      string
	data        string
	db          string
	key         string
	demo        bool
	debug       bool
	accounts    accountFlags
	accountFile string
	userName    string
	limits      server.Config

	metricsListen string
	metricsPublic bool

	nats string // NATS URLs: join a cluster
	node string // this node's name in the cluster

	config string              // the config file -config names
	from   map[string]fromFile // flag name → where the config file set it
}

// run is main without the process: it serves until ctx ends, or runs
// adduser.
func run(ctx context.Context, args []string, e env) error {
	var o options
	fs := flag.NewFlagSet("msimd", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:1863", "address to accept MSIM clients on")
	fs.StringVar(&o.data, "data", "", "keep the network in the SQLite database file `PATH` (default: in memory)")
	fs.StringVar(&o.db, "db", "", "keep the network in `DSN`: a PostgreSQL URL (postgres://…; needs -key) or a SQLite file's path")
	fs.StringVar(&o.key, "key", "", "key file sealing the password hashes in the database (default for SQLite: the database file's path + \".key\"; created mode 0600)")
	fs.BoolVar(&o.demo, "demo", false, "seed the demo user Tom (uid 6221), who answers IMs")
	fs.BoolVar(&o.debug, "debug", false, "log every message (session keys, nonces and login responses redacted, IM texts as their sizes)")
	fs.StringVar(&o.accountFile, "account-file", "", "create the accounts of `FILE` (lines EMAIL:PASSWORD, mode 0600) at start and on SIGHUP")
	fs.Var(&o.accounts, "account", "create the account `EMAIL:PASSWORD` at start (repeatable; other local users can read it: prefer -account-file)")
	fs.StringVar(&o.userName, "username", "", "adduser: the new account's user name")
	fs.IntVar(&o.limits.MaxConnections, "max-conns", 0, fmt.Sprintf("connections in all (0: %d; negative: no cap)", server.DefaultMaxConnections))
	fs.IntVar(&o.limits.MaxConnectionsPerAddr, "max-conns-per-addr", 0, fmt.Sprintf("connections per address (0: %d; negative: no cap)", server.DefaultMaxConnectionsPerAddr))
	fs.Int64Var(&o.limits.OfflinePerRecipientBytes, "offline-bytes", 0, fmt.Sprintf("bytes of offline IMs waiting for one user (0: %d; negative: no cap)", server.DefaultOfflinePerRecipientBytes))
	fs.Int64Var(&o.limits.OfflinePerSenderBytes, "offline-sender-bytes", 0, fmt.Sprintf("bytes one sender may have waiting for one user (0: %d; negative: no cap)", server.DefaultOfflinePerSenderBytes))
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics, /healthz and /readyz on `ADDR` (default: off; loopback only unless -metrics-public)")
	fs.BoolVar(&o.metricsPublic, "metrics-public", false, "allow a non-loopback -metrics-listen address (the endpoints have no authentication)")
	fs.StringVar(&o.nats, "nats", "", "join the cluster of msimd nodes on the NATS servers `URL[,URL]` (nats://host:4222); every node must share the store (default: a single process)")
	fs.StringVar(&o.node, "node", "", "this node's `NAME` in the cluster, in logs (default: the host name)")
	fs.StringVar(&o.config, "config", "", "read settings from the TOML file `FILE`, whose keys mirror the flags (msimd.toml.example); flags given on the command line win over it")
	setHelp(fs, e) // help.go
	sub := len(args) > 0 && args[0] == "adduser"
	if sub {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	rest := fs.Args()
	if !sub && len(rest) > 0 && rest[0] == "adduser" {
		sub, rest = true, rest[1:]
		if err := fs.Parse(rest); err != nil { // flags after adduser
			return parseError(err)
		}
		rest = fs.Args()
	}
	if err := checkAccounts(o.accounts); err != nil {
		return err
	}
	if o.config != "" {
		if err := applyConfig(&o, fs); err != nil { // config.go
			return err
		}
	}
	if o.node != "" && o.nats == "" {
		return o.usageErr("node", "%s needs %s (it names this node in the cluster)", o.name("node"), o.other("node", "nats"))
	}
	if o.data != "" && o.db != "" {
		blame := "data"
		if _, ok := o.from["db"]; ok {
			blame = "db"
		}
		return o.usageErr(blame, "%s and %s both name the store: give one", o.name("data"), o.name("db"))
	}
	if o.data != "" && sqldb.IsPostgresURL(o.data) {
		return o.usageErr("data", "%s is a SQLite file's path; give a PostgreSQL URL with %s", o.name("data"), o.other("data", "db"))
	}
	if sqldb.IsKeyValueDSN(o.dsn()) {
		blame := "db"
		if o.data != "" {
			blame = "data"
		}
		// Not shown, nor made a SQLite file of (named, and logged, as
		// the string): it may hold a password.
		return o.usageErr(blame, "%s looks like a PostgreSQL connection string of key=value pairs (not shown: it may hold a password), not a SQLite file's path; msimd takes PostgreSQL as a postgres:// URL with %s", o.name(blame), o.other(blame, "db"))
	}
	if o.key != "" && o.dsn() == "" {
		return o.usageErr("key", "%s needs %s or %s (the key seals the database's password hashes)", o.name("key"), o.other("key", "data"), o.other("key", "db"))
	}
	if sqldb.IsPostgresURL(o.db) && o.key == "" {
		return o.usageErr("db", "%s with PostgreSQL needs %s PATH, the key file sealing its password hashes (the same on every node)", o.name("db"), o.other("db", "key"))
	}

	l := logrus.New()
	l.SetOutput(e.stderr)
	if o.debug {
		l.SetLevel(logrus.DebugLevel)
	}
	log := logrus.NewEntry(l)
	warnSecretFlags(o, log)

	if sub {
		return addUser(o, rest, e, log)
	}
	if len(rest) > 0 && rest[0] == "import" {
		return importData(ctx, o, rest[1:], e, log)
	}
	if o.userName != "" {
		return fmt.Errorf("%w: -username is for adduser", errUsage)
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q (msimd -help shows the usage)", errUsage, rest)
	}
	if o.metricsListen != "" {
		if err := metrics.CheckAddr(o.metricsListen, o.metricsPublic); errors.Is(err, metrics.ErrNotLoopback) {
			public := "-metrics-public"
			if _, ok := o.from["metrics-listen"]; ok {
				public = "metrics.public = true"
			}
			return o.usageErr("metrics-listen", "%s %s is not a loopback address; add %s to serve metrics there", o.name("metrics-listen"), o.metricsListen, public)
		} else if err != nil {
			return o.usageErr("metrics-listen", "%v", err)
		}
	}
	return serve(ctx, o, e, log)
}

// name is how the user gave the setting of flag: the config file's key
// when it came from there, else the flag.
func (o options) name(flag string) string {
	if f, ok := o.from[flag]; ok {
		return f.key
	}
	return "-" + flag
}

// other names the setting of flag that a message about the setting of
// blame asks for: a config key when blame came from the file.
func (o options) other(blame, flag string) string {
	if _, ok := o.from[blame]; ok {
		for _, k := range fileKeys {
			if k.flag == flag {
				return k.key
			}
		}
	}
	return "-" + flag
}

// usageErr is a usage error about the setting of flag: when the config
// file set it, the error names the file and the line.
func (o options) usageErr(flag, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if f, ok := o.from[flag]; ok {
		return fmt.Errorf("%w: config %s: line %d: %s", errUsage, o.config, f.line, msg)
	}
	return fmt.Errorf("%w: %s", errUsage, msg)
}

// dsn is the durable store -data or -db names; "" for memory.
func (o options) dsn() string {
	if o.data != "" {
		return o.data
	}
	return o.db
}

// warnSecretFlags warns when -db or -nats, given on the command line,
// holds a password (or a NATS token): other local users can read it there
// (ps, /proc). As with -account, msimd goes on (deployments that give it so
// keep working) but says where the secret belongs; the warning never shows
// it. The same setting from the config file is that file's check
// (loadConfig refuses it in a file others may read).
func warnSecretFlags(o options, log *logrus.Entry) {
	if _, inFile := o.from["db"]; !inFile && o.db != "" && hasPassword(o.db) {
		log.Warn("-db holds a password, which other local users can read on the command line (ps, /proc): " +
			"put it in PGPASSFILE (a file of mode 0600), or give db in a -config file only its owner may read (mode 0600)")
	}
	if _, inFile := o.from["nats"]; !inFile && natsHasCredentials(o.nats) {
		log.Warn("-nats holds credentials (user:password@ or a token@), which other local users can read on the command line (ps, /proc): " +
			"give the URLs as cluster.nats in a -config file only its owner may read (mode 0600)")
	}
}

// storeOpenTimeout bounds opening the store (migrations included).
const storeOpenTimeout = time.Minute

func openStore(ctx context.Context, o options) (server.Store, error) {
	if o.dsn() == "" {
		return server.NewMemStore(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	return server.OpenStore(ctx, o.dsn(), server.StoreOptions{KeyFile: o.key})
}

// importData is "msimd (-data PATH | -db DSN) import [-key OLD.key]
// OLD.db": it copies an earlier msimd's bbolt data file into the store,
// which must be empty.
func importData(ctx context.Context, o options, args []string, e env, log *logrus.Entry) error {
	const usage = "msimd (-data PATH | -db DSN) [-key PATH] import [-key OLD.key] OLD.db"
	fs := flag.NewFlagSet("msimd import", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var oldKey string
	fs.StringVar(&oldKey, "key", "", "the key file of OLD.db (default: OLD.db.key)")
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	rest := fs.Args()
	if len(rest) > 0 { // flags after OLD.db
		if err := fs.Parse(rest[1:]); err != nil {
			return parseError(err)
		}
		rest = append(rest[:1], fs.Args()...)
	}
	if len(rest) != 1 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	if o.dsn() == "" {
		return fmt.Errorf("%w: import needs -data PATH or -db DSN before it, the store to import into: %s", errUsage, usage)
	}
	if o.userName != "" {
		return fmt.Errorf("%w: -username is for adduser", errUsage)
	}
	store, err := openStore(ctx, o)
	if err != nil {
		return err
	}
	defer store.Close()
	st, err := server.ImportBolt(ctx, rest[0], server.ImportOptions{KeyFile: oldKey}, store)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"from": rest[0], "accounts": st.Accounts, "contacts": st.Contacts,
		"offline_ims": st.Offline, "resealed": st.Resealed}).Info("data file imported; it was only read, and can be kept as a backup")
	return nil
}

// addUser is "msimd adduser [-username NAME] EMAIL" (the password from
// standard input) or the older "msimd adduser EMAIL PASSWORD [USERNAME]",
// on the durable store.
func addUser(o options, args []string, e env, log *logrus.Entry) error {
	const usage = "msimd (-data PATH | -db DSN) adduser [-username NAME] EMAIL (the password on standard input)"
	if len(args) < 1 || len(args) > 3 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	if o.dsn() == "" {
		return fmt.Errorf("%w: adduser needs -data PATH or -db DSN (an in-memory account would vanish at once)", errUsage)
	}
	email, name := args[0], o.userName
	var pw string
	if len(args) == 1 {
		p, err := readPassword(e, email)
		if err != nil {
			return err
		}
		pw = p
	} else {
		log.Warn("a password given as an argument can be read by other local users (ps, /proc, shell history); " +
			"run 'msimd adduser EMAIL' and type it, or pipe it on standard input")
		pw = args[1]
		if len(args) == 3 {
			if name != "" {
				return fmt.Errorf("%w: the user name is given twice (-username and an argument)", errUsage)
			}
			name = args[2]
		}
	}
	store, err := openStore(context.Background(), o)
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := server.New(server.Config{Demo: o.demo}, store, log)
	if err != nil {
		return err
	}
	uid, err := srv.AddAccount(email, pw, name)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"email": email, "uid": uid}).Info("account added")
	return nil
}

// maxPasswordLine bounds a password line read from standard input.
const maxPasswordLine = 1024

// readPassword prompts for a password without echo when standard input is
// a terminal (twice, to catch a typo); otherwise it reads one line.
func readPassword(e env, email string) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(e.stderr, "Password for %s: ", email)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(e.stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return "", errors.New("the passwords differ")
		}
		if len(pw) == 0 {
			return "", errors.New("empty password")
		}
		return string(pw), nil
	}
	r := bufio.NewReaderSize(e.stdin, maxPasswordLine)
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("the password line on standard input is longer than %d bytes", maxPasswordLine)
	case err != nil && !errors.Is(err, io.EOF):
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(string(line), "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input (give it as one line)")
	}
	return pw, nil
}

// readAccountFile reads EMAIL:PASSWORD lines; blank lines and lines
// starting with '#' are skipped. A file others may read is refused: it
// holds passwords.
func readAccountFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("account file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("account file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("account file %s has mode %04o: it holds passwords, so only its owner may read it (chmod 600 %s)", path, perm, path)
	}
	var specs []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		email, pw, ok := strings.Cut(line, ":")
		if !ok || email == "" || pw == "" {
			return nil, fmt.Errorf("account file %s line %d: not EMAIL:PASSWORD", path, n) // never echo it: it may hold a password
		}
		specs = append(specs, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("account file %s: %w", path, err)
	}
	return specs, nil
}

// seed creates the accounts of specs that do not exist yet.
func seed(srv *server.Server, specs []string, log *logrus.Entry) error {
	for _, a := range specs {
		email, _, _ := strings.Cut(a, ":")
		uid, created, err := srv.SeedAccount(a)
		switch {
		case err != nil:
			return fmt.Errorf("account %s: %w", email, err)
		case !created:
			log.WithField("email", email).Debug("account exists; kept as it is")
		default:
			log.WithFields(logrus.Fields{"email": email, "uid": uid}).Info("account ready")
		}
	}
	return nil
}

func serve(ctx context.Context, o options, e env, log *logrus.Entry) error {
	store, err := openStore(ctx, o)
	if err != nil {
		return err
	}
	defer store.Close()
	cfg := o.limits
	cfg.Demo = o.demo
	reg := metrics.NewRegistry()
	if o.metricsListen != "" {
		cfg.Metrics = reg
	}
	var bus *cluster.Node
	if o.nats != "" {
		if o.dsn() == "" {
			log.Warn("-nats with the store in memory: this node's accounts and offline IMs are its own, and other nodes cannot see them (give every node the same -db)")
		}
		bus, err = cluster.Connect(cluster.Config{URL: o.nats, Name: o.node, Metrics: cfg.Metrics}, log)
		if err != nil {
			return err
		}
		defer bus.Close() // after the server's Shutdown: its logouts reach the other nodes
		cfg.Bus = bus
	}
	srv, err := server.New(cfg, store, log)
	if err != nil {
		return err
	}
	if len(o.accounts) > 0 {
		log.Warn("-account puts a password on the command line, where other local users can read it (ps, /proc); use -account-file instead")
	}
	if err := seed(srv, o.accounts, log); err != nil {
		return err
	}
	if o.accountFile != "" {
		specs, err := readAccountFile(o.accountFile)
		if err != nil {
			return err
		}
		if err := seed(srv, specs, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	var ms *metrics.Server
	if o.metricsListen != "" {
		ms, err = metrics.Listen(o.metricsListen, o.metricsPublic, reg)
		if err != nil {
			ln.Close()
			return err
		}
		ms.AddCheck("msim listener", srv.CheckListening)
		ms.AddCheck("store", srv.CheckStore)
		if bus != nil {
			ms.AddCheck("cluster", bus.Check)
		}
		log.WithField("metrics", ms.Addr().String()).Info("serving /metrics, /healthz and /readyz")
		if e.metricsReady != nil {
			e.metricsReady(ms.Addr().String())
		}
	}
	log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "demo": o.demo, "store": storeName(o), "cluster": bus != nil}).Info("msimd serving")
	if e.ready != nil {
		e.ready(ln.Addr().String())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	// The metrics listener outlives the MSIM one, so /readyz reports the
	// shutdown; it stops last.
	var metricsDone chan error // nil, never ready, without metrics
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	if ms != nil {
		metricsDone = make(chan error, 1)
		go func() { metricsDone <- ms.Serve(mctx) }()
	}
	var failed error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-served:
			if err != nil {
				failed = err
			}
			served = nil
			break loop
		case err := <-metricsDone:
			metricsDone = nil
			failed = err // Serve returns nil only when mctx ends
			break loop
		case <-e.reload:
			reloadAccounts(srv, o.accountFile, log)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if served != nil {
		<-served
	}
	stopMetrics()
	if metricsDone != nil {
		<-metricsDone
	}
	return errors.Join(failed, err)
}

// storeName says where the network is kept, for the log: never a
// PostgreSQL URL (it may hold a password).
func storeName(o options) string {
	switch {
	case o.dsn() == "":
		return "memory"
	case sqldb.IsPostgresURL(o.dsn()):
		return "postgres"
	}
	return "sqlite " + o.dsn()
}

// reloadAccounts creates the accounts added to the account file since it
// was last read. A bad file is logged; the server goes on.
func reloadAccounts(srv *server.Server, path string, log *logrus.Entry) {
	if path == "" {
		log.Warn("reload asked, but there is no -account-file to read")
		return
	}
	specs, err := readAccountFile(path)
	if err == nil {
		err = seed(srv, specs, log)
	}
	if err != nil {
		log.WithError(err).Error("account file not reloaded")
		return
	}
	log.WithField("accounts", len(specs)).Info("account file reloaded")
}
