package store

import (
	"context"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// wrapped is a Store each of whose operations goes through around, with
// its op label (the op constants of metrics.go): the store's decorators
// (WithMetrics, and ownGoroutines under every store Open returns) are
// each an around. Ping, ListenLeases and Close go straight to the store
// underneath; a decorator that must do more for them has its own.
type wrapped struct {
	st Store
	// around runs f once, or returns an error without running it (for
	// example when ctx ends before f's turn): the operation then fails
	// with that error.
	around func(ctx context.Context, op string, f func()) error
}

// call0 runs an operation that returns only an error through around.
func (w *wrapped) call0(ctx context.Context, op string, f func() error) error {
	var err error
	if e := w.around(ctx, op, func() { err = f() }); e != nil {
		return e
	}
	return err
}

// call1 runs an operation that returns a value and an error through
// around.
func call1[T any](w *wrapped, ctx context.Context, op string, f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	if e := w.around(ctx, op, func() { v, err = f() }); e != nil {
		var zero T
		return zero, e
	}
	return v, err
}

// Ping goes straight to the store underneath.
func (w *wrapped) Ping(ctx context.Context) error { return w.st.Ping(ctx) }

// ListenLeases goes straight to the store underneath: it lasts as long as
// ctx.
func (w *wrapped) ListenLeases(ctx context.Context, instance string, f func(LeaseNote)) error {
	return w.st.ListenLeases(ctx, instance, f)
}

// Close closes the store underneath.
func (w *wrapped) Close() error { return w.st.Close() }

func (w *wrapped) CreateUser(ctx context.Context, name, passwordHash string) (User, error) {
	return call1(w, ctx, opCreateUser, func() (User, error) { return w.st.CreateUser(ctx, name, passwordHash) })
}

func (w *wrapped) User(ctx context.Context, name string) (User, error) {
	return call1(w, ctx, opUser, func() (User, error) { return w.st.User(ctx, name) })
}

func (w *wrapped) Users(ctx context.Context) ([]User, error) {
	return call1(w, ctx, opUsers, func() ([]User, error) { return w.st.Users(ctx) })
}

func (w *wrapped) SetPassword(ctx context.Context, name, passwordHash string) error {
	return w.call0(ctx, opSetPassword, func() error { return w.st.SetPassword(ctx, name, passwordHash) })
}

func (w *wrapped) DeleteUser(ctx context.Context, name string) error {
	return w.call0(ctx, opDeleteUser, func() error { return w.st.DeleteUser(ctx, name) })
}

func (w *wrapped) LoadUser(ctx context.Context, name string) (UserState, error) {
	return call1(w, ctx, opLoadUser, func() (UserState, error) { return w.st.LoadUser(ctx, name) })
}

func (w *wrapped) SetSetting(ctx context.Context, user, key, value string) error {
	return w.call0(ctx, opSetSetting, func() error { return w.st.SetSetting(ctx, user, key, value) })
}

func (w *wrapped) DeleteSetting(ctx context.Context, user, key string) error {
	return w.call0(ctx, opDeleteSetting, func() error { return w.st.DeleteSetting(ctx, user, key) })
}

func (w *wrapped) AddAccount(ctx context.Context, user string, a Account) error {
	return w.call0(ctx, opAddAccount, func() error { return w.st.AddAccount(ctx, user, a) })
}

func (w *wrapped) AddAccountBounded(ctx context.Context, user string, a Account) error {
	return w.call0(ctx, opAddAccountBounded, func() error { return w.st.AddAccountBounded(ctx, user, a) })
}

func (w *wrapped) UpdateAccount(ctx context.Context, user string, a Account) error {
	return w.call0(ctx, opUpdateAccount, func() error { return w.st.UpdateAccount(ctx, user, a) })
}

func (w *wrapped) DeleteAccount(ctx context.Context, user, email string) error {
	return w.call0(ctx, opDeleteAccount, func() error { return w.st.DeleteAccount(ctx, user, email) })
}

func (w *wrapped) SetAccountSetting(ctx context.Context, user, email, key, value string) error {
	return w.call0(ctx, opSetAccountSetting, func() error { return w.st.SetAccountSetting(ctx, user, email, key, value) })
}

func (w *wrapped) DeleteAccountSetting(ctx context.Context, user, email, key string) error {
	return w.call0(ctx, opDeleteAccountSetting, func() error { return w.st.DeleteAccountSetting(ctx, user, email, key) })
}

func (w *wrapped) SetNick(ctx context.Context, user, email string, uid msim.UID, nick string) error {
	return w.call0(ctx, opSetNick, func() error { return w.st.SetNick(ctx, user, email, uid, nick) })
}

func (w *wrapped) DeleteNick(ctx context.Context, user, email string, uid msim.UID) error {
	return w.call0(ctx, opDeleteNick, func() error { return w.st.DeleteNick(ctx, user, email, uid) })
}

func (w *wrapped) HoldIM(ctx context.Context, user, email string, im HeldIM) (HeldIM, error) {
	return call1(w, ctx, opHoldIM, func() (HeldIM, error) { return w.st.HoldIM(ctx, user, email, im) })
}

func (w *wrapped) HeldIMs(ctx context.Context, user, email string) ([]HeldIM, error) {
	return call1(w, ctx, opHeldIMs, func() ([]HeldIM, error) { return w.st.HeldIMs(ctx, user, email) })
}

func (w *wrapped) TakeHeld(ctx context.Context, user, email string) ([]HeldIM, error) {
	return call1(w, ctx, opTakeHeld, func() ([]HeldIM, error) { return w.st.TakeHeld(ctx, user, email) })
}

func (w *wrapped) DeleteHeld(ctx context.Context, user, email string, ids ...int64) error {
	return w.call0(ctx, opDeleteHeld, func() error { return w.st.DeleteHeld(ctx, user, email, ids...) })
}

func (w *wrapped) QueueIM(ctx context.Context, user, email string, im QueuedIM) (QueuedIM, error) {
	return call1(w, ctx, opQueueIM, func() (QueuedIM, error) { return w.st.QueueIM(ctx, user, email, im) })
}

func (w *wrapped) QueuedIMs(ctx context.Context, user, email string) ([]QueuedIM, error) {
	return call1(w, ctx, opQueuedIMs, func() ([]QueuedIM, error) { return w.st.QueuedIMs(ctx, user, email) })
}

func (w *wrapped) DeleteQueued(ctx context.Context, user, email string, ids ...int64) error {
	return w.call0(ctx, opDeleteQueued, func() error { return w.st.DeleteQueued(ctx, user, email, ids...) })
}

func (w *wrapped) AddNote(ctx context.Context, user, text string) error {
	return w.call0(ctx, opAddNote, func() error { return w.st.AddNote(ctx, user, text) })
}

func (w *wrapped) TakeNotes(ctx context.Context, user string) ([]string, error) {
	return call1(w, ctx, opTakeNotes, func() ([]string, error) { return w.st.TakeNotes(ctx, user) })
}

func (w *wrapped) AppendHistory(ctx context.Context, user string, e HistoryEntry) (HistoryEntry, error) {
	return call1(w, ctx, opAppendHistory, func() (HistoryEntry, error) { return w.st.AppendHistory(ctx, user, e) })
}

func (w *wrapped) AppendHistoryBatch(ctx context.Context, batch []HistoryAppend, res []HistoryResult) []HistoryResult {
	var out []HistoryResult
	err := w.around(ctx, opAppendBatch, func() { out = w.st.AppendHistoryBatch(ctx, batch, res) })
	if err != nil {
		out = results(res, len(batch))
		for i := range out {
			out[i].Err = err
		}
	}
	return out
}

func (w *wrapped) History(ctx context.Context, user string, q HistoryQuery) ([]HistoryEntry, error) {
	return call1(w, ctx, opHistory, func() ([]HistoryEntry, error) { return w.st.History(ctx, user, q) })
}

func (w *wrapped) HistoryByMsgID(ctx context.Context, user, msgid string) (HistoryEntry, error) {
	return call1(w, ctx, opHistoryByMsgID, func() (HistoryEntry, error) { return w.st.HistoryByMsgID(ctx, user, msgid) })
}

func (w *wrapped) HistoryTargets(ctx context.Context, user string, after, before time.Time, limit int, oldest bool) ([]HistoryTarget, error) {
	return call1(w, ctx, opHistoryTargets, func() ([]HistoryTarget, error) {
		return w.st.HistoryTargets(ctx, user, after, before, limit, oldest)
	})
}

func (w *wrapped) HistorySince(ctx context.Context, user string, afterID int64, limit int) ([]HistoryEntry, error) {
	return call1(w, ctx, opHistorySince, func() ([]HistoryEntry, error) { return w.st.HistorySince(ctx, user, afterID, limit) })
}

func (w *wrapped) HistoryLatestSince(ctx context.Context, user string, afterID, beforeID int64, limit int) ([]HistoryEntry, error) {
	return call1(w, ctx, opHistoryLatestSince, func() ([]HistoryEntry, error) {
		return w.st.HistoryLatestSince(ctx, user, afterID, beforeID, limit)
	})
}

func (w *wrapped) LastHistoryID(ctx context.Context, user string) (int64, error) {
	return call1(w, ctx, opLastHistoryID, func() (int64, error) { return w.st.LastHistoryID(ctx, user) })
}

func (w *wrapped) SetReadMarker(ctx context.Context, user, account string, buddy msim.UID, t time.Time) (time.Time, error) {
	return call1(w, ctx, opSetReadMarker, func() (time.Time, error) { return w.st.SetReadMarker(ctx, user, account, buddy, t) })
}

func (w *wrapped) ReadMarker(ctx context.Context, user, account string, buddy msim.UID) (time.Time, error) {
	return call1(w, ctx, opReadMarker, func() (time.Time, error) { return w.st.ReadMarker(ctx, user, account, buddy) })
}

func (w *wrapped) SetClientPosition(ctx context.Context, user, client string, id int64) error {
	return w.call0(ctx, opSetClientPosition, func() error { return w.st.SetClientPosition(ctx, user, client, id) })
}

func (w *wrapped) ClientPosition(ctx context.Context, user, client string) (int64, bool, error) {
	var found bool
	id, err := call1(w, ctx, opClientPosition, func() (id int64, err error) {
		id, found, err = w.st.ClientPosition(ctx, user, client)
		return id, err
	})
	return id, found, err
}

func (w *wrapped) PruneHistory(ctx context.Context, before time.Time, keepNeverDelivered bool) (int64, error) {
	return call1(w, ctx, opPruneHistory, func() (int64, error) { return w.st.PruneHistory(ctx, before, keepNeverDelivered) })
}

func (w *wrapped) AcquireLease(ctx context.Context, user, instance string, ttl time.Duration) (Lease, error) {
	return call1(w, ctx, opAcquireLease, func() (Lease, error) { return w.st.AcquireLease(ctx, user, instance, ttl) })
}

func (w *wrapped) RenewLeases(ctx context.Context, instance string, ttl time.Duration, held []Lease) ([]Lease, error) {
	return call1(w, ctx, opRenewLeases, func() ([]Lease, error) { return w.st.RenewLeases(ctx, instance, ttl, held) })
}

func (w *wrapped) ReleaseLease(ctx context.Context, l Lease) (bool, error) {
	return call1(w, ctx, opReleaseLease, func() (bool, error) { return w.st.ReleaseLease(ctx, l) })
}

func (w *wrapped) Lease(ctx context.Context, user string) (Lease, error) {
	return call1(w, ctx, opLease, func() (Lease, error) { return w.st.Lease(ctx, user) })
}

func (w *wrapped) AskLease(ctx context.Context, user, holder, from string) error {
	return w.call0(ctx, opAskLease, func() error { return w.st.AskLease(ctx, user, holder, from) })
}

// HurryHistory is the store underneath's, if it has one (HistoryHurrier).
func (w *wrapped) HurryHistory() {
	if h, ok := w.st.(HistoryHurrier); ok {
		h.HurryHistory()
	}
}

// HistoryBatchRetries is the store underneath's (sqlStore's, which the
// history writer process reports); none for a store that keeps no count.
func (w *wrapped) HistoryBatchRetries() (int64, error) {
	if br, ok := w.st.(interface{ HistoryBatchRetries() (int64, error) }); ok {
		return br.HistoryBatchRetries()
	}
	return 0, nil
}

func (w *wrapped) AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	return call1(w, ctx, opAddLoginFailure, func() (int, error) { return w.st.AddLoginFailure(ctx, key, now, window) })
}

func (w *wrapped) LoginFailures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	return call1(w, ctx, opLoginFailures, func() (int, error) { return w.st.LoginFailures(ctx, key, now, window) })
}

func (w *wrapped) ClearLoginFailures(ctx context.Context, key string) error {
	return w.call0(ctx, opClearLoginFailures, func() error { return w.st.ClearLoginFailures(ctx, key) })
}
