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
