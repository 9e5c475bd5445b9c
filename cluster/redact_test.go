package cluster

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/sirupsen/logrus"
)

// TestRedact: the credentials of NATS URLs are hidden, with or without a
// scheme (nats.go takes host:port, user:password@host:port, token@host…).
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":   "nats://127.0.0.1:4222",
		"nats://u:hunter2@h:4222": "nats://…@h:4222",
		"tls://tok@h":             "tls://…@h",
		"u:hunter2@h:4222":        "…@h:4222",
		"hunter2@h":               "…@h",
		"nats://a:hunter2@h1, u:hunter2@h2,nats://h3": "nats://…@h1,…@h2,nats://h3",
		"nats://u:hun@ter2@h":                         "nats://…@h",
		// Credentials that do not parse as such: only the scheme shows.
		"nats://u:s3cret#x@h":        "nats://…",
		"nats://u:s3cr,et@h":         "nats://…,…",
		"nats://u:12,34@h,nats://h2": "nats://…,…,nats://h2",
		"nats://c2VjcmV0/dG9rZW4=@h": "nats://…",
		"nats://s3cr?et@h":           "nats://…",
		"nats://u:p@s3cr#et@h":       "nats://…",
		"nats://u:hunter2%zz@h":      "nats://…",
		"u:hunter2%zz@h":             "…",
		"u:p@h1,,nats://h2":          "…@h1,,nats://h2",
		"u:p@h1,,v:q@h2":             "…@h1,,…@h2",
		"nats://u:a,,b@h":            "nats://…,,…",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConnectErrorHidesPassword: a NATS URL that does not parse, or whose
// credentials do not parse as such (a '#', ',', '/' or '?' in them), is
// not quoted, with its credentials, in Connect's error (which msimd logs).
func TestConnectErrorHidesPassword(t *testing.T) {
	for u, secret := range map[string]string{
		"nats://u:hunter2%zz@127.0.0.1:1":                       "hunter2",
		"u:hunter2@127.0.0.1:1,nats://v:hunter2%zz@127.0.0.1:1": "hunter2",
		"nats://u:s3cret#x@127.0.0.1:1":                         "s3cret",
		"nats://u:s3cr,et@127.0.0.1:1":                          "s3cr",
		"nats://u:1234,5678@127.0.0.1:1":                        "1234",
		"nats://c2VjcmV0/dG9rZW4=@127.0.0.1:1":                  "c2VjcmV0",
		"nats://s3cr?et@127.0.0.1:1":                            "s3cr",
		"nats://127.0.0.1:1,nats://u:p@s3cr#et@127.0.0.1:1":     "s3cr",
		"nats://127.0.0.1:1, nats://u:s3cr/et@127.0.0.1:1":      "s3cr",
		"nats://127.0.0.1:1,nats://u:s3cr%2Cet@127.0.0.1:1":     "s3cr",
	} {
		_, err := Connect(Config{URL: u, Name: "n1"}, testLog(t))
		if err == nil {
			t.Fatalf("Connect(%q): no error, want one", u)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Connect(%q): error %q shows the credentials", u, err)
		}
	}
}

// TestLogsHideToken: the NATS server a node is connected to is logged
// without the URL's token (nats.go's ConnectedUrlRedacted hides a
// password only).
func TestLogsHideToken(t *testing.T) {
	const token = "s3cr3t-t0ken"
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Authorization: token})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(wait) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	var out lockedBuffer
	l := logrus.New()
	l.SetOutput(&out)
	l.SetLevel(logrus.DebugLevel)
	url := "nats://" + token + "@" + strings.TrimPrefix(ns.ClientURL(), "nats://")
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour}, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(&stuckPeer{release: make(chan struct{}), stuck: make(chan struct{})})
	n.Close()
	logged := out.String()
	if !strings.Contains(logged, "joined the cluster") {
		t.Fatalf("no \"joined the cluster\" logged:\n%s", logged)
	}
	if strings.Contains(logged, token) {
		t.Errorf("the log shows the NATS token:\n%s", logged)
	}
}

// lockedBuffer is a log's output, written from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
