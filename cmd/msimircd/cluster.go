package main

import (
	"fmt"
	"time"

	"github.com/msimircd/msimircd/channel"
)

// ClusterConfig is the [cluster] table: several msimircd instances on one
// PostgreSQL store, behind a TCP load balancer (see channel/lease.go).
type ClusterConfig struct {
	// Instance names this instance among those sharing the store; every
	// instance needs its own. "" (the default): the only instance.
	Instance string `toml:"instance"`
	// LeaseTTL is how long a user's lease lasts unrenewed: the longest a
	// user of an instance that died waits to be served elsewhere. 0: 30s.
	LeaseTTL Duration `toml:"lease_ttl"`
	// HandOverWait bounds how long a connection waits for another
	// instance to hand its user over (or for that instance's lease to
	// expire) before it is refused, told when to come back. 0: 10s.
	HandOverWait Duration `toml:"hand_over_wait"`
}

// maxInstanceName bounds an instance's name.
const maxInstanceName = 64

func (c ClusterConfig) validate(cfg *Config) error {
	cl := pathStep{"cluster", -1}
	if c.LeaseTTL.Duration < 0 || c.LeaseTTL.Duration > 0 && c.LeaseTTL.Duration < time.Second {
		return errKey(fmt.Sprintf("lease_ttl %s: want 1s or more (or 0 for 30s)", c.LeaseTTL.Duration), "lease_ttl", cl)
	}
	if c.HandOverWait.Duration < 0 {
		return errKey(fmt.Sprintf("negative hand_over_wait %s", c.HandOverWait.Duration), "hand_over_wait", cl)
	}
	if c.Instance == "" {
		return nil
	}
	if len(c.Instance) > maxInstanceName || !instanceName(c.Instance) {
		return errKey(fmt.Sprintf("instance %q: want letters, digits, '.', '-' or '_' (at most %d)", c.Instance, maxInstanceName), "instance", cl)
	}
	if cfg.Store.Driver != "postgres" {
		return errKey("several instances share a PostgreSQL store: set store.driver = \"postgres\"", "instance", cl)
	}
	if cfg.MSIM.Server == "" {
		return errKey("several instances need one MSIM network: set msim.server (the embedded one is each instance's own)", "instance", cl)
	}
	return nil
}

func instanceName(s string) bool {
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}

// clusterOf is the bridge's part of [cluster].
func clusterOf(c ClusterConfig, bc *channel.Config) {
	bc.Instance, bc.LeaseTTL, bc.HandOverWait = c.Instance, c.LeaseTTL.Duration, c.HandOverWait.Duration
}
