package ircd

import (
	"encoding/base32"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// msgIDEncoding writes message ids in lower-case base32 without padding:
// letters and digits only, so an id never starts with ':' and holds no
// space, CR, LF or '-' (IRCv3 message-ids), and a piece suffix ("-2") is
// never mistaken for part of it. Its alphabet is in byte order, so ids
// sort as the bytes they encode.
var msgIDEncoding = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// NewMsgID returns a new message id (26 characters): the time in
// milliseconds, then 80 random bits, unique for all practical purposes.
// Ids of later times sort after, so a store's index by msgid grows at its
// end rather than anywhere. ircd gives one to every message the client sends
// (Input.MsgID); a backend may use it for its own messages
// (Delivery.MsgID).
func NewMsgID() string {
	return newMsgID(time.Now())
}

// NewMsgIDAt is NewMsgID for a message that came at the time at, which
// its id starts with: a backend that has already read the clock for the
// message (a time it keeps with it) need not read it again.
func NewMsgIDAt(at time.Time) string { return newMsgID(at) }

// AppendMsgIDAt appends the id NewMsgIDAt(at) would return to b, for a
// backend that builds a message's id into a buffer of its own (with its
// text, say, so that the two are one allocation rather than two).
func AppendMsgIDAt(b []byte, at time.Time) []byte { return appendMsgID(b, at) }

// newMsgID is NewMsgID at now. The random bits come from math/rand/v2's generator, seeded by the
// operating system: an id must not repeat, and it guards nothing (a
// client names ids only in its own user's history), so it needs no system
// call per message.
func newMsgID(now time.Time) string {
	var out [MsgIDLen]byte
	return string(appendMsgID(out[:0], now))
}

// MsgIDLen is the length of an id newMsgID (and AppendMsgIDAt) makes:
// base32 of 16 bytes, unpadded.
const MsgIDLen = 26

// appendMsgID appends a new id at now, as newMsgID makes it, to b.
func appendMsgID(b []byte, now time.Time) []byte {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixMilli())<<16) // 6 bytes of time
	binary.BigEndian.PutUint64(raw[6:14], rand.Uint64())
	binary.BigEndian.PutUint16(raw[14:], uint16(rand.Uint32()))
	return msgIDEncoding.AppendEncode(b, raw[:])
}

// msgID returns the id of a message the client sent at now: the one its
// line was read with (lineID) if made at now, once; else a new one.
// Caller holds c.mu, on the reader goroutine.
func (c *Client) msgID(now time.Time) string {
	if id := c.lineID; id != "" && c.lineIDAt.Equal(now) {
		c.lineID = ""
		return id
	}
	return newMsgID(now)
}

// MsgIDTime returns the time, to the millisecond, that an id NewMsgID
// made begins with; false for an id it cannot have made.
func MsgIDTime(id string) (time.Time, bool) {
	if len(id) != 26 {
		return time.Time{}, false
	}
	var b [16]byte
	if n, err := msgIDEncoding.Decode(b[:], []byte(id)); err != nil || n != len(b) {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8]) >> 16)), true
}

// MsgIDBase returns the id of the message that a line's msgid belongs to:
// id without a "-N" suffix (N ≥ 2), which earlier versions of Deliver
// added to the second and later lines of a long message (now only the
// first line carries the id), and a client may still hold. It is meant
// for ids without '-' of their own, such as NewMsgID's: a backend looking
// up a msgid a client sent (HistoryRef.MsgID) passes it through MsgIDBase
// first.
func MsgIDBase(id string) string {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return id
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 2 || strconv.Itoa(n) != id[i+1:] {
		return id
	}
	return id[:i]
}

// inputTime is the time of a message the client sent, read at (see
// readTime), in UTC, to the millisecond that server-time shows, so an echo
// and a stored copy agree.
func inputTime(at time.Time) time.Time { return at.UTC().Truncate(time.Millisecond) }

// readTime is when the reader read the line being handled, or now outside
// a line the reader handles.
func (c *Client) readTime() time.Time {
	if !c.lineAt.IsZero() {
		return c.lineAt
	}
	return c.srv.now()
}
