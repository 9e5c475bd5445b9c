package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// Operations on PREFIX.u.UID: the first byte of the payload.
const (
	opDeliver = 'D' // uvarint deadline, uvarint sender uid, then the encoded bm
	opKick    = 'K' // JSON server.Version; also the reply of a node whose session is newer
	opState   = 'S' // nothing
	opMailbox = 'M' // nothing
	opHandOn  = 'O' // JSON handOnMsg
)

// Operations on PREFIX.alert and PREFIX.hb.
const (
	opAlert      = 'A' // JSON alertMsg
	opAlertTaken = 'T' // JSON alertMsg without Key
	opHeartbeat  = 'H' // JSON beat
	opBye        = 'B' // JSON beat
)

// Replies to opDeliver.
var (
	replyTaken    = []byte{'1'}
	replyNotTaken = []byte{'0'}
)

// errBadMessage is the error of every decoder here.
var errBadMessage = errors.New("cluster: malformed message")

// maxUID bounds the uids a message may carry (msim.UID is an int, and uids
// are positive 31-bit numbers on the wire).
const maxUID = 1<<31 - 1

// encodeDeliver is an opDeliver payload: the sender's deadline (Unix
// nanoseconds by its clock: it stores the IM itself if no answer comes by
// then), the sender, and the bm. The deadline comes first: a node that
// predates it reads it as a sender uid out of range and drops the request,
// whose sender then times out and stores the IM. A request from such a
// node (sender, then the bm) does not decode here: what would be the
// sender is the bm's leading backslash, and no backslash follows it. It
// gets no answer, so its sender times out and stores the IM too.
func encodeDeliver(deadline time.Time, from msim.UID, wire []byte) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(wire))
	b = append(b, opDeliver)
	b = binary.AppendUvarint(b, uint64(max(deadline.UnixNano(), 0)))
	b = binary.AppendUvarint(b, uint64(from))
	return append(b, wire...)
}

// decodeDeliver reads an opDeliver payload without its op byte.
func decodeDeliver(b []byte) (deadline time.Time, from msim.UID, wire []byte, err error) {
	d, n := binary.Uvarint(b)
	if n <= 0 || d > math.MaxInt64 {
		return time.Time{}, 0, nil, errBadMessage
	}
	b = b[n:]
	f, n := binary.Uvarint(b)
	if n <= 0 || f == 0 || f > maxUID || n == len(b) || b[n] != '\\' { // a bm starts with a backslash
		return time.Time{}, 0, nil, errBadMessage
	}
	return time.Unix(0, int64(d)), msim.UID(f), b[n:], nil
}

// encodeJSON is op followed by v as JSON.
func encodeJSON(op byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs are encoded here
		panic(fmt.Sprintf("cluster: encode %T: %v", v, err))
	}
	return append([]byte{op}, b...)
}

func decodeJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", errBadMessage, err)
	}
	return nil
}

// decodeState reads a PeerState and checks that it is about uid (0: any).
func decodeState(b []byte, uid msim.UID) (*server.PeerState, error) {
	var st server.PeerState
	if err := decodeJSON(b, &st); err != nil {
		return nil, err
	}
	if err := checkState(&st, uid); err != nil {
		return nil, err
	}
	return &st, nil
}

// checkState checks that st is about uid (0: any), and from a node.
func checkState(st *server.PeerState, uid msim.UID) error {
	if st.UID <= 0 || st.UID > maxUID || uid != 0 && st.UID != uid || st.Node == "" {
		return errBadMessage
	}
	return nil
}

// decodeVersion reads the version of an opKick payload (a kick, or the
// answer of a node whose session is newer) without its op byte.
func decodeVersion(b []byte) (server.Version, error) {
	var v server.Version
	if err := decodeJSON(b, &v); err != nil {
		return server.Version{}, err
	}
	if v.Node == "" {
		return server.Version{}, errBadMessage
	}
	return v, nil
}

// decodeHandOn reads an opHandOn payload for uid without its op byte.
func decodeHandOn(b []byte, uid msim.UID) (to server.Version, st *server.PeerState, err error) {
	var h handOnMsg
	if err := decodeJSON(b, &h); err != nil {
		return server.Version{}, nil, err
	}
	if h.To.Node == "" || h.State == nil {
		return server.Version{}, nil, errBadMessage
	}
	if err := checkState(h.State, uid); err != nil {
		return server.Version{}, nil, err
	}
	return h.To, h.State, nil
}

// decodeBeat reads a heartbeat, a goodbye or a fence, op byte and all.
func decodeBeat(b []byte) (op byte, _ beat, _ error) {
	var bt beat
	if len(b) == 0 || b[0] != opHeartbeat && b[0] != opBye {
		return 0, beat{}, errBadMessage
	}
	if err := decodeJSON(b[1:], &bt); err != nil {
		return 0, beat{}, err
	}
	if bt.Node == "" {
		return 0, beat{}, errBadMessage
	}
	return b[0], bt, nil
}

// decodeAlert reads an alert set (with its key) or taken, op byte and all.
func decodeAlert(b []byte) (op byte, _ alertMsg, _ error) {
	var a alertMsg
	if len(b) == 0 || b[0] != opAlert && b[0] != opAlertTaken {
		return 0, alertMsg{}, errBadMessage
	}
	if err := decodeJSON(b[1:], &a); err != nil {
		return 0, alertMsg{}, err
	}
	if a.UID <= 0 || a.UID > maxUID || b[0] == opAlert && a.Key == "" {
		return 0, alertMsg{}, errBadMessage
	}
	return b[0], a, nil
}

// alertMsg is an alert set or taken.
type alertMsg struct {
	UID  msim.UID `json:"uid"`
	Key  string   `json:"key,omitempty"`
	Node string   `json:"node"`
}

// handOnMsg is the state of a session closed for a login that a newer
// one, at To, superseded.
type handOnMsg struct {
	To    server.Version    `json:"to"`
	State *server.PeerState `json:"state"`
}

// beat is a heartbeat or a goodbye.
type beat struct {
	Node string `json:"node"` // incarnation
}

// subjects builds the subject names under a prefix.
type subjects string

func (p subjects) user(uid msim.UID) string     { return string(p) + ".u." + strconv.Itoa(int(uid)) }
func (p subjects) presence(uid msim.UID) string { return string(p) + ".p." + strconv.Itoa(int(uid)) }
func (p subjects) heartbeat() string            { return string(p) + ".hb" }
func (p subjects) fence() string                { return string(p) + ".fence" }
func (p subjects) alert() string                { return string(p) + ".alert" }

// uidOf reads the uid at the end of a per-user subject, written as
// subjects writes it (no sign, no leading zero).
func uidOf(subject string) (msim.UID, error) {
	tok := subject[strings.LastIndexByte(subject, '.')+1:]
	n, err := strconv.Atoi(tok)
	if err != nil || n <= 0 || n > maxUID || strconv.Itoa(n) != tok {
		return 0, errBadMessage
	}
	return msim.UID(n), nil
}

// validPrefix reports whether p can prefix subjects: dot-separated tokens
// without wildcards or spaces.
func validPrefix(p string) bool {
	if p == "" {
		return false
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}
