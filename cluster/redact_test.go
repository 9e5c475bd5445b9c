package cluster

import (
	"strings"
	"testing"
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
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConnectErrorHidesPassword: a NATS URL that does not parse is not
// quoted, with its password, in Connect's error (which msimd logs).
func TestConnectErrorHidesPassword(t *testing.T) {
	for _, u := range []string{
		"nats://u:hunter2%zz@127.0.0.1:1",
		"u:hunter2@127.0.0.1:1,nats://v:hunter2%zz@127.0.0.1:1",
	} {
		_, err := Connect(Config{URL: u, Name: "n1"}, testLog(t))
		if err == nil {
			t.Fatalf("Connect(%q): no error, want one", u)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Connect(%q): error %q shows the password", u, err)
		}
	}
}
