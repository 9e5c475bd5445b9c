package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Leases let several msimircd instances share one database while each user
// is served by one of them at a time. An instance acquires a user's lease
// before it starts the user's session, renews the leases of its sessions
// well before they expire, and releases a lease when the session ends. A
// lease that is not renewed expires, so the users of an instance that died
// can be taken over. The epoch, raised at each acquisition, fences a holder
// that was too slow: renewing or releasing names the epoch, and does
// nothing once another acquisition has raised it.
//
// Expiry is judged by the database's clock (PostgreSQL's; SQLite's is the
// process's), so the instances' clocks need not agree.
//
// On PostgreSQL, instances also talk about leases (AskLease, ListenLeases)
// through LISTEN/NOTIFY: an instance asks the holder to hand a user over,
// and a release is announced so that the instance waiting for it need not
// poll. On SQLite there is one instance per database file and nothing to
// talk to: those two methods return ErrNoNotify.
type LeaseStore interface {
	// AcquireLease takes the user's lease for instance, for ttl: when no
	// instance holds it, when its holder let it expire, or when instance
	// holds it already (a new epoch then). Otherwise it returns a
	// *LeaseHeldError (errors.Is ErrLeaseHeld) naming the holder.
	AcquireLease(ctx context.Context, user, instance string, ttl time.Duration) (Lease, error)
	// RenewLeases extends by ttl, in one statement per batch, those of
	// held that instance still holds at their epoch, and returns them with
	// their new expiry; the leases left out are lost (taken over).
	RenewLeases(ctx context.Context, instance string, ttl time.Duration, held []Lease) ([]Lease, error)
	// ReleaseLease gives l up if its holder still holds it at its epoch,
	// and reports whether it did; on PostgreSQL the release is announced
	// (LeaseReleased).
	ReleaseLease(ctx context.Context, l Lease) (bool, error)
	// Lease returns the user's lease as it is now (Instance "" when no
	// instance holds it, or it expired); ErrNotFound if it never had one.
	Lease(ctx context.Context, user string) (Lease, error)
	// AskLease asks holder, on behalf of from, to hand the user over: to
	// end the user's session and release the lease (LeaseAsked).
	AskLease(ctx context.Context, user, holder, from string) error
	// ListenLeases calls f with the notes for instance (the asks addressed
	// to it, every release) until ctx ends or the connection fails, and
	// returns why. f is called first with a LeaseListening note once the
	// notes are coming; it runs on the listening goroutine and must not
	// block.
	ListenLeases(ctx context.Context, instance string, f func(LeaseNote)) error
}

// Lease is one holder's tenure of a user.
type Lease struct {
	User     string
	Instance string    // the holder; "" for none
	Epoch    int64     // raised at each acquisition
	Expires  time.Time // by the database's clock
}

// LeaseNote is a note between instances about a lease.
type LeaseNote struct {
	Kind LeaseNoteKind
	User string
	From string // the instance it came from
}

// LeaseNoteKind says what a LeaseNote is.
type LeaseNoteKind string

// Kinds of LeaseNote.
const (
	// LeaseListening: the notes are coming (the first call of f).
	LeaseListening LeaseNoteKind = "listening"
	// LeaseAsked: From asks this instance to hand User over.
	LeaseAsked LeaseNoteKind = "ask"
	// LeaseReleased: User's lease was released by From.
	LeaseReleased LeaseNoteKind = "released"
)

var (
	// ErrLeaseHeld: another instance holds the user's lease.
	ErrLeaseHeld = errors.New("store: another instance holds the user's lease")
	// ErrNoNotify: the engine cannot carry notes between instances
	// (SQLite: one instance per database).
	ErrNoNotify = errors.New("store: notes between instances need PostgreSQL")
)

// LeaseHeldError says who holds a lease and for how long at most.
type LeaseHeldError struct {
	User, Holder string
	Left         time.Duration // until it expires unless renewed
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("store: instance %q holds the lease of %q (it expires in %s unless renewed)", e.Holder, e.User, e.Left.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }
