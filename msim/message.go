package msim

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/msimircd/msimircd/msim/markup"
)

// Field is one key/value pair of a message, exactly as on the wire: Value is
// still escaped (see Escape). Keys and raw values never contain a backslash.
type Field struct {
	Key   string
	Value string
}

// Message is an ordered list of key/value pairs. The first key names the
// message type (lc, login2, bm, persist, persistr, status, error, ka, …).
//
// Values are kept in their wire form, so a decoded message re-encodes to the
// same bytes. The typed getters unescape and parse on demand and return a
// *FieldError for a missing or malformed field; the Add methods escape, so no
// value can break the framing.
type Message struct {
	fields []Field
	// room, when set, has room after the message's text to unescape a
	// value into (see Decoder.text): the decoder's, while a reader
	// handles the message.
	room *strings.Builder
}

// New starts a message whose first key is typ with the (escaped) value v.
func New(typ, v string) *Message {
	m := &Message{fields: make([]Field, 0, 8)}
	return m.Add(typ, v)
}

// NewInt starts a message whose first key is typ with the integer value v.
func NewInt(typ string, v int) *Message {
	return New(typ, strconv.Itoa(v))
}

func checkKey(k string) {
	if k == "" || strings.IndexByte(k, '\\') >= 0 {
		// Keys are protocol constants chosen by the program, never user input.
		panic(fmt.Sprintf("msim: invalid key %q", k))
	}
}

// Add appends key k with the string value v, escaped.
func (m *Message) Add(k, v string) *Message {
	checkKey(k)
	m.fields = append(m.fields, Field{k, Escape(v)})
	return m
}

// AddInt appends key k with the decimal value v.
func (m *Message) AddInt(k string, v int) *Message {
	checkKey(k)
	m.fields = append(m.fields, Field{k, strconv.Itoa(v)})
	return m
}

// AddFlag appends key k with an empty value (the protocol's "true").
func (m *Message) AddFlag(k string) *Message {
	checkKey(k)
	m.fields = append(m.fields, Field{k, ""})
	return m
}

// AddBase64 appends key k with b in standard base64, not escaped (nc, response).
func (m *Message) AddBase64(k string, b []byte) *Message {
	checkKey(k)
	m.fields = append(m.fields, Field{k, base64.StdEncoding.EncodeToString(b)})
	return m
}

// AddDict appends key k with the dictionary d.
func (m *Message) AddDict(k string, d Dict) *Message {
	checkKey(k)
	m.fields = append(m.fields, Field{k, d.Encode()})
	return m
}

// AddList appends key k with the list l.
func (m *Message) AddList(k string, l List) *Message {
	checkKey(k)
	m.fields = append(m.fields, Field{k, l.Encode()})
	return m
}

// Fields returns the message's fields in order, values in wire form. The
// slice is the message's own; do not modify it.
func (m *Message) Fields() []Field { return m.fields }

// Type returns the first key, which names the message ("" for an empty message).
func (m *Message) Type() string {
	if len(m.fields) == 0 {
		return ""
	}
	return m.fields[0].Key
}

// Is reports whether the message's first key is typ.
func (m *Message) Is(typ string) bool { return m.Type() == typ }

// TypeInt returns the first field's value as an integer (bm 1 → 1, lc 2 → 2).
func (m *Message) TypeInt() (int, error) {
	if len(m.fields) == 0 {
		return 0, &FieldError{Key: "", Err: ErrMissing}
	}
	return m.Int(m.fields[0].Key)
}

// Raw returns the wire form of the first field named k.
func (m *Message) Raw(k string) (string, bool) {
	for i := range m.fields {
		if m.fields[i].Key == k {
			return m.fields[i].Value, true
		}
	}
	return "", false
}

// Has reports whether the message has a field named k.
func (m *Message) Has(k string) bool {
	_, ok := m.Raw(k)
	return ok
}

func (m *Message) raw(k string) (string, error) {
	v, ok := m.Raw(k)
	if !ok {
		return "", &FieldError{Key: k, Err: ErrMissing}
	}
	return v, nil
}

// Str returns the unescaped string value of field k.
func (m *Message) Str(k string) (string, error) {
	v, err := m.raw(k)
	if err != nil {
		return "", err
	}
	return m.unescape(v), nil
}

// StrOr returns the unescaped value of field k, or def when k is absent.
func (m *Message) StrOr(k, def string) string {
	v, ok := m.Raw(k)
	if !ok {
		return def
	}
	return m.unescape(v)
}

// unescape is Unescape(v), v a value of m: into m.room when it has room
// for it, so that it costs no allocation of its own.
func (m *Message) unescape(v string) string {
	r := m.room
	if r == nil || r.Cap()-r.Len() < len(v) || strings.IndexByte(v, '/') < 0 {
		return Unescape(v)
	}
	n := r.Len()
	writeUnescaped(r, v)
	return r.String()[n:]
}

