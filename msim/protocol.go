package msim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// UID is a numeric MySpace user id.
type UID int

// validUID reports whether uid can be an MSIM user's: positive, and 31
// bits at most, as the protocol's ids are.
func validUID(uid UID) bool { return uid > 0 && uid <= 1<<31-1 }

// ParseUID parses a decimal uid; zero and negative ids are invalid.
func ParseUID(s string) (UID, error) {
	n, err := parseInt(s)
	if err != nil || !validUID(UID(n)) {
		return 0, fmt.Errorf("msim: bad uid %q", s)
	}
	return UID(n), nil
}

func (u UID) String() string { return strconv.Itoa(int(u)) }

// Login constants.
const (
	LoginAlgorithm = 196610 // login2 value: algorithm 3.2
	ClientVersion  = 697    // the build number we announce (libpurple's)
	// LoginStatusField is the unexplained status value of login2.
	LoginStatusField = 100
)

// Status is a presence code, in \status\ and in bm 100.
type Status int

// Presence codes. Invisible is sent by a client as 0 and seen by others as
// offline.
const (
	StatusOffline Status = 0
	StatusOnline  Status = 1
	StatusIdle    Status = 2
	StatusAway    Status = 5
)

func (s Status) String() string {
	switch s {
	case StatusOffline:
		return "offline"
	case StatusOnline:
		return "online"
	case StatusIdle:
		return "idle"
	case StatusAway:
		return "away"
	case StatusInvisible:
		return "invisible"
	}
	return "status " + strconv.Itoa(int(s))
}

// Buddy message types (bm).
const (
	BMIM         = 1   // instant message; stored for offline recipients
	BMAddNotify  = 4   // server → client after addbuddy, empty msg (2007 capture)
	BMStatus     = 100 // presence, server → client
	BMAction     = 121 // typing, zaps
	BMMedia      = 122
	BMProfile    = 124
	BMStatusMood = 126
	BMClientInfo = 200
)

// Persist cmd bits.
const (
	CmdGet    = 1
	CmdPut    = 2
	CmdDelete = 3
	CmdReply  = 256
	CmdAction = 512
	CmdError  = 1024
)

// Persist (dsn, lid) pairs.
type DSNLID struct{ DSN, LID int }

// Known persist requests.
var (
	PersistContactList   = DSNLID{0, 1}
	PersistContactInfo   = DSNLID{0, 2}
	PersistSetContact    = DSNLID{0, 9} // with CmdPut|CmdAction
	PersistDeleteContact = DSNLID{0, 8} // with CmdDelete|CmdAction
	PersistOwnIMInfo     = DSNLID{1, 4}
	PersistIMInfo        = DSNLID{1, 17}
	PersistIMInfoAlt     = DSNLID{1, 7}
	PersistSetPrefs      = DSNLID{1, 10}
	PersistGroupList     = DSNLID{2, 6}
	PersistSetGroup      = DSNLID{2, 16}
	PersistProfile       = DSNLID{4, 3}
	PersistOwnProfile    = DSNLID{4, 5}
	PersistLookup        = DSNLID{5, 7}
	PersistAlerts        = DSNLID{7, 18}
	PersistAlertsAlt     = DSNLID{7, 10}
	PersistSetUserName   = DSNLID{9, 14}
	PersistWebChallenge  = DSNLID{17, 26}
	PersistServerInfo    = DSNLID{101, 20}
)

// Error codes of \error\.
const (
	ErrCodeParse          = 1
	ErrCodeNotLoggedIn    = 2
	ErrCodeBadSession     = 3
	ErrCodeElsewhere      = 6
	ErrCodeBadUID         = 4352
	ErrCodeUnknownAccount = 259
	ErrCodeBadPassword    = 260
)

