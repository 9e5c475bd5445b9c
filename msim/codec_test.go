package msim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim/internal/capture"
	"github.com/msimircd/msimircd/msim/markup"
)

func loadCapture(t testing.TB) []capture.Message {
	t.Helper()
	msgs, err := capture.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 85 {
		t.Fatalf("capture has %d messages, want 85", len(msgs))
	}
	return msgs
}

func TestCaptureFixtures(t *testing.T) {
	complete := 0
	for _, c := range loadCapture(t) {
		if !c.Complete {
			continue
		}
		complete++
		m, err := ParseMessage([]byte(c.Wire))
		if err != nil {
			t.Errorf("n %d: decode: %v", c.N, err)
			continue
		}
		got := m.Fields()
		if len(got) != len(c.Fields) {
			t.Errorf("n %d: got %d fields, want %d", c.N, len(got), len(c.Fields))
			continue
		}
		for i, f := range c.Fields {
			if got[i].Key != f[0] || got[i].Value != f[1] {
				t.Errorf("n %d field %d: got %q=%q, want %q=%q", c.N, i, got[i].Key, got[i].Value, f[0], f[1])
			}
		}
		if enc := Encode(m); string(enc) != c.Wire {
			t.Errorf("n %d: re-encoded to %q, want %q", c.N, enc, c.Wire)
		}
	}
	if complete != 65 {
		t.Errorf("got %d complete messages, want 65", complete)
	}
}

func TestCaptureTruncatedAreErrors(t *testing.T) {
	for _, c := range loadCapture(t) {
		if c.Complete {
			continue
		}
		_, err := ParseMessage([]byte(c.Wire))
		if err == nil {
			t.Errorf("n %d: truncated message decoded without error", c.N)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("n %d: got %T %v, want *SyntaxError", c.N, err, err)
		}
	}
}

// TestCaptureStream decodes each session's server→client traffic as one
// stream, the way a client reads it.
func TestCaptureStream(t *testing.T) {
	var stream bytes.Buffer
	var want int
	for _, c := range loadCapture(t) {
		if c.Complete && c.Dir == "server" && c.N > 2 {
			stream.WriteString(c.Wire)
			want++
		}
	}
	d := NewDecoder(&stream)
	got := 0
	for {
		_, err := d.Decode()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("message %d: %v", got, err)
		}
		got++
	}
	if got != want {
		t.Errorf("got %d messages, want %d", got, want)
	}
}

func TestCaptureTypedFields(t *testing.T) {
	msgs := loadCapture(t)
	parse := func(n int) *Message {
		m, err := ParseMessage([]byte(msgs[n].Wire))
		if err != nil {
			t.Fatalf("n %d: %v", n, err)
		}
		return m
	}
	// n 5: login success.
	m := parse(5)
	if k, _ := m.TypeInt(); !m.Is("lc") || k != 2 {
		t.Errorf("n 5: got %s %d, want lc 2", m.Type(), k)
	}
	if v, _ := m.Int("sesskey"); v != 263958216 {
		t.Errorf("sesskey: got %d", v)
	}
	// n 10: own profile, with an escaped URL.
	p, err := ParsePersist(parse(10))
	if err != nil {
		t.Fatal(err)
	}
	if p.Cmd != 257 || p.Kind() != PersistOwnProfile || p.RID != 29 || p.UID != 3656574 {
		t.Errorf("n 10: got %+v", p)
	}
	// "/1" is an escaped '/', so the path's "/100928" reads "/00928".
	if got := p.Body.Str("ImageURL"); got != "http://myspace-513.vo.llnwd.net/00928/31/51/928941513_m.jpg" {
		t.Errorf("ImageURL: got %q", got)
	}
	if n, _ := p.Body.Int("TotalFriends"); n != 69 {
		t.Errorf("TotalFriends: got %d", n)
	}
	// n 35: presence.
	m = parse(35)
	l, err := m.List("msg")
	if err != nil {
		t.Fatal(err)
	}
	pr, err := ParsePresence(l)
	if err != nil || pr.Status != StatusOnline || pr.Text != ":-)" {
		t.Errorf("n 35: got %+v, %v", pr, err)
	}
	if enc := pr.List().Encode(); enc != "|s|1|ss|:-)|ls||ip|0|p|0" {
		t.Errorf("presence re-encoded to %q", enc)
	}
	// n 53: offline presence in the 2007 server's short form.
	pr, _ = ParsePresence(mustList(t, parse(53), "msg"))
	if pr.Status != StatusOffline || pr.List().Encode() != "|s|0|ss|Offline" {
		t.Errorf("n 53: got %+v", pr)
	}
	// n 2: fatal parse error.
	m = parse(2)
	if code, _ := m.Int("err"); code != ErrCodeParse || !m.Has("fatal") {
		t.Errorf("n 2: got %v", m)
	}
	// n 44: error reply with a junk key (bytes C2 80).
	p, _ = ParsePersist(parse(44))
	if !p.IsError() || p.Op() != CmdGet || p.ErrorMessage() != "Request time elapsed configured has passed." {
		t.Errorf("n 44: got %+v", p)
	}
	if v, ok := p.Body.Get("\u0080"); !ok || v != "" {
		t.Errorf("n 44 junk key: got %q %v", v, ok)
	}
	// n 31: block list edit.
	if l := mustList(t, parse(31), "idlist"); strings.Join(l, ",") != "b-,6221,a+,6221" {
		t.Errorf("n 31: got %q", l)
	}
	// n 3: base64 response, not unescaped.
	r, err := parse(3).Base64("response")
	if err != nil || len(r) != 74 {
		t.Errorf("n 3 response: got %d bytes, %v; want 74", len(r), err)
	}
}

