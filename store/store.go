// Package store keeps what the gateway must not forget across restarts: its
// IRC users and their password hashes, their MSIM accounts (with the MSIM
// passwords sealed under a key kept outside the database), buddy nicks and
// renames, user and account settings, IMs held for a detached user, IMs
// queued while an MSIM link is down, notes for a user's next connection,
// and the history of every conversation with its read markers and what
// each of the user's clients has been sent (HistoryStore), and which of
// several gateway instances serves each user (LeaseStore).
//
// One implementation over database/sql serves two engines on one schema:
// SQLite (modernc.org/sqlite, pure Go) as the embedded default and
// PostgreSQL (pgx) for larger deployments. The schema is versioned; Open
// applies the migrations this binary knows and refuses a database that is
// newer than it.
//
// Every method of Store is safe for concurrent use. A method that writes
// has committed its change when it returns without error, so a caller may
// treat an IM as accepted once HoldIM or QueueIM has returned.
//
// The store Open returns runs its operations on goroutines of its own, as
// many as it has connections (one for SQLite, 16 for PostgreSQL), taking
// callers in the order they came; a long operation (PruneHistory, a
// failed history batch appended again entry by entry) takes a turn for
// each of its transactions. An operation whose ctx ends while it waits for
// its turn fails with ctx's error and has done nothing (an append stored
// nothing). ListenLeases runs on its caller's goroutine.
//
// Names are compared exactly: the caller passes a user name and an account
// e-mail in the one spelling it uses for them (for example casemapped).
package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrNotFound: the user, account or row named does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a user of that name, or an account of that e-mail for
	// the user, exists already.
	ErrExists = errors.New("store: already exists")
	// ErrWrongKey: the key does not open what was sealed in the database.
	ErrWrongKey = errors.New("store: the key does not open the sealed MSIM passwords (is it the key file this database was created with?)")
	// ErrUnreadable: a row cannot be read (AccountState.Unreadable,
	// UnreadableRows).
	ErrUnreadable = errors.New("store: unreadable row")
	// ErrFull: an account holds MaxHeld IMs, or a user has MaxNotes notes
	// or MaxAccounts accounts of their own, already; nothing was added.
	ErrFull = errors.New("store: full")
)

// MaxHeld bounds the IMs and zaps held per account, and MaxNotes the notes
// kept per user, so that a buddy writing to a user who stays away fills
// neither the database nor the user's next connection without end.
const (
	MaxHeld  = 1000
	MaxNotes = 1000
)

// MaxAccounts bounds the MSIM accounts a user adds themselves
// (AddAccountBounded: account add). Each is a stored sealed password, a
// control channel, an MSIM login at every connection and room for
// MaxHeld IMs (and as many queued), so without a bound a registered user
// could fill the database and the gateway's connections with them. 32 is
// far beyond what one person keeps (BitlBee and soju set no such bound by
// default, ZNC gives a user one network unless an admin gives more). The
// configuration's accounts are the operator's: the store adds them
// without this check (AddAccount), and the config check holds each
// [[user]] to the same bound.
const MaxAccounts = 32

