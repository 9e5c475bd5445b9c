package server

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/msim"
)

// failingStore is a Store whose AddOffline always fails.
type failingStore struct{ Store }

var errStoreDown = errors.New("store down")

func (failingStore) AddOffline(msim.UID, OfflineMessage, OfflineLimits) error { return errStoreDown }

// lostSetup starts a server over a store whose AddOffline fails, with
// alice and bob logged out, and returns a session of bob's that no socket
// reads.
func lostSetup(t *testing.T) (reg *prometheus.Registry, bob *session, aUID msim.UID) {
	t.Helper()
	reg = prometheus.NewRegistry()
	srv, _ := startServer(t, Config{Metrics: reg}, failingStore{NewMemStore()})
	aUID = addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	nc, other := net.Pipe()
	t.Cleanup(func() { other.Close() })
	bob = newSession(srv, nc, 1<<40)
	bob.uid = bUID
	return reg, bob, aUID
}

// TestLostIMsAreCounted: every path where an IM is neither delivered nor
// stored counts it in msimd_ims_lost_total by reason, besides its log line.
func TestLostIMsAreCounted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string
		lose   func(bob *session, aUID msim.UID)
	}{
		{"an unwritten IM the store refused, its sender not here", "untold", func(bob *session, aUID msim.UID) {
			w := writer{unsent: []queued{{
				b:    msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(aUID)).AddInt("cv", 673).Add("msg", "hi")),
				from: aUID,
			}}}
			bob.storeUnwritten(&w)
			bob.tellRefused()
		}},
		{"an IM the store refused, its sender's session closing", "untold", func(bob *session, aUID msim.UID) {
			// bob sends alice, logged out, an IM as his session closes.
			bob.closeAfterFlush()
			bob.onBM(msim.NewInt("bm", msim.BMIM).AddInt("t", int(aUID)).AddInt("cv", 673).Add("msg", "hi"))
		}},
		{"a stored IM a closing session did not take", "restore", func(bob *session, aUID msim.UID) {
			bob.restore([]OfflineMessage{{From: aUID, Time: time.Now().UTC(), Body: "hi"}})
		}},
		{"an unwritten IM that names no sender", "no_sender", func(bob *session, _ msim.UID) {
			// Queued with no sender known, and its bytes name none.
			w := writer{unsent: []queued{{b: []byte(`\bm\1\cv\673\msg\from whom`)}}}
			bob.storeUnwritten(&w)
			bob.tellRefused()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, bob, aUID := lostSetup(t)
			tc.lose(bob, aUID)
			for _, r := range lostLabels {
				want := 0.0
				if r == tc.reason {
					want = 1
				}
				wantValues(t, reg, []wantValue{{"msimd_ims_lost_total", []string{"reason", r}, want}})
			}
		})
	}
}
