// Command msimd runs a standalone MSIM (MySpaceIM) server: the network
// msimircd embeds, on its own, for real MSIM clients and for testing.
//
//	msimd [-listen ADDR] [-data PATH] [-demo] [-account EMAIL:PASSWORD]... [-debug]
//	msimd [-data PATH] [-demo] adduser EMAIL PASSWORD [USERNAME]
//
// Without -data the network lives in memory and is gone at exit. Accounts
// are created out of band, because the login never reveals the password to
// the server: with -account at start (the user name is the part of the
// address before '@') or with adduser on the durable store.
package main

import (
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

	"github.com/msimircd/msimircd/msim/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "msimd:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// accountFlags collects repeated -account EMAIL:PASSWORD flags. String
// never shows the passwords.
type accountFlags []string

func (a *accountFlags) String() string { return fmt.Sprintf("%d accounts", len(*a)) }

func (a *accountFlags) Set(v string) error {
	email, pw, ok := strings.Cut(v, ":")
	if !ok || email == "" || pw == "" {
		return errors.New("want EMAIL:PASSWORD")
	}
	*a = append(*a, v)
	return nil
}

type options struct {
	listen   string
	data     string
	demo     bool
	debug    bool
	accounts accountFlags
}

// run is main without the process: it serves until ctx ends. ready, if not
// nil, is called with the listening address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) error {
	var o options
	fs := flag.NewFlagSet("msimd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:1863", "address to accept MSIM clients on")
	fs.StringVar(&o.data, "data", "", "durable store file (default: in memory)")
	fs.BoolVar(&o.demo, "demo", false, "seed the demo user Tom (uid 6221), who answers IMs")
	fs.BoolVar(&o.debug, "debug", false, "log every message (session keys, nonces and login responses redacted)")
	fs.Var(&o.accounts, "account", "create the account `EMAIL:PASSWORD` at start (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: msimd [flags]\n       msimd [-data PATH] [-demo] adduser EMAIL PASSWORD [USERNAME]")
		fs.PrintDefaults()
	}
	sub := len(args) > 0 && args[0] == "adduser"
	if sub {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	rest := fs.Args()
	if !sub && len(rest) > 0 && rest[0] == "adduser" {
		sub, rest = true, rest[1:]
	}

	l := logrus.New()
	l.SetOutput(stderr)
	if o.debug {
		l.SetLevel(logrus.DebugLevel)
	}
	log := logrus.NewEntry(l)

	if sub {
		return addUser(o, rest, log)
	}
	if len(rest) > 0 {
		fs.Usage()
		return errUsage
	}
	return serve(ctx, o, log, ready)
}

func openStore(o options) (server.Store, error) {
	if o.data == "" {
		return server.NewMemStore(), nil
	}
	return server.OpenFileStore(o.data)
}

// addUser is "msimd adduser EMAIL PASSWORD [USERNAME]" on the durable store.
func addUser(o options, args []string, log *logrus.Entry) error {
	if len(args) < 2 || len(args) > 3 {
		return fmt.Errorf("%w: msimd -data PATH adduser EMAIL PASSWORD [USERNAME]", errUsage)
	}
	if o.data == "" {
		return fmt.Errorf("%w: adduser needs -data PATH (an in-memory account would vanish at once)", errUsage)
	}
	store, err := openStore(o)
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := server.New(server.Config{Demo: o.demo}, store, log)
	if err != nil {
		return err
	}
	name := ""
	if len(args) == 3 {
		name = args[2]
	}
	uid, err := srv.AddAccount(args[0], args[1], name)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"email": args[0], "uid": uid}).Info("account added")
	return nil
}

func serve(ctx context.Context, o options, log *logrus.Entry, ready func(string)) error {
	store, err := openStore(o)
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := server.New(server.Config{Demo: o.demo}, store, log)
	if err != nil {
		return err
	}
	for _, a := range o.accounts {
		email, _, _ := strings.Cut(a, ":")
		uid, created, err := srv.SeedAccount(a)
		switch {
		case err != nil:
			return err
		case !created:
			log.WithField("email", email).Info("account exists; kept as it is")
		default:
			log.WithFields(logrus.Fields{"email": email, "uid": uid}).Info("account ready")
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "demo": o.demo, "data": o.data}).Info("msimd serving")
	if ready != nil {
		ready(ln.Addr().String())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		if err != nil {
			return err
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-served
	return err
}
