package cluster

// What the test clusters run on: the store engine (one memory store shared
// by every node, or PostgreSQL with a handle per node, as real nodes have)
// and the NATS server (in-process, or an external one). The environment
// variables below point the tests at real servers; .ci/run sets both.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/internal/pgtest"
	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim/server"
)

// Environment variables naming the real servers the tests may use.
const (
	// natsEnv holds a nats:// URL of a running NATS server; unset, each
	// test runs a server in-process.
	natsEnv = "MSIMIRCD_TEST_NATS"
)

// inCI reports whether the tests run under .ci/run (CI=true), which sets
// up PostgreSQL and NATS: there a missing server fails instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// engine is a store engine for a test cluster.
type engine struct {
	name string
	// fresh makes an empty database for one test and returns how to open
	// a handle on it; each node calls it for a handle of its own.
	fresh func(tb testing.TB) func(testing.TB) server.Store
}

// engines are the store engines every cluster scenario runs on.
var engines = []engine{
	{"mem", freshMem},
	{"postgres", freshPostgres},
}

// memEngine is the engine of the benchmarks: the bus's cost alone.
var memEngine = engines[0]

// forEngines runs test once per engine, as subtests named after them.
func forEngines(t *testing.T, test func(t *testing.T, e engine)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e) })
	}
}

// freshMem is one memory store that every "handle" is: the nodes share it
// as in-process objects.
func freshMem(testing.TB) func(testing.TB) server.Store {
	s := server.NewMemStore()
	return func(testing.TB) server.Store { return s }
}

// freshPostgres makes a schema of the test's own in the database that
// pgtest.Env names (dropped when the test ends) and a key file; every
// handle is a store of its own on them, closed when the test ends.
func freshPostgres(tb testing.TB) func(testing.TB) server.Store {
	tb.Helper()
	dsn := pgtest.DSN(tb)
	if !sqldb.IsPostgresURL(dsn) {
		tb.Fatalf("%s: want a postgres:// URL", pgtest.Env)
	}
	key := filepath.Join(tb.TempDir(), "msimd.key")
	return func(tb testing.TB) server.Store {
		tb.Helper()
		s, err := server.OpenStore(ctxT(tb), dsn, server.StoreOptions{KeyFile: key})
		if err != nil {
			tb.Fatalf("OpenStore: %v", err)
		}
		tb.Cleanup(func() {
			if err := s.Close(); err != nil {
				tb.Errorf("close store: %v", err)
			}
		})
		return s
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testNet is what a test cluster's nodes share: a NATS server, with a
// subject prefix of the test's own, and a database.
type testNet struct {
	url     string       // the NATS server
	subject string       // subject prefix: the test's own, so tests sharing a server never hear each other
	store   server.Store // the test's handle on the database, to set up and look
	open    func(testing.TB) server.Store
}

// newNet starts (or names) the NATS server and makes the database of e.
func newNet(tb testing.TB, e engine) *testNet {
	tb.Helper()
	open := e.fresh(tb) // first: a skipped engine starts nothing
	tn := &testNet{url: startNATS(tb), subject: "msimdtest." + randomHex(6), open: open}
	tn.store = tn.open(tb)
	return tn
}

// startNATS returns the URL of the NATS server of natsEnv, or runs one
// in-process on a loopback port (as NATS's documentation recommends for
// tests) until the test ends.
func startNATS(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv(natsEnv); u != "" {
		return u
	}
	return startLocalNATS(tb)
}

// natsHostPort is the host:port of a nats://host:port URL (the first of a
// list), for the proxy that relays to it.
func natsHostPort(tb testing.TB, u string) string {
	tb.Helper()
	first, _, _ := strings.Cut(u, ",")
	p, err := url.Parse(first)
	if err != nil || p.Host == "" {
		tb.Fatalf("NATS URL %q: want nats://host:port (%v)", u, err)
	}
	return p.Host
}

// TestExternalNATS: the server natsEnv names answers, and is the one the
// cluster scenarios use (the in-process server is not started). Skipped
// without natsEnv; failed without it in CI, which starts Debian's
// nats-server.
func TestExternalNATS(t *testing.T) {
	u := os.Getenv(natsEnv)
	if u == "" {
		msg := "no external NATS server: set " + natsEnv + " to a nats:// URL (e.g. of Debian's nats-server: nats-server -a 127.0.0.1 -p 4222) to run the cluster tests against it"
		if inCI() {
			t.Fatal(msg + " (.ci/run sets it)")
		}
		t.Skip(msg)
	}
	if got := startNATS(t); got != u {
		t.Errorf("startNATS: got %s, want the external server %s", got, u)
	}
	nc, err := nats.Connect(u, nats.Timeout(wait))
	if err != nil {
		t.Fatalf("connect %s: %v", u, err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(wait); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if !nc.HeadersSupported() {
		t.Errorf("server %s: no headers support, want it (requests need no-responders replies)", nc.ConnectedServerVersion())
	}
	t.Logf("external NATS server %s, version %s", nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion())
	// A request nobody answers fails at once with no responders: how a
	// node learns a user is connected nowhere.
	_, err = nc.Request("msimdtest."+randomHex(6)+".u.1", []byte{opState}, wait)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("request without responders: got %v, want %v", err, nats.ErrNoResponders)
	}
}
