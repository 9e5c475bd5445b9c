package store

import (
	"context"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// Kinds of history entry (HistoryEntry.Kind).
const (
	KindIM     = "im"
	KindAction = "action" // a /me
	KindZap    = "zap"
)

// Bounds of what the history keeps and returns.
const (
	// DefaultMaxHistoryPerUser is how many history entries a user keeps
	// unless WithMaxHistoryPerUser says otherwise: an append beyond it
	// deletes the user's oldest entries (by ID).
	DefaultMaxHistoryPerUser = 100_000
	// MaxHistoryLimit is the most entries (or targets) one History,
	// HistorySince or HistoryTargets call returns: a larger limit is
	// lowered to it.
	MaxHistoryLimit = 1000
	// MaxClientPositions is how many client names a user keeps a position
	// for: setting one more forgets the one set longest ago.
	MaxClientPositions = 64
	// MaxReadMarkers is how many conversations an account keeps a read
	// marker for: marking one more forgets the marker of the one read
	// longest ago (its earliest marker).
	MaxReadMarkers = 4096
)

// maxReadMarkers is MaxReadMarkers; tests lower it.
var maxReadMarkers = MaxReadMarkers

// HistoryEntry is one IM (or /me, or zap) in or out, kept per user, MSIM
// account and buddy.
type HistoryEntry struct {
	// ID is assigned by AppendHistory. A user's IDs increase with each
	// append and are never reused (not even after a deletion): use it as
	// the position of what a client has seen.
	ID int64
	// MsgID is unique per user, set by the caller (the IRCv3 msgid).
	MsgID string
	// Time is when it was sent or received. AppendHistory keeps it to the
	// millisecond (truncated) and returns it in UTC; a zero Time is now.
	Time     time.Time
	Account  string   // the MSIM account's e-mail
	Buddy    msim.UID // the other side
	Outgoing bool     // typed by the user
	Kind     string   // KindIM, KindAction or KindZap
	// Text is valid UTF-8 without NUL (both engines' text columns refuse
	// anything else, so AppendHistory refuses it first, saying why).
	Text string
}

// HistoryAppend is an entry of AppendHistoryBatch and the user it is for.
type HistoryAppend struct {
	User  string
	Entry HistoryEntry
}

// HistoryResult is what AppendHistoryBatch did with one entry: the entry
// as stored, or why it was not.
type HistoryResult struct {
	Entry HistoryEntry
	Err   error
}

// HistoryQuery selects entries of one conversation.
type HistoryQuery struct {
	Account string
	Buddy   msim.UID
	// After and Before are exclusive bounds; zero is unbounded.
	After, Before time.Time
	// AfterID and BeforeID, when not 0, make After and Before the place
	// of an entry in the (Time, ID) order rather than a time: the entries
	// at After with an ID above AfterID are after it (a negative AfterID
	// takes them all), and those at Before with an ID below BeforeID are
	// before it. A CHATHISTORY msgid reference is such a place: entries of
	// one time are not left out.
	AfterID, BeforeID int64
	// Limit is the most entries returned: it must be above 0 and is
	// lowered to MaxHistoryLimit.
	Limit int
	// Latest takes the newest Limit entries within the bounds (still
	// returned in ascending order); otherwise the oldest.
	Latest bool
}

// HistoryTarget is a conversation with history and its newest entry's
// time.
type HistoryTarget struct {
	Account string
	Buddy   msim.UID
	Latest  time.Time
}

// HistoryStore keeps the history of a user's conversations, their read
// markers and what each of their clients has been sent. Part of Store.
//
// A user's entries are numbered by ID in the order appended, and appends
// for one user are serialised, so a reader that has seen ID n has seen
// every entry of that user below n that still exists.
//
// Every method returns ErrNotFound for an unknown user (and, where one is
// named, an unknown account of the user).
type HistoryStore interface {
	// AppendHistory stores e and returns it with its ID set and its Time
	// as stored. ErrExists if the user has an entry with that MsgID
	// already. When the user then has more entries than the store's
	// maximum (WithMaxHistoryPerUser), their oldest are deleted.
	// Each call is a transaction of its own (one sync): a writer of many
	// entries uses AppendHistoryBatch. If ctx ends before it returns, the
	// entry may have been stored or not: HistoryByMsgID tells.
	AppendHistory(ctx context.Context, user string, e HistoryEntry) (HistoryEntry, error)
	// AppendHistoryBatch appends each entry of batch as AppendHistory
	// would, a user's in the order given, all in one transaction (one sync)
	// unless one fails otherwise than with ErrExists or ErrNotFound; then
	// each is appended on its own, so one bad entry fails no other. It
	// returns one result per entry, in batch's order, in res's array when
	// it is large enough (res may be nil): a caller that appends batch
	// after batch keeps one array for their results.
	AppendHistoryBatch(ctx context.Context, batch []HistoryAppend, res []HistoryResult) []HistoryResult
	// History returns entries of one conversation in ascending (Time, ID)
	// order.
	//
	// History, HistorySince and HistoryLatestSince leave out rows they
	// cannot read: they return the others, still up to the limit (so a
	// page's first or last entry bounds the next page past them), with an
	// *UnreadableRows naming those (its Email is "" for the user-wide
	// reads). The rows stay.
	History(ctx context.Context, user string, q HistoryQuery) ([]HistoryEntry, error)
	// HistoryByMsgID returns the user's entry of that msgid; ErrNotFound
	// if none, or if its row cannot be read (the error is then an
	// *UnreadableRows too, naming it).
	HistoryByMsgID(ctx context.Context, user, msgid string) (HistoryEntry, error)
	// HistoryTargets lists the conversations whose newest entry is
	// strictly between after and before (zero: unbounded; one with an
	// entry past before is not listed, as CHATHISTORY TARGETS wants), by
	// that entry, newest first (ties by account, then buddy), at most limit
	// (above 0, lowered to MaxHistoryLimit): those whose newest entry is
	// latest, or with oldest, those whose newest entry is earliest (a
	// CHATHISTORY TARGETS counted from its earlier bound).
	HistoryTargets(ctx context.Context, user string, after, before time.Time, limit int, oldest bool) ([]HistoryTarget, error)
	// HistorySince returns the user's entries with ID > afterID, of all
	// conversations, by ascending ID, at most limit (above 0, lowered to
	// MaxHistoryLimit): what a client at position afterID has not been
	// sent.
	HistorySince(ctx context.Context, user string, afterID int64, limit int) ([]HistoryEntry, error)
	// HistoryLatestSince returns the newest limit of the user's entries
	// with ID > afterID and, when beforeID is above 0, ID < beforeID, of
	// all conversations, by ascending ID (limit above 0, lowered to
	// MaxHistoryLimit): what a client at position afterID missed, read
	// from the newest back a page at a time.
	HistoryLatestSince(ctx context.Context, user string, afterID, beforeID int64, limit int) ([]HistoryEntry, error)
	// LastHistoryID is the ID of the user's latest append, even if that
	// entry has since been deleted; 0 if none. A client given this
	// position now is sent only what is appended after.
	LastHistoryID(ctx context.Context, user string) (int64, error)

	// SetReadMarker moves the conversation's read marker (IRCv3
	// draft/read-marker) to t if that is later than where it is, and
	// returns the marker as stored: the later of the two, to the
	// millisecond, in UTC. An account keeps MaxReadMarkers markers.
	SetReadMarker(ctx context.Context, user, account string, buddy msim.UID, t time.Time) (time.Time, error)
	// ReadMarker returns the conversation's read marker; the zero time if
	// none was set.
	ReadMarker(ctx context.Context, user, account string, buddy msim.UID) (time.Time, error)

	// SetClientPosition records that the user's client of that name ("phone"
	// for alice/phone; "" for a client that gave none) has been sent
	// everything up to history ID id. It only moves forward: a lower id
	// leaves the position as it is. A user keeps MaxClientPositions
	// client names; one more forgets the one set longest ago.
	SetClientPosition(ctx context.Context, user, client string, id int64) error
	// ClientPosition returns the client's position; found is false if the
	// client has none.
	ClientPosition(ctx context.Context, user, client string) (id int64, found bool, err error)

	// PruneHistory deletes, for every user, the entries whose Time is
	// before before. With keepNeverDelivered, an entry whose ID is above
	// the highest position of any of its user's clients (so it was sent
	// to none of them; all of them if the user has no client position)
	// is kept whatever its age. It returns how many entries it deleted.
	// It works in short transactions, so appends go on meanwhile.
	//
	// A retention of 0 ("keep only what no client has been sent") is
	// PruneHistory(ctx, now, true).
	PruneHistory(ctx context.Context, before time.Time, keepNeverDelivered bool) (int64, error)
}
