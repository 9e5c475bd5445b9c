package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/histproc"
	"github.com/msimircd/msimircd/store"
)

// HistoryConfig is the [history] table.
type HistoryConfig struct {
	// Enabled keeps every IM in and out in the store (it needs one) for
	// CHATHISTORY, read markers, the replay to clients and the history
	// command.
	Enabled bool `toml:"enabled"`
	// Retention is how long history is kept; 0 keeps only what has not
	// been delivered to any client yet.
	Retention Duration `toml:"retention"`
	// ReplayPerBuddy caps the messages replayed per conversation to a
	// client without chathistory; 0: 50.
	ReplayPerBuddy int `toml:"replay_per_buddy"`
}

// defaultRetention is [history] retention's default.
const defaultRetention = 90 * 24 * time.Hour

func (h HistoryConfig) validate() error {
	if h.ReplayPerBuddy < 0 {
		return errKey(fmt.Sprintf("negative replay_per_buddy %d", h.ReplayPerBuddy), "replay_per_buddy", pathStep{"history", -1})
	}
	return nil
}

// historyOn reports whether history is kept: on, with a store.
func historyOn(cfg Config, st store.Store) bool { return cfg.History.Enabled && st != nil }

// historyProcess returns st with its history appends made by a process of
// their own at idle CPU priority (histproc): this binary, started again
// with histproc.Arg; elsewhere reports that. Where the binary cannot be
// found, st appends them itself.
func historyProcess(ctx context.Context, st store.Store, sc StoreConfig, key []byte, reg prometheus.Registerer, log *logrus.Entry) (_ store.Store, elsewhere bool) {
	exe, err := os.Executable()
	if err != nil {
		log.WithError(err).Warn("history: appended in this process (the history writer process needs this binary's path)")
		return st, false
	}
	return histproc.New(ctx, st, histproc.Params{Driver: sc.Driver, DSN: sc.DSN, Key: key}, exe, reg, log), true
}

// pruneEvery is how often old history is deleted.
const pruneEvery = time.Hour

// pruneHistory deletes, at start and then every pruneEvery until ctx ends,
// the history older than retention, keeping what no client was sent yet.
func pruneHistory(ctx context.Context, st store.Store, retention time.Duration, log *logrus.Entry) error {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		n, err := st.PruneHistory(ctx, time.Now().Add(-retention), true)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.WithError(err).Error("store: old history could not be deleted; trying again later")
		case n > 0:
			log.WithField("entries", n).Info("old history deleted")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
