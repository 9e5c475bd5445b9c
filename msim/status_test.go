package msim

import (
	"errors"
	"testing"
)

// statusCases are status messages' msg fields as the wire carries them,
// well and badly formed.
var statusCases = []string{
	"|s|1|ss|Lunch|ls||ip|0|p|0",
	"|s|0|ss|",
	"|s|5|ss|A /1 slash/2and|ca|",
	"s|2|ss|no leading bar",
	"|ss|no status",
	"|s|x|ss|bad status",
	"|s|99999999999999999999|ss|s out of range",
	"|s|",
	"|s",
	"",
	"|",
	"|s|1|ss|first|s|2|ss|second",
	"|s|1|ss|odd|x",
	"|s|1|ss|trailing|",
}

// TestParseStatus: what the client reads of a status message is what
// ParsePresence makes of its list, errors included.
func TestParseStatus(t *testing.T) {
	for _, raw := range statusCases {
		checkParseStatus(t, raw)
	}
}

func checkParseStatus(t *testing.T, raw string) {
	t.Helper()
	want, wantErr := ParsePresence(ParseList(raw))
	st, text, err := parseStatus(raw)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("parseStatus(%q): error %v, ParsePresence's %v", raw, err, wantErr)
	}
	if err != nil {
		var fe, wfe *FieldError
		if !errors.As(err, &fe) || !errors.As(wantErr, &wfe) || *fe != *wfe {
			t.Fatalf("parseStatus(%q): error %#v, ParsePresence's %#v", raw, err, wantErr)
		}
		return
	}
	if st != want.Status || text != want.Text {
		t.Fatalf("parseStatus(%q) = %v, %q; ParsePresence gives %v, %q", raw, st, text, want.Status, want.Text)
	}
}

// TestParseStatusAllocs: a status without escapes is read without an
// allocation.
func TestParseStatusAllocs(t *testing.T) {
	raw := "|s|1|ss|Lunch|ls||ip|0|p|0"
	if n := testing.AllocsPerRun(100, func() { _, _, _ = parseStatus(raw) }); n > 0 {
		t.Errorf("parseStatus: %.0f allocations, want none", n)
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, raw := range statusCases {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkParseStatus(t, raw) })
}

// TestIntegersAtoi: integers are read as Pidgin's atoi reads them (spec
// §2, "Integers"): the leading digits, and a value that is not a number
// at all reads as 0, so a status whose s is garbage is offline rather
// than dropped.
func TestIntegersAtoi(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{{"x", 0}, {"", 0}, {"12abc", 12}, {" 7", 7}, {"-3", -3}, {"+4", 4}, {"-", 0}, {"100", 100}} {
		m := New("bm", "").Add("n", c.in)
		if got, err := m.Int("n"); err != nil || got != c.want {
			t.Errorf("Int(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	st, text, err := parseStatus("|s|x|ss|bad status")
	if err != nil || st != StatusOffline || text != "bad status" {
		t.Errorf("parseStatus with s x = %v, %q, %v; want offline, \"bad status\"", st, text, err)
	}
	if p, err := ParsePresence(ParseList("|s|x")); err != nil || p.Status != StatusOffline {
		t.Errorf("ParsePresence with s x = %+v, %v; want offline", p, err)
	}
}
