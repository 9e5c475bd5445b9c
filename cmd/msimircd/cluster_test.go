package main

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
)

// TestClusterConfig: a [cluster] table on PostgreSQL with an upstream MSIM
// server loads, and its settings reach the bridge's config.
func TestClusterConfig(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "[msim]\nserver = \"im.example.net:1863\"\n[store]\ndriver = \"postgres\"\ndsn = \"postgres://x@127.0.0.1/db\"\n"+
		"[cluster]\ninstance = \"gw-1\"\nlease_ttl = \"20s\"\nhand_over_wait = \"5s\"\n"+
		"[[user]]\nname = \"a\"\npassword = \"pw\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var bc channel.Config
	clusterOf(cfg.Cluster, &bc)
	if bc.Instance != "gw-1" || bc.LeaseTTL != 20*time.Second || bc.HandOverWait != 5*time.Second {
		t.Errorf("bridge config: got instance %q, lease TTL %s, hand-over wait %s; want gw-1, 20s, 5s", bc.Instance, bc.LeaseTTL, bc.HandOverWait)
	}
	if Defaults().Cluster.Instance != "" {
		t.Errorf("default instance: got %q, want none (one instance, no leases)", Defaults().Cluster.Instance)
	}
}