// Int returns field k as a decimal integer.
func (m *Message) Int(k string) (int, error) {
	v, err := m.raw(k)
	if err != nil {
		return 0, err
	}
	n, err := parseInt(v)
	if err != nil {
		return 0, &FieldError{Key: k, Value: v, Err: err}
	}
	return n, nil
}

// Dict returns field k parsed as a dictionary.
func (m *Message) Dict(k string) (Dict, error) {
	v, err := m.raw(k)
	if err != nil {
		return nil, err
	}
	d, err := ParseDict(v)
	if err != nil {
		return d, &FieldError{Key: k, Value: v, Err: err}
	}
	return d, nil
}

// List returns field k parsed as a |-separated list.
func (m *Message) List(k string) (List, error) {
	v, err := m.raw(k)
	if err != nil {
		return nil, err
	}
	return ParseList(v), nil
}

// Base64 returns field k decoded from base64 (the field is not unescaped).
func (m *Message) Base64(k string) ([]byte, error) {
	v, err := m.raw(k)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, &FieldError{Key: k, Value: v, Err: fmt.Errorf("%w: %v", ErrBadBase64, err)}
	}
	return b, nil
}

// Equal reports whether m and o have the same fields in the same order.
func (m *Message) Equal(o *Message) bool {
	if m == nil || o == nil {
		return m == o
	}
	if len(m.fields) != len(o.fields) {
		return false
	}
	for i := range m.fields {
		if m.fields[i] != o.fields[i] {
			return false
		}
	}
	return true
}

// secretKeys are fields whose values must never reach a log.
var secretKeys = map[string]bool{
	"nc": true, "response": true, "sesskey": true, "password": true, "proof": true,
}

// textFree are the buddy message types whose msg holds no IM text:
// presence, status and profile data, and the empty msg of an add notice.
var textFree = map[int]bool{
	BMAddNotify: true, BMStatus: true, BMProfile: true, BMStatusMood: true, BMClientInfo: true,
}

// String renders the message for debug logs, with nonces, login responses,
// session keys and proofs replaced by "***", and the msg of a buddy message
// that may be an IM (of a type not in textFree, or one that does not read)
// by its size, "<N bytes>": operators read the log, and the users whose IMs
// pass did not write for it. A typing marker or a zap is no text, and is
// shown.
func (m *Message) String() string {
	hideMsg := false
	if m.Is("bm") {
		typ, err := m.TypeInt()
		hideMsg = err != nil || !textFree[typ]
	}
	var b strings.Builder
	for _, f := range m.fields {
		b.WriteByte('\\')
		b.WriteString(f.Key)
		b.WriteByte('\\')
		switch {
		case secretKeys[f.Key] && f.Value != "":
			b.WriteString("***")
		case hideMsg && f.Key == "msg" && markup.Classify(f.Value) == markup.KindText:
			fmt.Fprintf(&b, "<%d bytes>", len(f.Value))
		default:
			b.WriteString(f.Value)
		}
	}
	b.WriteString(`\final\`)
	return b.String()
}

// Errors reported by the codec. They are wrapped in *FieldError or
// *SyntaxError; test for them with errors.Is.
var (
	ErrMissing     = errors.New("msim: missing field")
	ErrBadNumber   = errors.New("msim: number out of range")
	ErrBadBase64   = errors.New("msim: bad base64")
	ErrBadDict     = errors.New("msim: dictionary item without '='")
	ErrMalformed   = errors.New("msim: malformed message")
	ErrTooLarge    = errors.New("msim: message too large")
	ErrEmptyKey    = errors.New("msim: empty key")
	ErrNoBackslash = errors.New("msim: message does not start with a backslash")
)

// FieldError reports a missing or malformed field.
type FieldError struct {
	Key   string
	Value string // wire form, for context; never a secret field's value
	Err   error
}

func (e *FieldError) Error() string {
	if errors.Is(e.Err, ErrMissing) {
		return fmt.Sprintf("msim: field %q: missing", e.Key)
	}
	v := e.Value
	if secretKeys[e.Key] {
		v = "***"
	} else if len(v) > 40 {
		v = v[:40] + "…"
	}
	return fmt.Sprintf("msim: field %q (%q): %v", e.Key, v, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// parseInt reads s as Pidgin's atoi does (the spec's "Integers"): blanks,
// an optional sign, then the digits up to the first other byte; a value
// without digits, not a number at all, reads as 0. Only a number too large
// for an int is an error.
func parseInt(s string) (int, error) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	const maxInt = int(^uint(0) >> 1)
	n := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := int(s[i] - '0')
		if n > (maxInt-d)/10 {
			return 0, ErrBadNumber
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, nil
}
