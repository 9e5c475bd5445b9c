package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/msimircd/msimircd/msim"
)

// startNATS runs a NATS server in-process on a loopback port until the test
// ends.
func startNATS(t *testing.T) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns.ClientURL()
}

// TestNATSJoinsNodes: two msimd started with -nats route an IM from a user
// on one to a user on the other. (Each has its own in-memory store here,
// seeded alike; a real cluster shares one.)
func TestNATSJoinsNodes(t *testing.T) {
	url := startNATS(t)
	accounts := []string{"-account", "alice@example.com:pw-alice", "-account", "bob@example.com:pw-bob"}
	addrA, logsA := start(t, append([]string{"-nats", url, "-node", "a"}, accounts...)...)
	addrB, _ := start(t, append([]string{"-nats", url, "-node", "b"}, accounts...)...)
	alice, m := login(t, addrA, "alice@example.com", "pw-alice")
	if !m.Is("lc") {
		t.Fatalf("alice's login: got %v, want lc 2", m)
	}
	aliceUID, _ := m.Int("userid")
	bob, m := login(t, addrB, "bob@example.com", "pw-bob")
	if !m.Is("lc") {
		t.Fatalf("bob's login: got %v, want lc 2", m)
	}
	bobUID, _ := m.Int("userid")
	alice.send(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", alice.key).AddInt("t", bobUID).AddInt("cv", 697).Add("msg", "across"))
	got := bob.next(func(m *msim.Message) bool { return m.Is("bm") })
	if f, _ := got.Int("f"); f != aliceUID || got.StrOr("msg", "") != "across" {
		t.Errorf("bob got %v, want bm 1 from %d saying across", got, aliceUID)
	}
	if s := logsA.String(); !strings.Contains(s, "joined the cluster") || !strings.Contains(s, "node=a") {
		t.Errorf("node a's log does not say it joined as a:\n%s", s)
	}
}

// TestNATSFlagErrors: -node alone is a usage error; a NATS server that
// cannot be reached is an error at start.
func TestNATSFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"node without nats", []string{"-node", "a"}, true, "-node needs -nats"},
		{"nothing listening", []string{"-listen", "127.0.0.1:0", "-nats", "nats://127.0.0.1:1"}, false, "cluster: connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var logs syncBuffer
			err := run(ctx, tc.args, env{stdin: strings.NewReader(""), stderr: &logs})
			if err == nil || errors.Is(err, errUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q (usage error: %v)", err, tc.want, tc.usage)
			}
		})
	}
}
