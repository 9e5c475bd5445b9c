// Deleting from the store the users the configuration no longer names:
// at start (SaveUsers), and when a reload removes one (ReloadUsers).

package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/store"
)

// SaveOptions are SaveUsers' settings.
type SaveOptions struct {
	// Log is told, at Warn, what SaveUsers deletes; nil: nothing is told.
	Log *logrus.Entry
	// Instance and LeaseTTL are the bridge's (Config): with several
	// instances on the store, a user the configuration no longer names
	// whose lease another instance holds is not deleted.
	Instance string
	LeaseTTL time.Duration
}

func (o SaveOptions) log() *logrus.Entry {
	if o.Log != nil {
		return o.Log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// deleteLeft deletes name, a stored user whom the configuration no longer
// names, if their entry is one it used to name (leftConfiguration: read
// again here, as a drop and a register may have made it another since),
// with their accounts, the accounts' sealed MSIM passwords, and all that
// was kept for them (history, held and queued IMs, nicks, settings). It
// logs at Warn what it deleted, and reports whether it did.
//
// With instance set (several instances share the store, see lease.go),
// the user's lease is taken for the deletion, so no instance starts
// serving them meanwhile; if another instance holds it, it serves the
// user on a configuration that still names them, and the entry is kept
// (logged): the reload that removes them there, or a later start here,
// deletes it.
func deleteLeft(ctx context.Context, st store.Store, name, instance string, ttl time.Duration, log *logrus.Entry) (bool, error) {
	release, ok, err := leaseToDelete(ctx, st, name, instance, ttl, log,
		"store: the config no longer names the user, but another instance serves them (its config still does): their entry and sealed MSIM passwords are kept until an instance that no longer names them deletes them")
	if !ok {
		return false, err
	}
	defer release()
	state, err := st.LoadUser(ctx, name)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading %s's state: %w", name, err)
	}
	if !leftConfiguration(state.User, true) {
		return false, nil // registered, or a demo nick
	}
	held, queued := 0, 0
	for _, as := range state.Accounts {
		held, queued = held+as.Held, queued+as.Queued
	}
	if err := st.DeleteUser(ctx, name); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("deleting the user %s the config no longer names: %w", name, err)
	}
	log.WithFields(logrus.Fields{"user": name, "accounts": len(state.Accounts), "held_ims": held, "queued_ims": queued}).
		Warn("store: deleted a user the config no longer names, with their MSIM accounts and sealed passwords; their history and held IMs went with them")
	return true, nil
}

// leaseToDelete takes name's lease for a deletion of what the
// configuration no longer names (instance set: several instances share
// the store), so that no instance starts serving them meanwhile; release
// gives it back. ok is false if the deletion must not go on: another
// instance holds the lease (logged at Warn, saying kept), or err.
func leaseToDelete(ctx context.Context, st store.Store, name, instance string, ttl time.Duration, log *logrus.Entry, kept string) (release func(), ok bool, err error) {
	if instance == "" {
		return func() {}, true, nil
	}
	le, err := st.AcquireLease(ctx, name, instance, cmp.Or(ttl, DefaultLeaseTTL))
	var he *store.LeaseHeldError
	if errors.As(err, &he) {
		log.WithFields(logrus.Fields{"user": name, "holder": he.Holder}).Warn(kept)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("taking the lease of %s for a deletion: %w", name, err)
	}
	return func() {
		rctx, cancel := storeCtx()
		defer cancel()
		if _, err := st.ReleaseLease(rctx, le); err != nil {
			log.WithError(err).WithField("user", name).Warn("store: releasing a lease failed; it expires unrenewed")
		}
	}, true, nil
}

// deleteRemoved deletes from the store the user name, whom a reload
// removed and whose session has ended, as a start would (deleteLeft),
// once what their state was still writing is written; still, if not nil,
// is asked under b.mu first whether the deletion is still wanted (a
// reload since may name the user again). The bridge lets go of that
// state first: a register of the nick once the entry is deleted reads
// its own from the store, never the removed user's; if the entry is
// kept, the state is read again when the user is next served. A read of
// the state under way as the deletion starts is not kept, and one asked
// for until the deletion is over waits for it (loadMemory): what is read
// around the deletion may be the removed user's.
func (b *Bridge) deleteRemoved(name string, still func() bool) {
	st := b.cfg.Store
	if st == nil {
		return
	}
	b.mu.Lock()
	if b.deleting[name] != nil || still != nil && !still() {
		b.mu.Unlock()
		return // another deletion of the name is under way, or none is wanted
	}
	over := make(chan struct{})
	if b.deleting == nil {
		b.deleting = map[string]chan struct{}{}
	}
	b.deleting[name] = over
	if l := b.loading[name]; l != nil {
		l.stale = true
	}
	// The removed user's own session may still be there once it has
	// ended (the reload waits for its end, and the bridge forgets it
	// only after: ended): it serves the name no more, and its state is
	// the removed user's.
	mem := b.memory[name]
	if s := b.sessions[name]; mem != nil && (s == nil || s.over()) {
		delete(b.memory, name)
	} else {
		mem = nil // a session serves the name again: its state is not the removed user's to forget
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.deleting, name)
		b.mu.Unlock()
		close(over)
	}()
	if mem != nil {
		mem.settle()
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeWait)
	defer cancel()
	if b.hist != nil {
		b.hist.sync(ctx, name)
	}
	deleted, err := deleteLeft(ctx, st, name, b.cfg.Instance, b.cfg.LeaseTTL, b.log)
	if err != nil {
		b.log.WithError(err).WithField("user", name).Error("store: deleting a user removed from the config failed; the next start deletes them")
		return
	}
	if deleted && mem != nil {
		mem.forget() // what still writes to it (a login under way) keeps nothing
	}
}

// deleteOnEnd has the entry of name, whom a reload removed, deleted once
// s, their session that has not ended in time, ends (ended); false if it
// has ended meanwhile (the caller deletes it).
func (b *Bridge) deleteOnEnd(s *session, name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.gone {
		return false
	}
	if b.removedEnd == nil {
		b.removedEnd = map[*session]string{}
	}
	b.removedEnd[s] = name
	return true
}