func mustList(t *testing.T, m *Message, k string) List {
	t.Helper()
	l, err := m.List(k)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ plain, wire string }{
		{"hello/world\\hello/world", "hello/1world/2hello/1world"},
		{"a/1b", "a/11b"},
		{"C:\\dir/x", "C:/2dir/1x"},
		{"/2", "/12"},
		{"", ""},
		{"plain", "plain"},
		{`\final\`, "/2final/2"},
	} {
		if got := Escape(tc.plain); got != tc.wire {
			t.Errorf("Escape(%q): got %q, want %q", tc.plain, got, tc.wire)
		}
		if got := Unescape(tc.wire); got != tc.plain {
			t.Errorf("Unescape(%q): got %q, want %q", tc.wire, got, tc.plain)
		}
	}
	// Unknown pairs and a trailing slash are kept, as the spec says.
	for in, want := range map[string]string{"a/3b": "a/3b", "x/": "x/", "//1": "//", "/": "/"} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q): got %q, want %q", in, got, want)
		}
	}
}

// TestSpecEncoding checks section 3 of the spec's vectors.
func TestSpecEncoding(t *testing.T) {
	const k = 263958216
	for _, tc := range []struct {
		name string
		m    *Message
		want string
	}{
		{"im", NewInt("bm", 1).AddInt("sesskey", k).AddInt("t", 6221).AddInt("cv", 697).Add("msg", "<p><f f='Times' h='16'>a/b\\c</f></p>"),
			`\bm\1\sesskey\263958216\t\6221\cv\697\msg\<p><f f='Times' h='16'>a/1b/2c</1f></1p>\final\`},
		{"typing", NewInt("bm", 121).AddInt("sesskey", k).AddInt("t", 6221).AddInt("cv", 697).Add("msg", "%typing%"),
			`\bm\121\sesskey\263958216\t\6221\cv\697\msg\%typing%\final\`},
		{"status", NewInt("status", 5).AddInt("sesskey", k).Add("statstring", "out to lunch / back 1pm").Add("locstring", ""),
			`\status\5\sesskey\263958216\statstring\out to lunch /1 back 1pm\locstring\\final\`},
		{"lookup", (&Persist{Cmd: 1, DSN: 5, UID: 3656574, LID: 7, RID: 33, Body: Dict{{"UserName", "jeff"}}}).Request(k),
			`\persist\1\sesskey\263958216\cmd\1\dsn\5\uid\3656574\lid\7\rid\33\body\UserName=jeff\final\`},
		{"contact_put", (&Persist{Cmd: 514, DSN: 0, UID: 3656574, LID: 9, RID: 7, Body: Dict{
			{"ContactID", "6221"}, {"GroupName", "IM Friends"}, {"Position", "1000"}, {"Visibility", "1"}, {"NickName", ""}, {"NameSelect", "0"}}}).Request(k),
			"\\persist\\1\\sesskey\\263958216\\cmd\\514\\dsn\\0\\uid\\3656574\\lid\\9\\rid\\7\\body\\ContactID=6221\x1cGroupName=IM Friends\x1cPosition=1000\x1cVisibility=1\x1cNickName=\x1cNameSelect=0\\final\\"},
		{"addbuddy", New("addbuddy", "").AddInt("sesskey", k).AddInt("newprofileid", 6221).Add("reason", ""),
			`\addbuddy\\sesskey\263958216\newprofileid\6221\reason\\final\`},
		{"blocklist", New("blocklist", "").AddInt("sesskey", k).AddList("idlist", List{"a+", "6221", "b-", "6221"}),
			`\blocklist\\sesskey\263958216\idlist\a+|6221|b-|6221\final\`},
		{"logout", New("logout", "").AddInt("sesskey", k), `\logout\\sesskey\263958216\final\`},
		{"error", ErrorMessage(260, true, "The password provided is incorrect."),
			`\error\\err\260\fatal\\errmsg\The password provided is incorrect.\final\`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Encode(tc.m)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			back, err := ParseMessage([]byte(tc.want))
			if err != nil || !back.Equal(tc.m) {
				t.Errorf("decode: got %v, %v", back, err)
			}
		})
	}
}

// TestSpecStream checks section 4 of the spec's vectors: splitting a stream.
func TestSpecStream(t *testing.T) {
	stream := `\ka\\final\\bm\100\f\6221\msg\|s|1|ss|:-)|ls||ip|0|p|0\final\` +
		"\\persistr\\\\cmd\\257\\dsn\\4\\uid\\3656574\\lid\\3\\rid\\9\\body\\UserID=6221\x1cImageURL=http:/1/1x.myspace.com/1no_pic.gif\x1cUserName=tom\\final\\" +
		`\error\\err\260\fatal\\errmsg\The password provided is incorrect.\final\` + `\bm\1\f\62`
	d := NewDecoder(strings.NewReader(stream))
	want := []string{"ka", "bm", "persistr", "error"}
	var msgs []*Message
	for range want {
		m, err := d.Decode()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for i, w := range want {
		if msgs[i].Type() != w {
			t.Errorf("message %d: got %q, want %q", i, msgs[i].Type(), w)
		}
	}
	body, _ := msgs[2].Dict("body")
	if got := body.Str("ImageURL"); got != "http://x.myspace.com/no_pic.gif" {
		t.Errorf("ImageURL: got %q", got)
	}
	if _, err := d.Decode(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("leftover: got %v, want unexpected EOF", err)
	}
}

// TestFramingInjection proves that no user text can break the framing.
func TestFramingInjection(t *testing.T) {
	for _, text := range []string{
		`\`, `/`, `\final\`, "\x1c", "|", "final", `a\final\b`, `\final\\bm\1\f\1\msg\x\final\`,
		"/1/2", "k=v\x1cx=y", "a|b|c", "", "=", "final\\",
	} {
		m := NewInt("bm", 1).AddInt("t", 6221).Add("msg", text).
			AddDict("body", Dict{{"UserName", text}, {"Other", "x"}}).
			AddList("list", List{"", "s", "1", "ss", text, "ls", ""}).
			Add("statstring", text).Add("locstring", "")
		wire := Encode(m)
		d := NewDecoder(bytes.NewReader(append(wire, Encode(New("ka", ""))...)))
		got, err := d.Decode()
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if s, _ := got.Str("msg"); s != text {
			t.Errorf("%q: msg came back as %q", text, s)
		}
		if s, _ := got.Str("statstring"); s != text {
			t.Errorf("%q: statstring came back as %q", text, s)
		}
		body, err := got.Dict("body")
		if err != nil || len(body) != 2 || body[1] != (Pair{"Other", "x"}) {
			t.Errorf("%q: body came back as %q, %v", text, body, err)
		}
		if v := body.Str("UserName"); v != strings.ReplaceAll(text, "\x1c", " ") {
			t.Errorf("%q: dict value came back as %q", text, v)
		}
		l, _ := got.List("list")
		if len(l) != 7 || l[5] != "ls" {
			t.Errorf("%q: list came back as %q", text, l)
		} else if l[4] != strings.ReplaceAll(text, "|", BrokenBar) {
			t.Errorf("%q: list item came back as %q", text, l[4])
		}
		if next, err := d.Decode(); err != nil || !next.Is("ka") {
			t.Errorf("%q: next message: %v, %v", text, next, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"empty key", `\\x\final\`, ErrEmptyKey},
		{"empty message", `\final\`, ErrMalformed},
		{"no backslash", "GET / HTTP/1.0\r\n", ErrNoBackslash},
		{"truncated", `\bm\1\f\62`, io.ErrUnexpectedEOF},
		{"truncated marker", `\bm\1\fina`, io.ErrUnexpectedEOF},
		{"empty key later", `\a\b\\c\final\`, ErrEmptyKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDecoder(strings.NewReader(tc.in)).Decode()
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeTooLarge(t *testing.T) {
	big := `\bm\1\msg\` + strings.Repeat("x", DefaultMaxSize) + `\final\` + `\ka\\final\`
	d := NewDecoder(strings.NewReader(big))
	if _, err := d.Decode(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if _, err := d.Decode(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("after too large: got %v, want the same error again", err)
	}
	// Many small tokens count too.
	d = NewDecoder(strings.NewReader(`\a` + strings.Repeat(`\x`, DefaultMaxSize)))
	if _, err := d.Decode(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("many tokens: got %v, want ErrTooLarge", err)
	}
	// A larger limit accepts it, with tokens longer than the read buffer.
	d = NewDecoder(strings.NewReader(big))
	d.MaxSize = ClientMaxSize
	m, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Str("msg"); len(s) != DefaultMaxSize {
		t.Errorf("got %d bytes, want %d", len(s), DefaultMaxSize)
	}
}

func TestDecodeResyncAfterGarbage(t *testing.T) {
	d := NewDecoder(strings.NewReader("junk\r\n" + `\ka\\final\`))
	if _, err := d.Decode(); !errors.Is(err, ErrNoBackslash) {
		t.Fatalf("got %v, want ErrNoBackslash", err)
	}
	m, err := d.Decode()
	if err != nil || !m.Is("ka") {
		t.Errorf("got %v, %v; want ka", m, err)
	}
}

func TestOddTokenCountValueNamedFinal(t *testing.T) {
	// A value "final" does not end the message.
	m, err := ParseMessage([]byte(`\status\1\statstring\final\locstring\\final\`))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Str("statstring"); s != "final" || !m.Has("locstring") {
		t.Errorf("got %v", m)
	}
}

func TestTypedGetters(t *testing.T) {
	m, err := ParseMessage([]byte("\\persistr\\\\cmd\\x1\\rid\\\\body\\a=1\x1cbroken\\nc\\@@@\\uid\\99999999999999999999\\final\\"))
	if err != nil {
		t.Fatal(err)
	}
	// Not numbers read as atoi reads them (TestIntegersAtoi).
	if n, err := m.Int("cmd"); n != 0 || err != nil {
		t.Errorf("cmd: got %d, %v", n, err)
	}
	if n, err := m.Int("rid"); n != 0 || err != nil {
		t.Errorf("empty rid: got %d, %v", n, err)
	}
	var fe *FieldError
	if _, err := m.Int("uid"); !errors.As(err, &fe) || fe.Key != "uid" || !errors.Is(err, ErrBadNumber) {
		t.Errorf("uid out of range: got %v", err)
	}
	if _, err := m.Str("nope"); !errors.Is(err, ErrMissing) {
		t.Errorf("missing: got %v", err)
	}
	d, err := m.Dict("body")
	if !errors.Is(err, ErrBadDict) || len(d) != 1 || d[0] != (Pair{"a", "1"}) {
		t.Errorf("body: got %v, %v", d, err)
	}
	if _, err := m.Base64("nc"); !errors.Is(err, ErrBadBase64) {
		t.Errorf("nc: got %v", err)
	}
	if strings.Contains(err.Error(), "@@@") {
		t.Errorf("error text leaks a nonce: %v", err)
	}
	if s := New("lc", "1").AddBase64("nc", []byte("secret")).AddInt("sesskey", 42).String(); strings.Contains(s, "42") || strings.Contains(s, "c2VjcmV0") {
		t.Errorf("String() leaks secrets: %s", s)
	}
}

func TestDict(t *testing.T) {
	for _, tc := range []struct {
		wire string
		want Dict
	}{
		{"", Dict{}},
		{"a=1", Dict{{"a", "1"}}},
		{"a=b=c", Dict{{"a", "b=c"}}},
		{"a=\x1cb=", Dict{{"a", ""}, {"b", ""}}},
		{"ImageURL=http:/1/1x/1y", Dict{{"ImageURL", "http://x/y"}}},
	} {
		got, err := ParseDict(tc.wire)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%q: got %q, %v", tc.wire, got, err)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: item %d got %q, want %q", tc.wire, i, got[i], tc.want[i])
			}
		}
		if enc := tc.want.Encode(); enc != tc.wire {
			t.Errorf("Encode(%q): got %q, want %q", tc.want, enc, tc.wire)
		}
	}
	recs := Dict{{"x", "0"}, {"GroupID", "1"}, {"GroupName", "A"}, {"GroupID", "2"}, {"GroupName", "B"}}.Records("GroupID")
	if len(recs) != 2 || recs[1].Str("GroupName") != "B" || len(recs[0]) != 2 {
		t.Errorf("Records: got %q", recs)
	}
	// The capture's contact info (n 80) repeats the first key.
	recs = Dict{{"ContactID", "6221"}, {"ContactID", "6221"}, {"GroupName", "IM Friends"}, {"ContactID", "7"}, {"ContactID", "8"}}.Records("ContactID")
	if len(recs) != 3 || recs[0].Str("GroupName") != "IM Friends" || recs[1].Str("ContactID") != "7" {
		t.Errorf("Records with a repeated first key: got %q", recs)
	}
	d := Dict{{"Sound", "True"}, {"Alert", "off"}}
	if !d.Bool("Sound", false) || d.Bool("Alert", true) || !d.Bool("Missing", true) {
		t.Errorf("Bool: wrong")
	}
	if d = d.Set("Alert", "On").SetInt("N", 3); d.Str("Alert") != "On" || d.Str("N") != "3" {
		t.Errorf("Set: got %q", d)
	}
}

func TestList(t *testing.T) {
	l := ParseList("|s|1|ss|a/1b|ls|")
	if strings.Join(l, ",") != ",s,1,ss,a/b,ls," {
		t.Errorf("got %q", l)
	}
	if got := (List{"a|b", "c/d"}).Encode(); got != "a"+BrokenBar+"b|c/1d" {
		t.Errorf("Encode: got %q", got)
	}
	if _, err := ParsePresence(ParseList("|ss|x")); !errors.Is(err, ErrMissing) {
		t.Errorf("presence without s: got %v", err)
	}
	if _, err := ParsePresence(ParseList("|s|99999999999999999999")); !errors.Is(err, ErrBadNumber) {
		t.Errorf("presence with s out of range: got %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`\lc\1\nc\abc\id\1\final\`))
	f.Add([]byte(`\ka\\final\\bm\100\f\6221\msg\|s|1|ss|:-)|ls||ip|0|p|0\final\`))
	f.Add([]byte("\\persistr\\\\cmd\\257\\body\\a=1\x1cb=/1\\final\\"))
	f.Add([]byte(`\a\b\c\final\`))
	f.Add([]byte(`garbage\final\`))
	for _, c := range loadCapture(f) {
		f.Add([]byte(c.Wire))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(bytes.NewReader(b))
		// DecodeInto, into one message reused, decodes the same stream
		// alike.
		into, reused := NewDecoder(bytes.NewReader(b)), &Message{}
		for range 16 {
			m, err := d.Decode()
			err2 := into.DecodeInto(reused)
			if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
				t.Fatalf("Decode got %v, DecodeInto got %v", err, err2)
			}
			if err == nil && !m.Equal(reused) {
				t.Fatalf("Decode got %s, DecodeInto got %s", m, reused)
			}
			if err != nil && len(reused.Fields()) != 0 {
				t.Fatalf("DecodeInto failed with %v and left %d fields", err, len(reused.Fields()))
			}
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, ErrTooLarge) || errors.Is(err, io.ErrUnexpectedEOF) {
					return
				}
				continue
			}
			again, err := ParseMessage(Encode(m))
			if err != nil || !m.Equal(again) {
				t.Fatalf("round trip of %q: got %v, %v", b, again, err)
			}
			// The typed getters never panic.
			for _, fl := range m.Fields() {
				_, _ = m.Int(fl.Key)
				_, _ = m.Dict(fl.Key)
				l, _ := m.List(fl.Key)
				_, _ = ParsePresence(l)
				_, _ = m.Base64(fl.Key)
			}
			_, _ = ParsePersist(m)
		}
	})
}

var benchIM = []byte(`\bm\1\f\6221\cv\697\msg\<p><f f='Times' h='16'>Hello there, how are you doing today? ` +
	`Want to get lunch <i n="happy"/1> at noon/1one, the usual place by the river?</1f></1p>\date\1190000000\final\`)

func BenchmarkDecodeIM(b *testing.B) {
	r := bytes.NewReader(benchIM)
	d := NewDecoder(r)
	b.SetBytes(int64(len(benchIM)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(benchIM)
		if _, err := d.Decode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeIMs decodes a stream of IMs that arrive eight in a read,
// as a busy server's reader or the gateway's gets them, into one message
// (DecodeInto, with room for msg as the client's reader has). One op is one
// IM.
func BenchmarkDecodeIMs(b *testing.B) {
	r := &repeatReader{chunk: bytes.Repeat(benchIM, 8)}
	d := NewDecoder(r)
	d.room = "msg"
	m := &Message{}
	b.SetBytes(int64(len(benchIM)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.DecodeInto(m); err != nil {
			b.Fatal(err)
		}
		if m.room != nil {
			m.room.Reset()
		}
	}
}

// repeatReader reads chunk again and again, a whole one at most in a read.
type repeatReader struct {
	chunk []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.chunk[r.off:])
	r.off = (r.off + n) % len(r.chunk)
	return n, nil
}

func BenchmarkEncodeIM(b *testing.B) {
	m, err := ParseMessage(benchIM)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(benchIM)))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendTo(buf[:0])
	}
}

func BenchmarkBuildAndEncodeIM(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		m := NewInt("bm", 1).AddInt("sesskey", 263958216).AddInt("t", 6221).AddInt("cv", 697).
			Add("msg", "<p><f f='Times' h='16'>Hello there, how are you doing today?</f></p>")
		buf = m.AppendTo(buf[:0])
	}
}

// TestOddTokenCount: a message whose last key has no value (the spec allows
// it; early clients wrote flags so) ends at its \final\ when the next
// message follows or the stream ends, and the stream stays in step.
func TestOddTokenCount(t *testing.T) {
	d := NewDecoder(strings.NewReader(`\getinfo\final\\status\1\sesskey\5\final\\a\b\c\final\`))
	m, err := d.Decode()
	if err != nil || !m.Is("getinfo") || len(m.Fields()) != 1 {
		t.Fatalf("got %v, %v; want getinfo alone", m, err)
	}
	m, err = d.Decode()
	if err != nil || !m.Is("status") {
		t.Fatalf("got %v, %v; want status", m, err)
	}
	m, err = d.Decode()
	if err != nil || !m.Has("c") || m.StrOr("c", "x") != "" {
		t.Fatalf("got %v, %v; want a, c flag", m, err)
	}
	if again, err := ParseMessage(Encode(m)); err != nil || !again.Equal(m) {
		t.Errorf("re-encoded: %v, %v", again, err)
	}
	// A value "final" inside a message still does not end it.
	m, err = NewDecoder(strings.NewReader(`\status\1\statstring\final\locstring\\final\`)).Decode()
	if err != nil || m.StrOr("statstring", "") != "final" || !m.Has("locstring") {
		t.Errorf("got %v, %v", m, err)
	}
}

// TestAppendBM: the buddy message written straight to bytes is the one the
// Message builder encodes, escapes included.
func TestAppendBM(t *testing.T) {
	t.Parallel()
	c := &Client{sesskey: 12345}
	for _, tc := range []struct {
		typ  int
		to   UID
		body string
	}{
		{BMIM, 1000001, "<p><f f='Times' h='16'>hello</f></p>"},
		{BMIM, 7, ""},
		{BMAction, 99, "%typing%"},
		{BMIM, 2147483647, `a/b\c//\\/1/2`},
		{BMStatus, 5, "|s|1|ss|x/y"},
	} {
		got := string(appendBM(nil, tc.typ, c.sesskey, tc.to, tc.body))
		want := string(Encode(c.bmMessage(tc.typ, tc.to, tc.body)))
		if got != want {
			t.Errorf("appendBM(%d, %d, %q): got %q, want %q", tc.typ, tc.to, tc.body, got, want)
		}
		if got, want := string(appendEscaped([]byte("x"), tc.body)), "x"+Escape(tc.body); got != want {
			t.Errorf("appendEscaped(%q): got %q, want %q", tc.body, got, want)
		}
	}
}

