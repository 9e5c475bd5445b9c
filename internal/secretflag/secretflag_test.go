package secretflag

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestList: values are taken as given, whatever they hold, and never
// shown; Check names the first malformed one by its position only.
func TestList(t *testing.T) {
	var l List
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&l, "account", "")
	if err := fs.Parse([]string{"-account", "a@x:pw", "-account", "b@x:", "-account", "c@x:s3cret"}); err != nil {
		t.Fatal(err)
	}
	if len(l) != 3 || strings.Contains(l.String(), "pw") {
		t.Fatalf("got %d values, String %q; want 3, no password", len(l), l.String())
	}
	valid := func(v string) bool { _, pw, ok := strings.Cut(v, ":"); return ok && pw != "" }
	err := l.Check("account", "EMAIL:PASSWORD", valid)
	if err == nil || !strings.Contains(err.Error(), "the 2nd -account is not EMAIL:PASSWORD") || strings.Contains(err.Error(), "b@x") {
		t.Errorf("Check: got %v, want the 2nd named, not shown", err)
	}
	if err := l[:1].Check("account", "EMAIL:PASSWORD", valid); err != nil {
		t.Errorf("Check of a valid list: %v", err)
	}
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 102: "102nd", 111: "111th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}