// Store keeps the gateway's state. Every method is safe for concurrent use;
// every write is committed before the method returns.
type Store interface {
	// CreateUser adds a user with a hash from HashPassword; ErrExists if
	// the name is taken.
	CreateUser(ctx context.Context, name, passwordHash string) (User, error)
	// User returns the user; ErrNotFound if none.
	User(ctx context.Context, name string) (User, error)
	// Users returns every user, by name.
	Users(ctx context.Context) ([]User, error)
	// SetPassword replaces the user's password hash.
	SetPassword(ctx context.Context, name, passwordHash string) error
	// DeleteUser deletes the user and everything kept for them.
	DeleteUser(ctx context.Context, name string) error
	// LoadUser returns everything kept for the user but the held and
	// queued IMs themselves (their counts are given) and the notes. An
	// account whose sealed MSIM password does not open (a corrupt row)
	// comes with Unreadable set and no password; the others load. A buddy
	// nick that cannot be read is left out (NicksUnreadable), a user or
	// account setting that cannot be read is unset, an autoconnect that
	// cannot be read is false, and a creation time that cannot be read
	// (here, in User and in Users) is the zero Time.
	LoadUser(ctx context.Context, name string) (UserState, error)

	// SetSetting sets one of the user's settings.
	SetSetting(ctx context.Context, user, key, value string) error
	// DeleteSetting removes one of the user's settings (none is no error).
	DeleteSetting(ctx context.Context, user, key string) error

	// AddAccount adds an MSIM account with its settings; ErrExists if
	// the user has an account of that e-mail. It does not bound how many
	// the user has: it is for the accounts the operator gives a user
	// (the configuration's).
	AddAccount(ctx context.Context, user string, a Account) error
	// AddAccountBounded is AddAccount for an account a user adds
	// themselves: ErrFull, and nothing added, when they have MaxAccounts
	// accounts already (however many add at once). ErrExists comes
	// first: an account the user has is never ErrFull.
	AddAccountBounded(ctx context.Context, user string, a Account) error
	// UpdateAccount replaces the password, channel and autoconnect of the
	// account named by a.Email; a.Settings is ignored.
	UpdateAccount(ctx context.Context, user string, a Account) error
	// DeleteAccount deletes the account and everything kept for it.
	DeleteAccount(ctx context.Context, user, email string) error
	// SetAccountSetting sets one of an account's settings.
	SetAccountSetting(ctx context.Context, user, email, key, value string) error
	// DeleteAccountSetting removes one of an account's settings (none is
	// no error).
	DeleteAccountSetting(ctx context.Context, user, email, key string) error

	// SetNick remembers the nick of a buddy of the account (a rename
	// replaces it).
	SetNick(ctx context.Context, user, email string, uid msim.UID, nick string) error
	// DeleteNick forgets the nick of a buddy (none is no error).
	DeleteNick(ctx context.Context, user, email string, uid msim.UID) error

	// HoldIM keeps an IM or zap for the user's next connection and
	// returns it with its ID set; ErrFull when the account holds MaxHeld.
	HoldIM(ctx context.Context, user, email string, im HeldIM) (HeldIM, error)
	// HeldIMs returns the account's held IMs in arrival order (by Seq,
	// then by the order they were held) and keeps them. Rows it cannot
	// read are left out and removed (they could never be shown, and
	// would count against MaxHeld for good): it returns the others and
	// an *UnreadableRows naming them (Removed unless the removal failed;
	// then they stay, for the next read).
	HeldIMs(ctx context.Context, user, email string) ([]HeldIM, error)
	// TakeHeld returns the account's held IMs in arrival order and
	// forgets them, in one statement; a take that fails forgets none. An
	// IM taken is no longer kept: where a crash before delivery must lose
	// nothing, use HeldIMs and then DeleteHeld for what was delivered.
	// Rows it cannot read are taken too: it returns the others with an
	// *UnreadableRows (Removed) naming those.
	TakeHeld(ctx context.Context, user, email string) ([]HeldIM, error)
	// DeleteHeld forgets the held IMs of the account with these IDs
	// (delivered ones); IDs not held are ignored.
	DeleteHeld(ctx context.Context, user, email string, ids ...int64) error

	// QueueIM keeps an IM the user typed while the account's link was
	// down and returns it with its ID set.
	QueueIM(ctx context.Context, user, email string, im QueuedIM) (QueuedIM, error)
	// QueuedIMs returns the account's queued IMs in the order queued.
	// Rows it cannot read are left out, as HeldIMs does.
	QueuedIMs(ctx context.Context, user, email string) ([]QueuedIM, error)
	// DeleteQueued forgets the queued IMs with these IDs (sent ones);
	// IDs not queued are ignored.
	DeleteQueued(ctx context.Context, user, email string, ids ...int64) error

	// AddNote keeps a line to tell the user when they next connect;
	// ErrFull when the user has MaxNotes.
	AddNote(ctx context.Context, user, text string) error
	// TakeNotes returns the user's notes in the order added and forgets
	// them, in one transaction; a take that fails forgets none. Notes it
	// cannot read are taken too: it returns the others with an
	// *UnreadableRows (Removed) naming those.
	TakeNotes(ctx context.Context, user string) ([]string, error)

	// Ping checks that the database answers a query (a readiness check).
	Ping(ctx context.Context) error

	HistoryStore
	LeaseStore
	LoginFailureStore

	// Close closes the database once the operations under way have
	// ended; operations after it fail.
	Close() error
}

// User is an IRC user of the gateway.
type User struct {
	Name         string
	PasswordHash string // from HashPassword
	Created      time.Time
}

