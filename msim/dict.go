package msim

import (
	"strconv"
	"strings"
)

// Pair is one item of a Dict, its value unescaped.
type Pair struct {
	Key   string
	Value string
}

// Dict is a body dictionary: key=value items joined by 0x1C, in order. Keys
// may repeat (list-like replies start every record with the same key).
type Dict []Pair

const dictSep = '\x1c'

// ParseDict parses the wire form of a dictionary (values still escaped).
// An item without '=' ends parsing, as in the reference client: the items
// before it are returned together with ErrBadDict.
func ParseDict(raw string) (Dict, error) {
	if raw == "" {
		return Dict{}, nil
	}
	d := make(Dict, 0, strings.Count(raw, "\x1c")+1)
	for raw != "" {
		item, rest, _ := strings.Cut(raw, "\x1c")
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return d, ErrBadDict
		}
		d = append(d, Pair{k, Unescape(v)})
		raw = rest
	}
	return d, nil
}

// Encode returns the wire form of d. Keys and values cannot carry the
// structural bytes: 0x1C anywhere and '=' in a key are replaced by a space,
// so text from a user can never split or merge items.
func (d Dict) Encode() string {
	return string(d.AppendTo(make([]byte, 0, d.wireSize())))
}

// wireSize is about the size of d's wire form, with room for some
// escapes.
func (d Dict) wireSize() int {
	n := 0
	for _, p := range d {
		n += len(p.Key) + len(p.Value) + 2
	}
	return n + n/8
}

// AppendTo appends the wire form of d (as Encode returns it) to b.
func (d Dict) AppendTo(b []byte) []byte {
	for i, p := range d {
		if i > 0 {
			b = append(b, dictSep)
		}
		b = appendDictText(b, p.Key, true)
		b = append(b, '=')
		b = appendDictText(b, p.Value, false)
	}
	return b
}

// dictSpecial marks the bytes appendDictText must look at: what Escape
// changes, and what it scrubs (0x1C; '=' in keys).
var dictSpecial = [256]bool{'/': true, '\\': true, dictSep: true, '=': true}

// appendDictText appends s escaped (as Escape), and for a key '=' too,
// replaced by a space; 0x1C always is.
func appendDictText(b []byte, s string, key bool) []byte {
	i := 0
	for i < len(s) && !dictSpecial[s[i]] {
		i++
	}
	if i == len(s) { // the common case: nothing to change
		return append(b, s...)
	}
	if strings.IndexByte(s[i:], dictSep) >= 0 || key && strings.IndexByte(s[i:], '=') >= 0 {
		// Rare: the general (slower) path.
		bad := "\x1c"
		if key {
			bad = "\x1c=\\"
		}
		return append(b, scrub(Escape(s), bad)...)
	}
	return appendEscaped(append(b, s[:i]...), s[i:])
}

// scrub replaces every byte of bad in s by a space.
func scrub(s, bad string) string {
	if !strings.ContainsAny(s, bad) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(bad, r) {
			return ' '
		}
		return r
	}, s)
}

// Get returns the value of the first item named k.
func (d Dict) Get(k string) (string, bool) {
	for _, p := range d {
		if p.Key == k {
			return p.Value, true
		}
	}
	return "", false
}

// Str returns the value of k, or "" when absent.
func (d Dict) Str(k string) string {
	v, _ := d.Get(k)
	return v
}

// Int returns item k as a decimal integer.
func (d Dict) Int(k string) (int, error) {
	v, ok := d.Get(k)
	if !ok {
		return 0, &FieldError{Key: k, Err: ErrMissing}
	}
	n, err := parseInt(v)
	if err != nil {
		return 0, &FieldError{Key: k, Value: v, Err: err}
	}
	return n, nil
}

// Bool reads a True/False or On/Off item, case-insensitively; an absent or
// unrecognised value reads as def.
func (d Dict) Bool(k string, def bool) bool {
	switch strings.ToLower(d.Str(k)) {
	case "true", "on", "1":
		return true
	case "false", "off", "0":
		return false
	}
	return def
}

// Set replaces the first item named k, or appends one.
func (d Dict) Set(k, v string) Dict {
	for i := range d {
		if d[i].Key == k {
			d[i].Value = v
			return d
		}
	}
	return append(d, Pair{k, v})
}

// SetInt is Set with a decimal value.
func (d Dict) SetInt(k string, v int) Dict { return d.Set(k, strconv.Itoa(v)) }

// Records splits a list-like dictionary into records, each starting at an
// occurrence of first (ContactID, GroupID, …). Items before the first
// occurrence are dropped. A first key repeated at once with the same value
// (the 2007 server's "ContactID=6221^ContactID=6221^…") starts one record.
// The records share d's items (each is capped, so appending to one copies
// it rather than overwriting the next).
func (d Dict) Records(first string) []Dict {
	n := 0
	for _, p := range d {
		if p.Key == first {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Dict, 0, n)
	start := -1 // where the current record starts in d
	for i, p := range d {
		if p.Key != first {
			continue
		}
		if start >= 0 && i == start+1 && d[start] == p {
			start = i // the same item again: the record starts at the repeat
			continue
		}
		if start >= 0 {
			out = append(out, d[start:i:i])
		}
		start = i
	}
	return append(out, d[start:len(d):len(d)])
}

// eachRecord calls fn with each record of a list-like dictionary whose wire
// form (values still escaped) comes in parts, the records as
// Dict.Records splits the parts' concatenated ParseDict: an item without
// '=' ends its part. It builds no dictionary of the whole: fn's Dict holds
// one record, is reused for the next, and its values are as on the wire
// (still escaped: fn unescapes what it uses) and share the parts' memory,
// so fn copies what it keeps.
func eachRecord(parts []string, first string, fn func(Dict)) {
	var rec Dict
	for _, raw := range parts {
		for raw != "" {
			item, rest, _ := strings.Cut(raw, "\x1c")
			raw = rest
			k, v, ok := strings.Cut(item, "=")
			if !ok {
				break
			}
			if k != first {
				if len(rec) > 0 { // items before the first record are dropped
					rec = append(rec, Pair{k, v})
				}
				continue
			}
			p := Pair{k, v}
			if len(rec) == 1 && Unescape(rec[0].Value) == Unescape(v) {
				continue // the same item again: one record
			}
			if len(rec) > 0 {
				fn(rec)
				clear(rec)
				rec = rec[:0]
			}
			rec = append(rec, p)
		}
	}
	if len(rec) > 0 {
		fn(rec)
	}
}

// List is a '|'-separated list, items unescaped.
type List []string

// ParseList parses the wire form of a list.
func ParseList(raw string) List {
	parts := strings.Split(raw, "|")
	for i, p := range parts {
		parts[i] = Unescape(p)
	}
	return List(parts)
}

// BrokenBar replaces '|' inside list items, which the protocol cannot carry.
const BrokenBar = "¦"

// Encode returns the wire form of l. A '|' inside an item cannot be
// represented (the protocol has no escape for it), so it is sent as BrokenBar
// rather than let it shift every later item.
func (l List) Encode() string {
	var b strings.Builder
	for i, it := range l {
		if i > 0 {
			b.WriteByte('|')
		}
		it = Escape(it)
		if strings.IndexByte(it, '|') >= 0 {
			it = strings.ReplaceAll(it, "|", BrokenBar)
		}
		b.WriteString(it)
	}
	return b.String()
}