// Persist is a persist request or persistr reply.
type Persist struct {
	Cmd  int
	DSN  int
	LID  int
	UID  UID // the requester's uid; 0 when the request omitted it
	RID  int
	Body Dict

	// parts is the wire form of the body (values still escaped), one item
	// per message of the reply, for a request that asked for it (req.raw):
	// Body is then left empty, unless the reply is an error.
	parts []string
	// overBound: no reply of the server's, but the client's, as the
	// replies held passed their bound (maxReplyBytes): the request fails
	// with ErrRepliesTooLarge.
	overBound bool
}

// Kind returns the (dsn, lid) pair.
func (p *Persist) Kind() DSNLID { return DSNLID{p.DSN, p.LID} }

// Op returns cmd without the reply, action and error bits (1 get, 2 put, 3 delete).
func (p *Persist) Op() int { return p.Cmd & 0xFF }

// IsError reports whether a reply has the error bit set.
func (p *Persist) IsError() bool { return p.Cmd&CmdError != 0 }

// ErrorMessage returns the body's ErrorMessage item.
func (p *Persist) ErrorMessage() string { return p.Body.Str("ErrorMessage") }

// ParsePersist reads a persist or persistr message. Fields are looked up by
// name, in any order; uid may be missing.
func ParsePersist(m *Message) (*Persist, error) { return parsePersist(m, true) }

// parsePersist is ParsePersist; without body, the body is left unparsed
// (the caller reads it with m.Raw), unless the reply is an error, whose
// message is in the body.
func parsePersist(m *Message, body bool) (*Persist, error) {
	if !m.Is("persist") && !m.Is("persistr") {
		return nil, fmt.Errorf("msim: %q is not a persist message", m.Type())
	}
	p := &Persist{}
	var err error
	if p.Cmd, err = m.Int("cmd"); err != nil {
		return nil, err
	}
	if p.DSN, err = m.Int("dsn"); err != nil {
		return nil, err
	}
	if p.LID, err = m.Int("lid"); err != nil {
		return nil, err
	}
	if p.RID, err = m.Int("rid"); err != nil {
		return nil, err
	}
	if m.Has("uid") {
		u, err := m.Int("uid")
		if err != nil {
			return nil, err
		}
		p.UID = UID(u)
	}
	if body || p.IsError() {
		p.Body = persistBody(m)
	}
	return p, nil
}

// persistBody is m's body parsed; nil when it has none. An item without
// '=' ends the body; what came before is kept, as the reference client
// does, so the request still gets its answer.
func persistBody(m *Message) Dict {
	if !m.Has("body") {
		return nil
	}
	d, _ := m.Dict("body") // its only error is ErrBadDict, with the items before
	return d
}

// Request encodes p as a client's persist request.
func (p *Persist) Request(sesskey int) *Message {
	m := NewInt("persist", 1).AddInt("sesskey", sesskey).AddInt("cmd", p.Cmd).AddInt("dsn", p.DSN)
	if p.UID != 0 {
		m.AddInt("uid", int(p.UID))
	}
	return m.AddInt("lid", p.LID).AddInt("rid", p.RID).AddDict("body", p.Body)
}

// Reply encodes p as a server's persistr reply (Cmd as given: set the reply
// or error bit yourself).
func (p *Persist) Reply() *Message {
	return New("persistr", "").AddInt("cmd", p.Cmd).AddInt("dsn", p.DSN).
		AddInt("uid", int(p.UID)).AddInt("lid", p.LID).AddInt("rid", p.RID).AddDict("body", p.Body)
}