// Account is one of a user's MSIM accounts. Password is the MSIM password
// in clear: the store seals it on write and opens it on read.
type Account struct {
	Email       string
	Password    string
	Channel     string // control channel
	Autoconnect bool
	Settings    map[string]string // per-account settings; may be nil
}

// AccountState is an account with what is kept for it.
type AccountState struct {
	Account
	Nicks  map[msim.UID]string // buddy nicks, renames included
	Held   int                 // IMs held (HeldIMs returns them)
	Queued int                 // IMs queued (QueuedIMs returns them)
	// Unreadable is set (ErrUnreadable), naming the user, the account and
	// its row, when the account's sealed MSIM password does not open
	// although the key opens the database's (the row is corrupt, or was
	// written by another tool or for another account); Password is empty
	// then. The row and what is kept for the account stay: UpdateAccount
	// with the password seals it anew.
	Unreadable error
	// NicksUnreadable names the account's buddy nicks that could not be
	// read (ErrUnreadable, naming the user, the account's row, the nick
	// and its uid as kept): they are left out of Nicks, and their rows
	// stay.
	NicksUnreadable []error
}

// UserState is what LoadUser returns.
type UserState struct {
	User     User
	Settings map[string]string
	Accounts []AccountState // in the order added
	// HeldSeq is the highest Seq of the user's held IMs (0 if none): a
	// caller numbering arrivals continues after it, so what arrives now
	// sorts after what was held before a restart.
	HeldSeq int64
	// Notes is how many notes wait for the user (TakeNotes returns them).
	Notes int
}

// UnreadableRows is the error (ErrUnreadable) of a read that left out
// rows of a user or an account it could not read: values that do not
// convert, as a corrupt database keeps them, or SQLite does what another
// tool or a bad migration wrote (text in an integer column). The read
// returns the others with it. The rows stay unless Removed.
type UnreadableRows struct {
	Table string // held_ims, queued_ims, history or notes
	User  string
	Email string // the account's; "" for a read of all the user's accounts
	Rows  []UnreadableRow
	// Removed: the read removed the rows (held IMs, which could never be
	// shown and would count against MaxHeld for good).
	Removed bool
}

// UnreadableRow is a row left out, by its id, and why.
type UnreadableRow struct {
	ID  int64
	Err error
}

func (e *UnreadableRows) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %d %s rows", ErrUnreadable, len(e.Rows), e.Table)
	if e.Email != "" {
		fmt.Fprintf(&b, " of account %q", e.Email)
	}
	fmt.Fprintf(&b, " of user %q", e.User)
	if e.Removed {
		b.WriteString(", removed")
	}
	b.WriteString(":")
	for i, r := range e.Rows {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " row %d: %v", r.ID, r.Err)
	}
	return b.String()
}

func (e *UnreadableRows) Unwrap() error { return ErrUnreadable }

// err is e, or nil when no row was left out.
func (e *UnreadableRows) err() error {
	if len(e.Rows) == 0 {
		return nil
	}
	slices.SortFunc(e.Rows, func(a, b UnreadableRow) int { return cmp.Compare(a.ID, b.ID) })
	return e
}

// HeldIM is an IM or a zap from a buddy that did not reach the user.
// Times are kept to the microsecond.
type HeldIM struct {
	ID      int64    // set by the store
	Seq     int64    // the caller's arrival number; the order they are shown in
	From    msim.UID // the sender
	Text    string   // plain text, valid UTF-8 without NUL (as every engine can keep it); empty for a zap
	Time    time.Time
	Offline bool // stored by the MSIM server while the account was offline
	IsZap   bool // a zap of kind Zap rather than an IM
	Zap     markup.Zap
	MsgID   string // its msgid in the history; may be empty
	// Markup is the IM's body as received when it carries styles (bold,
	// italic, underline), for them to show; "" for one shown as Text.
	// Valid UTF-8 without NUL, as Text.
	Markup string
}

// QueuedIM is an IM the user typed while the MSIM link was down.
type QueuedIM struct {
	ID   int64     // set by the store
	To   msim.UID  // the recipient
	Nick string    // the recipient's nick when it was typed
	Text string    // valid UTF-8 without NUL
	Time time.Time // when it was typed
	// Recorded: in the history already (an IM the MSIM client took and
	// never wrote); otherwise the bridge records it once it is sent.
	Recorded bool
	MsgID    string // the msgid it was typed with ('' for none)
}
