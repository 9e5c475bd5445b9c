package cluster

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
)

// TestClusterOlderNodesIMNotTaken: an IM in the payload of a node that
// predates the deadline, sent to a node of this version holding alice, is
// not answered "taken" (its sender would then not store it) unless alice
// got it as sent.
func TestClusterOlderNodesIMNotTaken(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	bus := nodes[0].bus
	alice := dial(t, nodes[0], "alice", acc["alice"])
	alice.sync()
	nc, err := nats.Connect(bus.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wire := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(from)).Add("msg", "from an older node"))
	older := append(binary.AppendUvarint([]byte{opDeliver}, uint64(from)), wire...)
	m, err := nc.Request(bus.subj.user(uid), older, time.Second)
	if err == nil && bytes.Equal(m.Data, replyTaken) {
		t.Logf("the older IM was answered %q (taken): its older sender stores nothing", m.Data)
		var ok bool
		for _, im := range ims(alice.sync()) {
			if im.From == from && im.Text == "from an older node" {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the older IM: answered %q (taken: its sender stores nothing), but alice did not get it from %d; want it refused or delivered whole", m.Data, from)
		}
	}
}
