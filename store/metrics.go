package store

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/metrics"
	"github.com/msimircd/msimircd/msim"
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
	opAddAccount, opUpdateAccount, opDeleteAccount, opSetAccountSetting, opDeleteAccountSetting,
	opSetNick, opDeleteNick,
	opHoldIM, opHeldIMs, opTakeHeld, opDeleteHeld,
	opQueueIM, opQueuedIMs, opDeleteQueued,
	opAddNote, opTakeNotes,
}

// WithMetrics returns st timing every operation into the histogram
// msimircd_store_operation_duration_seconds{op} registered on reg (failed
// operations included); with a nil reg it returns st itself.
func WithMetrics(st Store, reg prometheus.Registerer) Store {
	if reg == nil || st == nil {
		return st
	}
	h := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "msimircd_store_operation_duration_seconds",
		Help:    "Time the gateway's store took for one operation, by operation.",
		Buckets: metrics.LatencyBuckets,
	}, []string{"op"}))
	m := &timedStore{st: st, ops: make(map[string]prometheus.Observer, len(allOps)+len(historyOps)+len(leaseOps))}
	for _, op := range slices.Concat(allOps, historyOps, leaseOps) {
		m.ops[op] = h.WithLabelValues(op) // every op shows from the start
	}
	return m
}

// timedStore is a Store that times its operations.
type timedStore struct {
	st  Store
	ops map[string]prometheus.Observer // read only once made
}

// since records the time since start under op.
func (m *timedStore) since(op string, start time.Time) {
	m.ops[op].Observe(time.Since(start).Seconds())
}

func (m *timedStore) CreateUser(ctx context.Context, name, passwordHash string) (User, error) {
	defer m.since(opCreateUser, time.Now())
	return m.st.CreateUser(ctx, name, passwordHash)
}

func (m *timedStore) User(ctx context.Context, name string) (User, error) {
	defer m.since(opUser, time.Now())
	return m.st.User(ctx, name)
}

func (m *timedStore) Users(ctx context.Context) ([]User, error) {
	defer m.since(opUsers, time.Now())
	return m.st.Users(ctx)
}

func (m *timedStore) SetPassword(ctx context.Context, name, passwordHash string) error {
	defer m.since(opSetPassword, time.Now())
	return m.st.SetPassword(ctx, name, passwordHash)
}

func (m *timedStore) DeleteUser(ctx context.Context, name string) error {
	defer m.since(opDeleteUser, time.Now())
	return m.st.DeleteUser(ctx, name)
}

func (m *timedStore) LoadUser(ctx context.Context, name string) (UserState, error) {
	defer m.since(opLoadUser, time.Now())
	return m.st.LoadUser(ctx, name)
}

func (m *timedStore) SetSetting(ctx context.Context, user, key, value string) error {
	defer m.since(opSetSetting, time.Now())
	return m.st.SetSetting(ctx, user, key, value)
}

func (m *timedStore) DeleteSetting(ctx context.Context, user, key string) error {
	defer m.since(opDeleteSetting, time.Now())
	return m.st.DeleteSetting(ctx, user, key)
}

func (m *timedStore) AddAccount(ctx context.Context, user string, a Account) error {
	defer m.since(opAddAccount, time.Now())
	return m.st.AddAccount(ctx, user, a)
}

func (m *timedStore) UpdateAccount(ctx context.Context, user string, a Account) error {
	defer m.since(opUpdateAccount, time.Now())
	return m.st.UpdateAccount(ctx, user, a)
}

func (m *timedStore) DeleteAccount(ctx context.Context, user, email string) error {
	defer m.since(opDeleteAccount, time.Now())
	return m.st.DeleteAccount(ctx, user, email)
}

func (m *timedStore) SetAccountSetting(ctx context.Context, user, email, key, value string) error {
	defer m.since(opSetAccountSetting, time.Now())
	return m.st.SetAccountSetting(ctx, user, email, key, value)
}

func (m *timedStore) DeleteAccountSetting(ctx context.Context, user, email, key string) error {
	defer m.since(opDeleteAccountSetting, time.Now())
	return m.st.DeleteAccountSetting(ctx, user, email, key)
}

func (m *timedStore) SetNick(ctx context.Context, user, email string, uid msim.UID, nick string) error {
	defer m.since(opSetNick, time.Now())
	return m.st.SetNick(ctx, user, email, uid, nick)
}

func (m *timedStore) DeleteNick(ctx context.Context, user, email string, uid msim.UID) error {
	defer m.since(opDeleteNick, time.Now())
	return m.st.DeleteNick(ctx, user, email, uid)
}

func (m *timedStore) HoldIM(ctx context.Context, user, email string, im HeldIM) (HeldIM, error) {
	defer m.since(opHoldIM, time.Now())
	return m.st.HoldIM(ctx, user, email, im)
}

func (m *timedStore) HeldIMs(ctx context.Context, user, email string) ([]HeldIM, error) {
	defer m.since(opHeldIMs, time.Now())
	return m.st.HeldIMs(ctx, user, email)
}

func (m *timedStore) TakeHeld(ctx context.Context, user, email string) ([]HeldIM, error) {
	defer m.since(opTakeHeld, time.Now())
	return m.st.TakeHeld(ctx, user, email)
}

func (m *timedStore) DeleteHeld(ctx context.Context, user, email string, ids ...int64) error {
	defer m.since(opDeleteHeld, time.Now())
	return m.st.DeleteHeld(ctx, user, email, ids...)
}

func (m *timedStore) QueueIM(ctx context.Context, user, email string, im QueuedIM) (QueuedIM, error) {
	defer m.since(opQueueIM, time.Now())
	return m.st.QueueIM(ctx, user, email, im)
}

func (m *timedStore) QueuedIMs(ctx context.Context, user, email string) ([]QueuedIM, error) {
	defer m.since(opQueuedIMs, time.Now())
	return m.st.QueuedIMs(ctx, user, email)
}

func (m *timedStore) DeleteQueued(ctx context.Context, user, email string, ids ...int64) error {
	defer m.since(opDeleteQueued, time.Now())
	return m.st.DeleteQueued(ctx, user, email, ids...)
}

func (m *timedStore) AddNote(ctx context.Context, user, text string) error {
	defer m.since(opAddNote, time.Now())
	return m.st.AddNote(ctx, user, text)
}

func (m *timedStore) TakeNotes(ctx context.Context, user string) ([]string, error) {
	defer m.since(opTakeNotes, time.Now())
	return m.st.TakeNotes(ctx, user)
}

// Ping is not timed: it is the readiness check's, not the gateway's.
func (m *timedStore) Ping(ctx context.Context) error { return m.st.Ping(ctx) }

// Close closes the store underneath.
func (m *timedStore) Close() error { return m.st.Close() }
