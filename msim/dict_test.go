package msim

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// referenceEncode is Dict.Encode as it was first written (escape, then
// scrub each key and value on its own): the wire form must stay the same.
func referenceEncode(d Dict) string {
	var b strings.Builder
	for i, p := range d {
		if i > 0 {
			b.WriteByte(dictSep)
		}
		b.WriteString(scrub(Escape(p.Key), "\x1c=\\"))
		b.WriteByte('=')
		b.WriteString(scrub(Escape(p.Value), "\x1c"))
	}
	return b.String()
}

func TestDictEncodeSameBytes(t *testing.T) {
	tests := []struct {
		name string
		d    Dict
	}{
		{"empty", Dict{}},
		{"plain", Dict{{"ContactID", "6221"}, {"GroupName", "IM Friends"}}},
		{"escapes", Dict{{"k/\\", "a/b\\c//"}, {"x", `\`}}},
		{"separator in value", Dict{{"Headline", "a\x1cb"}}},
		{"separator and equals in key", Dict{{"a=b\x1c", "v=w"}}},
		{"invalid UTF-8 beside a separator", Dict{{"k", "\xff\x1c/\xfe"}, {"\xc3=", "\xc3"}}},
		{"invalid UTF-8 alone", Dict{{"k\xff", "\xff/"}}},
		{"empty key and value", Dict{{"", ""}, {"", "x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := tc.d.Encode(), referenceEncode(tc.d); got != want {
				t.Errorf("Encode: got %q, want %q", got, want)
			}
		})
	}
	// Random text over the bytes that matter.
	alphabet := []byte{'a', 'Z', '/', '\\', '=', '\x1c', '1', '2', ' ', '\xff', '\xc3', '\xa9', '|', '^'}
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 5000 {
		d := make(Dict, r.IntN(4))
		for i := range d {
			d[i] = Pair{word(), word()}
		}
		if got, want := d.Encode(), referenceEncode(d); got != want {
			t.Fatalf("Encode(%q): got %q, want %q", d, got, want)
		}
	}
}

func TestRecords(t *testing.T) {
	tests := []struct {
		name  string
		d     Dict
		first string
		want  []Dict
	}{
		{"none", Dict{{"a", "1"}}, "GroupID", nil},
		{"empty", Dict{}, "GroupID", nil},
		{"leading items dropped", Dict{{"x", "0"}, {"GroupID", "1"}, {"GroupName", "A"}, {"GroupID", "2"}, {"GroupName", "B"}}, "GroupID",
			[]Dict{{{"GroupID", "1"}, {"GroupName", "A"}}, {{"GroupID", "2"}, {"GroupName", "B"}}}},
		{"repeated first key", Dict{{"ContactID", "6221"}, {"ContactID", "6221"}, {"GroupName", "IM Friends"}, {"ContactID", "7"}, {"ContactID", "8"}}, "ContactID",
			[]Dict{{{"ContactID", "6221"}, {"GroupName", "IM Friends"}}, {{"ContactID", "7"}}, {{"ContactID", "8"}}}},
		{"repeated three times", Dict{{"ContactID", "5"}, {"ContactID", "5"}, {"ContactID", "5"}, {"N", "x"}}, "ContactID",
			[]Dict{{{"ContactID", "5"}, {"N", "x"}}}},
		{"same first key, different value", Dict{{"ContactID", "5"}, {"ContactID", "6"}}, "ContactID",
			[]Dict{{{"ContactID", "5"}}, {{"ContactID", "6"}}}},
		{"equal record later is its own", Dict{{"ContactID", "5"}, {"N", "x"}, {"ContactID", "5"}}, "ContactID",
			[]Dict{{{"ContactID", "5"}, {"N", "x"}}, {{"ContactID", "5"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.d.Records(tc.first)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if len(got[i]) != len(tc.want[i]) {
					t.Fatalf("record %d: got %q, want %q", i, got[i], tc.want[i])
				}
				for j := range got[i] {
					if got[i][j] != tc.want[i][j] {
						t.Errorf("record %d item %d: got %q, want %q", i, j, got[i][j], tc.want[i][j])
					}
				}
			}
		})
	}
}

// TestRecordsAppendDoesNotOverwrite: records share the dictionary's items,
// yet appending to one never changes the next one or the dictionary.
func TestRecordsAppendDoesNotOverwrite(t *testing.T) {
	d := Dict{{"GroupID", "1"}, {"GroupName", "A"}, {"GroupID", "2"}, {"GroupName", "B"}}
	recs := d.Records("GroupID")
	recs[0] = append(recs[0], Pair{"Extra", "x"})
	if got := recs[1][0]; got != (Pair{"GroupID", "2"}) {
		t.Errorf("next record's first item: got %q, want GroupID=2", got)
	}
	if got := d[2]; got != (Pair{"GroupID", "2"}) {
		t.Errorf("dictionary's item 2: got %q, want GroupID=2", got)
	}
}

// contactListBody is the body of a contact-list reply with n records.
func contactListBody(n int) Dict {
	var d Dict
	for i := range n {
		id := strconv.Itoa(1000000 + i)
		d = append(d, Pair{"ContactID", id}, Pair{"GroupName", "IM Friends"}, Pair{"Position", strconv.Itoa(i + 1)},
			Pair{"Visibility", "1"}, Pair{"NickName", ""}, Pair{"NameSelect", "0"}, Pair{"UserName", "user" + id},
			Pair{"DisplayName", "User " + id}, Pair{"ImageURL", "http://x.myspace.com/images/no_pic.gif"}, Pair{"Headline", ""})
	}
	return d
}

func BenchmarkDictEncodeContactList(b *testing.B) {
	d := contactListBody(100)
	b.ReportAllocs()
	for b.Loop() {
		_ = d.Encode()
	}
}

func BenchmarkParseContactList(b *testing.B) {
	wire := contactListBody(100).Encode()
	b.ReportAllocs()
	for b.Loop() {
		d, err := ParseDict(wire)
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Records("ContactID")) != 100 {
			b.Fatal("records")
		}
	}
}

// TestDecodeLargeAllocs: a message larger than the buffer a Decoder keeps
// (a contact list) is gathered in a lent buffer, so it costs about its
// string and its message, not a buffer grown anew for each one.
func TestDecodeLargeAllocs(t *testing.T) {
	p := &Persist{Cmd: CmdGet | CmdReply, DSN: 0, LID: 1, UID: 1000000, RID: 3, Body: contactListBody(100)}
	one := string(Encode(p.Reply()))
	if len(one) <= keptBuf {
		t.Fatalf("the test message has %d bytes, want over %d", len(one), keptBuf)
	}
	d := NewDecoder(strings.NewReader(strings.Repeat(one, 300)))
	var err error
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(100, func() {
		var m *Message
		if m, err = d.Decode(); err == nil && m.Type() != "persistr" {
			err = errors.New("wrong type " + m.Type())
		}
	})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if raceEnabled {
		t.Log("race detector on: sync.Pool drops buffers, allocations not checked")
	} else if allocs > 4 {
		t.Errorf("Decode: got %.1f allocations per message, want at most 4", allocs)
	}
	if per := float64(after.TotalAlloc-before.TotalAlloc) / 101; !raceEnabled && per > 1.5*float64(len(one)) {
		t.Errorf("Decode: got %.0f bytes allocated per message of %d bytes, want at most 1.5 times its size", per, len(one))
	}
	// The message is whole.
	m, err := NewDecoder(strings.NewReader(one)).Decode()
	if err != nil {
		t.Fatal(err)
	}
	if got := Encode(m); string(got) != one {
		t.Errorf("re-encoded: got %d bytes, want the %d sent", len(got), len(one))
	}
}

// TestParsePresenceAllocs: a server's presence list, with its extra items,
// is read with one allocation.
func TestParsePresenceAllocs(t *testing.T) {
	l := ParseList("|s|1|ss|at work|ls||ip|0|p|0|ct|1")
	var p Presence
	var err error
	allocs := testing.AllocsPerRun(100, func() { p, err = ParsePresence(l) })
	if err != nil || p.Status != StatusOnline || p.Text != "at work" || len(p.Extra) != 3 || p.Extra[2] != (Pair{"ct", "1"}) {
		t.Fatalf("got %+v, %v", p, err)
	}
	if allocs > 1 {
		t.Errorf("got %.1f allocations, want at most 1", allocs)
	}
}

// TestAppendReply: a reply written in place is what Reply encodes.
func TestAppendReply(t *testing.T) {
	tests := []struct {
		name string
		p    Persist
	}{
		{"contact list", Persist{Cmd: CmdGet | CmdReply, DSN: 0, LID: 1, UID: 1000000, RID: 7, Body: contactListBody(3)}},
		{"empty body", Persist{Cmd: CmdGet | CmdReply, DSN: 7, LID: 18, UID: 5, RID: 12}},
		{"escapes and separators", Persist{Cmd: CmdPut | CmdError, DSN: 1, LID: 10, UID: 1, RID: 1,
			Body: Dict{{"ErrorMessage", `a/b\c` + "\x1c"}, {"k=\\", "v=/"}}}},
		{"negative numbers", Persist{Cmd: -1, DSN: -2, LID: -3, UID: 0, RID: -4, Body: Dict{{"x", ""}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := string(Encode(tc.p.Reply()))
			if got := string(tc.p.AppendReply([]byte("x"))); got != "x"+want {
				t.Errorf("got %q, want %q", got, "x"+want)
			}
		})
	}
}

// recordsByDict is what eachRecord must match: each part parsed as
// ParseDict parses it (up to a bad item), the parts joined, then split by
// Records.
func recordsByDict(parts []string, first string) []Dict {
	var all Dict
	for _, p := range parts {
		d, _ := ParseDict(p)
		all = append(all, d...)
	}
	return all.Records(first)
}

// recordsByEach collects eachRecord's records, copied (fn's Dict is reused).
func recordsByEach(parts []string, first string) []Dict {
	var out []Dict
	eachRecord(parts, first, func(rec Dict) {
		d := make(Dict, len(rec))
		for i, p := range rec {
			d[i] = Pair{p.Key, Unescape(p.Value)} // eachRecord's values are escaped
		}
		out = append(out, d)
	})
	return out
}

func TestEachRecord(t *testing.T) {
	tests := []struct {
		name  string
		parts []string
		want  []Dict
	}{
		{"none", nil, nil},
		{"empty part", []string{""}, nil},
		{"two records", []string{"ContactID=1\x1cUserName=a/1b\x1cContactID=2\x1cUserName=c"},
			[]Dict{{{"ContactID", "1"}, {"UserName", "a/b"}}, {{"ContactID", "2"}, {"UserName", "c"}}}},
		{"items before the first record dropped", []string{"x=1\x1cContactID=1\x1cy=2"},
			[]Dict{{{"ContactID", "1"}, {"y", "2"}}}},
		{"repeated first item is one record", []string{"ContactID=6221\x1cContactID=6221\x1cy=2\x1cContactID=7"},
			[]Dict{{{"ContactID", "6221"}, {"y", "2"}}, {{"ContactID", "7"}}}},
		{"same first value later starts a record", []string{"ContactID=1\x1cy=2\x1cContactID=1"},
			[]Dict{{{"ContactID", "1"}, {"y", "2"}}, {{"ContactID", "1"}}}},
		{"a record across parts", []string{"ContactID=1\x1cy=2", "z=3\x1cContactID=2"},
			[]Dict{{{"ContactID", "1"}, {"y", "2"}, {"z", "3"}}, {{"ContactID", "2"}}}},
		{"a bad item ends its part only", []string{"ContactID=1\x1cbad\x1cy=2", "z=3"},
			[]Dict{{{"ContactID", "1"}, {"z", "3"}}}},
		{"empty item ends its part", []string{"ContactID=1\x1c\x1cy=2"},
			[]Dict{{{"ContactID", "1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recordsByEach(tt.parts, "ContactID")
			if !equalRecords(got, tt.want) {
				t.Errorf("eachRecord got %q, want %q", got, tt.want)
			}
			if ref := recordsByDict(tt.parts, "ContactID"); !equalRecords(ref, tt.want) {
				t.Errorf("Records of ParseDict got %q, want %q", ref, tt.want)
			}
		})
	}
}

func equalRecords(a, b []Dict) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

// eachRecord splits any parts as Records splits their parsed dictionary.
func FuzzEachRecord(f *testing.F) {
	f.Add("ContactID=1\x1cUserName=a/1b\x1cContactID=1\x1cx=2", "y=3\x1cContactID=2", "ContactID")
	f.Add("a=1\x1cbad\x1cContactID=3", "", "ContactID")
	f.Add("GroupID=1\x1cGroupName=x", "GroupID=1\x1cGroupID=1", "GroupID")
	f.Fuzz(func(t *testing.T, p1, p2, first string) {
		parts := []string{p1, p2}
		got, want := recordsByEach(parts, first), recordsByDict(parts, first)
		if !equalRecords(got, want) {
			t.Errorf("eachRecord(%q, %q) got %q, want %q", parts, first, got, want)
		}
	})
}

// FuzzParseDict: a body dictionary never panics the parser, and one that
// parses encodes back to the same items (keys with '/' aside: the spec
// does not escape keys, which the encoder does to keep them whole).
func FuzzParseDict(f *testing.F) {
	f.Add("UserID=6221\x1cImageURL=http:/1/1x.myspace.com/1no_pic.gif\x1cUserName=tom")
	f.Add("\u0080=\x1cErrorMessage=Request time elapsed configured has passed.")
	f.Add("ContactID=6221\x1cContactID=6221\x1cHeadline=:-)\x1cGroupName=IM Friends")
	f.Add("a=b=c\x1cno equals\x1cd=e")
	f.Add("k=/2final/2 /11 /3 /")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := ParseDict(raw)
		if err != nil && !errors.Is(err, ErrBadDict) {
			t.Fatalf("ParseDict(%q): error %v, want nil or ErrBadDict", raw, err)
		}
		for _, p := range d {
			if strings.ContainsAny(p.Key, `/\`) {
				return
			}
		}
		again, err := ParseDict(d.Encode())
		if err != nil || len(again) != len(d) {
			t.Fatalf("ParseDict(%q) = %q; its Encode parses to %q, %v", raw, d, again, err)
		}
		for i := range d {
			if again[i] != d[i] {
				t.Fatalf("ParseDict(%q) item %d = %q; after Encode %q", raw, i, d[i], again[i])
			}
		}
	})
}

// FuzzParsePersist: a persist message never panics ParsePersist, and one
// that parses, written back as a reply, parses to the same numbers.
func FuzzParsePersist(f *testing.F) {
	for _, c := range loadCapture(f) {
		if c.Complete && strings.HasPrefix(c.Wire, `\persist`) {
			f.Add([]byte(c.Wire))
		}
	}
	f.Add([]byte(`\persistr\\cmd\99999999999999999999\dsn\-1\lid\x\rid\1\mtf\1\body\a\final\`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		p, err := ParsePersist(m)
		if err != nil {
			return
		}
		again, err := ParsePersist(p.Reply())
		if err != nil {
			t.Fatalf("ParsePersist(%q) = %+v; its Reply does not parse: %v", b, p, err)
		}
		if again.Cmd != p.Cmd || again.DSN != p.DSN || again.LID != p.LID || again.RID != p.RID || again.UID != p.UID {
			t.Fatalf("ParsePersist(%q) = %+v; after Reply %+v", b, p, again)
		}
	})
}