// TestDecodeAllocs: a small message costs its string and one allocation for
// the message with its fields; the buffer it is gathered in is a pool's.
// (.ci/run runs it without the race detector too, whose pool drops some.)
func TestDecodeAllocs(t *testing.T) {
	one := `\bm\1\sesskey\5\f\1000001\msg\<p><f f='Times' h='16'>hi</f></p>\final\`
	d := NewDecoder(strings.NewReader(strings.Repeat(one, 1000)))
	var err error
	allocs := testing.AllocsPerRun(500, func() {
		var m *Message
		if m, err = d.Decode(); err == nil && m.Type() != "bm" {
			err = errors.New("wrong type " + m.Type())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := 2.0
	if raceEnabled {
		// The detector's pool drops about a quarter of what it is given,
		// and each buffer made again costs its holder and its growth.
		want = 4
	}
	if allocs > want {
		t.Errorf("Decode: got %.1f allocations per message, want at most %.0f", allocs, want)
	}
}

// DecodeInto reuses its message's fields: a small message costs only its
// text, and the values decoded before stay valid.
func TestDecodeIntoReuses(t *testing.T) {
	one := `\bm\1\sesskey\5\f\1000001\msg\<p><f f='Times' h='16'>hi</f></p>\final\`
	d := NewDecoder(strings.NewReader(`\bm\100\f\7\msg\first\a\1\b\2\final\` + strings.Repeat(one, 1000)))
	m := &Message{}
	if err := d.DecodeInto(m); err != nil {
		t.Fatal(err)
	}
	// A shorter message in the same array leaves no value of the longer
	// one's behind it (which would pin that message's text).
	if err := d.DecodeInto(m); err != nil {
		t.Fatal(err)
	}
	if all := m.fields[:cap(m.fields)]; len(m.fields) != 4 || len(all) < 5 || all[4] != (Field{}) {
		t.Errorf("after a shorter message: got %d fields, %q in the array, want 4 and the rest empty", len(m.fields), all)
	}
	var err error
	allocs := testing.AllocsPerRun(500, func() {
		if err = d.DecodeInto(m); err == nil && m.Type() != "bm" {
			err = errors.New("wrong type " + m.Type())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.StrOr("msg", ""); got != "<p><f f='Times' h='16'>hi</f></p>" {
		t.Errorf("msg got %q", got)
	}
	want := 1.0
	if raceEnabled {
		want = 3 // the detector's pool drops some of what it is given
	}
	if allocs > want {
		t.Errorf("DecodeInto: got %.1f allocations per message, want at most %.0f", allocs, want)
	}
	// At the end of the stream m is left without fields.
	for d.DecodeInto(m) == nil {
	}
	if n := len(m.Fields()); n != 0 {
		t.Errorf("after an error m has %d fields, want 0", n)
	}
}

// TestAppendStyledIM: a styled IM written straight to bytes, its markup
// escaped as it is written, is what the Message builder encodes, in every
// style.
func TestAppendStyledIM(t *testing.T) {
	t.Parallel()
	for _, spans := range [][]markup.Span{
		nil,
		{{Text: "plain"}},
		{{Text: "a/b\\c ", Style: markup.Bold}, {Text: "\\ :) <&>\n/"}, {Text: "x\\", Style: markup.Italic | markup.Underline}},
	} {
		got := string(appendStyledIM(nil, imHead(777), 1000002, spans))
		want := string(Encode((&Client{sesskey: 777}).bmMessage(BMIM, 1000002, markup.FromSpans(spans))))
		if got != want {
			t.Errorf("appendStyledIM(%q): got %q, want %q", spans, got, want)
		}
	}
}

// TestAppendIM: an IM written straight to bytes, its markup escaped as it
// is written, is what the Message builder encodes.
func TestAppendIM(t *testing.T) {
	t.Parallel()
	c := &Client{sesskey: 777}
	for _, text := range []string{
		"hello", "", "a/b\\c", "\\ first", "x\\", "\\", "\\/", "/\\", "line one\nline two", "B) :) <b>&amp;</b> //\\\\", "ünïcødé / ok",
	} {
		got := string(appendIM(nil, imHead(c.sesskey), 1000002, text))
		want := string(Encode(c.bmMessage(BMIM, 1000002, markup.FromPlain(text))))
		if got != want {
			t.Errorf("appendIM(%q): got %q, want %q", text, got, want)
		}
	}
}

// BenchmarkAppendIM: an IM the user typed, written straight to bytes with
// its markup escaped as it is written, as the gateway sends it: a line of text
// (slashes only in the markup's closing tags, at the end), and text with
// slashes from its start (a link, then more lines).
func BenchmarkAppendIM(b *testing.B) {
	for _, c := range []struct{ name, text string }{
		{"line", "Hello there, how are you doing today? Want to get lunch at noon, the usual place by the river?"},
		{"slashes", "https://example.com/a/b see this\\that 1/2 of it\nHello there, how are you doing today?\nWant to get lunch at noon, the usual place by the river?"},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			head := imHead(263958216)
			b.ReportAllocs()
			for b.Loop() {
				buf = appendIM(buf[:0], head, 1000002, c.text)
			}
		})
	}
}

// TestDecodeSkipEmptyKeys: with SkipEmptyKeys a pair whose key is empty is
// left out and the rest of its message kept; an empty type still fails.
func TestDecodeSkipEmptyKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Field // nil: ErrEmptyKey
	}{
		{"empty key later", `\a\b\\c\d\e\final\`, []Field{{"a", "b"}, {"d", "e"}}},
		{"empty key and value", `\a\b\\\d\e\final\`, []Field{{"a", "b"}, {"d", "e"}}},
		{"empty last key", `\a\b\\final\`, []Field{{"a", "b"}}},
		{"two", `\a\b\\c\\d\e\f\final\`, []Field{{"a", "b"}, {"e", "f"}}},
		{"empty type", `\\x\final\`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, into := range []bool{false, true} {
				d := NewDecoder(strings.NewReader(`\x\1\y\2\z\3\w\4\v\5\final\` + tc.in))
				d.SkipEmptyKeys = true
				m := &Message{}
				if err := d.DecodeInto(m); err != nil { // a longer message first, into m
					t.Fatal(err)
				}
				var err error
				if into {
					err = d.DecodeInto(m)
				} else {
					m, err = d.Decode()
				}
				if tc.want == nil {
					if !errors.Is(err, ErrEmptyKey) {
						t.Errorf("into %v: got %v, want %v", into, err, ErrEmptyKey)
					}
					continue
				}
				if err != nil || !reflect.DeepEqual(m.Fields(), tc.want) {
					t.Errorf("into %v: got %v, %v; want %v", into, m.Fields(), err, tc.want)
				}
			}
		})
	}
}

// refUnescape is Unescape as the spec reads, a byte at a time: what the
// codec's faster ones must match.
func refUnescape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '/' && i+1 < len(s) && (s[i+1] == '1' || s[i+1] == '2') {
			b = append(b, "/\\"[s[i+1]-'1'])
			i++
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// TestUnescapeInRoom: a reader's decoder with room for msg gives the same
// values as Unescape, for msg and every other field, whatever msg holds;
// and a value it gave stays as it was once later messages are decoded.
func TestUnescapeInRoom(t *testing.T) {
	values := []string{"", "plain", "/", "x/", "//1", "/1/2", "a/3b", "/12", "<p>hi</1p>", "//2//1/", "é/1ü/2"}
	var wire bytes.Buffer
	for _, v := range values {
		fmt.Fprintf(&wire, `\bm\1\f\2001\msg\%s\note\%s\final\`, v, v)
	}
	wire.WriteString(`\bm\1\note\a/1b\final\`)         // no msg
	wire.WriteString(`\bm\1\msg\a/1b\msg\c/2d\final\`) // msg twice: the first is read
	wire.WriteString(`\bm\1\note\x/1\msg\final\`)      // msg last, a flag
	d := NewDecoder(bytes.NewReader(wire.Bytes()))
	d.room = "msg"
	type seen struct{ got, want string }
	var kept []seen
	roomy := 0
	for {
		m := &Message{}
		if err := d.DecodeInto(m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if m.room != nil {
			roomy++
		}
		for _, f := range m.Fields() {
			want := refUnescape(f.Value)
			got, err := m.Str(f.Key)
			first, _ := m.Raw(f.Key)
			if err != nil || got != refUnescape(first) {
				t.Errorf("Str(%q) of %s: got %q, %v; want %q", f.Key, m, got, err, refUnescape(first))
			}
			if u := Unescape(f.Value); u != want {
				t.Errorf("Unescape(%q): got %q, want %q", f.Value, u, want)
			}
			kept = append(kept, seen{got, refUnescape(first)})
		}
	}
	for _, k := range kept {
		if k.got != k.want {
			t.Errorf("a value given earlier: now %q, want %q", k.got, k.want)
		}
	}
	if roomy < 5 {
		t.Errorf("%d messages had room for msg, want the 5 or more whose msg has a '/'", roomy)
	}
	if len(kept) < 2*len(values) {
		t.Errorf("got %d values, want at least %d", len(kept), 2*len(values))
	}
}