// AppendReply appends the wire form of Reply() to b, the body written in
// place rather than built as a string first.
func (p *Persist) AppendReply(b []byte) []byte {
	b = append(b, `\persistr\\cmd\`...)
	b = strconv.AppendInt(b, int64(p.Cmd), 10)
	b = append(b, `\dsn\`...)
	b = strconv.AppendInt(b, int64(p.DSN), 10)
	b = append(b, `\uid\`...)
	b = strconv.AppendInt(b, int64(p.UID), 10)
	b = append(b, `\lid\`...)
	b = strconv.AppendInt(b, int64(p.LID), 10)
	b = append(b, `\rid\`...)
	b = strconv.AppendInt(b, int64(p.RID), 10)
	b = append(b, `\body\`...)
	b = p.Body.AppendTo(b)
	return append(b, `\final\`...)
}

// ReplySize is about the size of AppendReply's output, for sizing its
// buffer.
func (p *Persist) ReplySize() int { return 96 + p.Body.wireSize() }

// Presence is the content of a bm 100 message.
type Presence struct {
	Status   Status
	Text     string // ss: status text / headline, plain text
	Location string // ls
	Extra    []Pair // other items (ip, p, ts, caps…), kept in order
}

// parseStatus is ParsePresence(ParseList(raw)) for what the client keeps
// of a status message, its status and text, without making the list.
func parseStatus(raw string) (Status, string, error) {
	raw = strings.TrimPrefix(raw, "|")
	var (
		st    Status
		text  string
		haveS bool
	)
	for raw != "" {
		k, rest, ok := strings.Cut(raw, "|")
		if !ok {
			break // a last key without a value
		}
		v, rest, _ := strings.Cut(rest, "|")
		raw = rest
		switch k := Unescape(k); k {
		case "s":
			v = Unescape(v)
			n, err := parseInt(v)
			if err != nil {
				return st, text, &FieldError{Key: "s", Value: v, Err: err}
			}
			st, haveS = Status(n), true
		case "ss":
			text = Unescape(v)
		}
	}
	if !haveS {
		return st, text, &FieldError{Key: "s", Err: ErrMissing}
	}
	return st, text, nil
}

// ParsePresence reads a presence list "|s|1|ss|text|ls||ip|0|p|0" by key.
// A missing s reads as an error; an unknown code is kept as is.
func ParsePresence(l List) (Presence, error) {
	var p Presence
	items := []string(l)
	if len(items) > 0 && items[0] == "" {
		items = items[1:]
	}
	haveS := false
	for i := 0; i+1 < len(items); i += 2 {
		k, v := items[i], items[i+1]
		switch k {
		case "s":
			n, err := parseInt(v)
			if err != nil {
				return p, &FieldError{Key: "s", Value: v, Err: err}
			}
			p.Status, haveS = Status(n), true
		case "ss":
			p.Text = v
		case "ls":
			p.Location = v
		default:
			if p.Extra == nil {
				p.Extra = make([]Pair, 0, (len(items)-i)/2) // room for the rest: one allocation
			}
			p.Extra = append(p.Extra, Pair{k, v})
		}
	}
	if !haveS {
		return p, &FieldError{Key: "s", Err: ErrMissing}
	}
	return p, nil
}

// List encodes p in the order s, ss, ls, ip, p as real servers did; an
// offline presence is "|s|0|ss|Offline" like the 2007 server's.
func (p Presence) List() List {
	if p.Status == StatusOffline {
		return List{"", "s", "0", "ss", "Offline"}
	}
	l := List{"", "s", strconv.Itoa(int(p.Status)), "ss", p.Text, "ls", p.Location}
	if len(p.Extra) == 0 {
		return append(l, "ip", "0", "p", "0")
	}
	for _, e := range p.Extra {
		l = append(l, e.Key, e.Value)
	}
	return l
}

// FileTime converts a Windows FILETIME (100 ns ticks since 1601) to a time.
func FileTime(ticks int64) time.Time {
	return time.Unix(ticks/10_000_000-11_644_473_600, (ticks%10_000_000)*100).UTC()
}

// ToFileTime converts a time to Windows FILETIME ticks.
func ToFileTime(t time.Time) int64 {
	return (t.Unix()+11_644_473_600)*10_000_000 + int64(t.Nanosecond()/100)
}

// ErrorMessage builds an \error\ message.
func ErrorMessage(code int, fatal bool, text string) *Message {
	m := New("error", "").AddInt("err", code)
	if fatal {
		m.AddFlag("fatal")
	}
	return m.Add("errmsg", text)
}
