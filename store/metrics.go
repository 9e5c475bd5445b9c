package store

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/metrics"
)

// Operations, the op label of msimircd_store_operation_duration_seconds:
// one per method of Store (Ping and Close aside).
const (
	opCreateUser           = "create_user"
	opUser                 = "user"
	opUsers                = "users"
	opSetPassword          = "set_password"
	opDeleteUser           = "delete_user"
	opLoadUser             = "load_user"
	opSetSetting           = "set_setting"
	opDeleteSetting        = "delete_setting"
	opAddAccount           = "add_account"
	opAddAccountBounded    = "add_account_bounded"
	opUpdateAccount        = "update_account"
	opDeleteAccount        = "delete_account"
	opSetAccountSetting    = "set_account_setting"
	opDeleteAccountSetting = "delete_account_setting"
	opSetNick              = "set_nick"
	opDeleteNick           = "delete_nick"
	opHoldIM               = "hold_im"
	opHeldIMs              = "held_ims"
	opTakeHeld             = "take_held"
	opDeleteHeld           = "delete_held"
	opQueueIM              = "queue_im"
	opQueuedIMs            = "queued_ims"
	opDeleteQueued         = "delete_queued"
	opAddNote              = "add_note"
	opTakeNotes            = "take_notes"
)

var allOps = []string{
	opCreateUser, opUser, opUsers, opSetPassword, opDeleteUser, opLoadUser,
	opSetSetting, opDeleteSetting,
	opAddAccount, opAddAccountBounded, opUpdateAccount, opDeleteAccount, opSetAccountSetting, opDeleteAccountSetting,
	opSetNick, opDeleteNick,
	opHoldIM, opHeldIMs, opTakeHeld, opDeleteHeld,
	opQueueIM, opQueuedIMs, opDeleteQueued,
	opAddNote, opTakeNotes,
}

// WithMetrics returns st timing every operation into the histogram
// msimircd_store_operation_duration_seconds{op} registered on reg (failed
// operations included, and the wait for the store's goroutines); with a
// nil reg it returns st itself.
func WithMetrics(st Store, reg prometheus.Registerer) Store {
	if reg == nil || st == nil {
		return st
	}
	h := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "msimircd_store_operation_duration_seconds",
		Help:    "Time the gateway's store took for one operation, by operation.",
		Buckets: metrics.LatencyBuckets,
	}, []string{"op"}))
	m := &timedStore{ops: make(map[string]prometheus.Observer, len(allOps)+len(historyOps)+len(leaseOps)+len(failureOps))}
	for _, op := range slices.Concat(allOps, historyOps, leaseOps, failureOps) {
		m.ops[op] = h.WithLabelValues(op) // every op shows from the start
	}
	m.wrapped = wrapped{st: st, around: m.time}
	return m
}

// timedStore is a Store that times its operations. Ping is not timed: it
// is the readiness check's, not the gateway's.
type timedStore struct {
	wrapped
	ops map[string]prometheus.Observer // read only once made
}

// time is timedStore's around: it runs f and records how long it took.
func (m *timedStore) time(_ context.Context, op string, f func()) error {
	defer m.since(op, time.Now())
	f()
	return nil
}

// since records the time since start under op.
func (m *timedStore) since(op string, start time.Time) {
	m.ops[op].Observe(time.Since(start).Seconds())
}
