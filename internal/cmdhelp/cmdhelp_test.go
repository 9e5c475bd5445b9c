package cmdhelp_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/internal/cmdhelp"
	"github.com/msimircd/msimircd/internal/cmdhelp/cmdhelptest"
)

type list []string

func (l *list) String() string     { return "0 items" }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }
func (*list) Repeatable() bool     { return true }

// testPage is a page with a flag of every kind the commands use.
func testPage() *cmdhelp.Page {
	fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
	fs.String("listen", "127.0.0.1:1863", "address to listen on")
	fs.String("config", "", "read `FILE`")
	fs.String("state", "", "state directory (default $XDG_STATE_HOME/cmd)")
	fs.Bool("debug", false, "log more")
	fs.Int("max", 0, "a cap")
	var l list
	fs.Var(&l, "item", "add an `ITEM` (repeatable)")
	return &cmdhelp.Page{
		Name:        "cmd",
		Summary:     "a command",
		Synopsis:    []string{"cmd [flags]", "cmd sub ARG"},
		Description: []string{"What it does, at some length so that the paragraph has to be wrapped at the right margin of the text, twice over at least, which this sentence should manage."},
		Flags:       fs,
		Sections: []cmdhelp.Section{
			{Title: "Signals", Items: []cmdhelp.Item{{Term: "SIGINT, SIGTERM", Text: "stop."}, {Term: "SIGHUP", Text: "reload."}}},
			{Title: "Pre", Paragraphs: []string{".starts with a period"}, Pre: "  a \\ b\n  -x\n"},
			{Title: "Exit status", Items: []cmdhelp.Item{{Term: "0", Text: "fine."}, {Term: "1", Text: "not fine."}}},
		},
	}
}

// TestWriteText: every flag gets an entry with its argument name and its
// default (none for an empty or repeatable one, the usage's own words for
// one that says what happens without it), and lines keep to the margin.
func TestWriteText(t *testing.T) {
	p := testPage()
	var b bytes.Buffer
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	cmdhelptest.CheckHelp(t, text, p.Flags)
	entries := cmdhelptest.FlagEntries(text)
	for _, tc := range []struct{ flag, want string }{
		{"listen", "  -listen string\n      address to listen on (default 127.0.0.1:1863)\n"},
		{"config", "  -config FILE\n      read FILE (default none)\n"},
		{"state", "  -state string\n      state directory (default $XDG_STATE_HOME/cmd)\n"},
		{"debug", "  -debug\n      log more (default false)\n"},
		{"max", "  -max int\n      a cap (default 0)\n"},
		{"item", "  -item ITEM\n      add an ITEM (repeatable) (default none)\n"},
	} {
		if got := entries[tc.flag]; got != tc.want {
			t.Errorf("-%s: got %q, want %q", tc.flag, got, tc.want)
		}
	}
	for _, want := range []string{"cmd: a command.\n\nUsage:\n  cmd [flags]\n  cmd sub ARG\n", "\n  0   fine.\n", "\n  SIGHUP\n      reload.\n", "\n    a \\ b\n    -x\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("got %q, want %q in it", text, want)
		}
	}
	for l := range strings.Lines(text) {
		if len(l) > 80 { // 79 and the newline
			t.Errorf("line over the margin: %q", l)
		}
	}
}

// TestWriteMan: the man page has every flag, its date round-trips through
// DateOf, and mandoc (or groff) finds nothing to warn about.
func TestWriteMan(t *testing.T) {
	p := testPage()
	var b bytes.Buffer
	if err := p.WriteMan(&b, "2026-01-02"); err != nil {
		t.Fatal(err)
	}
	man := b.String()
	if got := cmdhelp.DateOf(man); got != "2026-01-02" {
		t.Errorf("DateOf: got %q, want 2026-01-02", got)
	}
	for _, want := range []string{".TH CMD 1 \"2026-01-02\" cmd\n", ".BI \\-config \" FILE\"\nread FILE (default none)\n", ".B \\-debug\nlog more (default false)\n", "\\&.starts with a period\n", ".nf\n  a \\e b\n  \\-x\n.fi\n"} {
		if !strings.Contains(man, want) {
			t.Errorf("got %q, want %q in it", man, want)
		}
	}
	path := filepath.Join(t.TempDir(), "cmd.1")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmdhelptest.CheckMan(t, path, p, false)
	cmdhelptest.LintMan(t, path)
}

// TestSetUsage: -help and -h print the page on stdout and nothing on the
// flag output; a bad flag prints its error, the usage lines and a pointer
// to -help on the flag output and nothing on stdout.
func TestSetUsage(t *testing.T) {
	for _, tc := range []struct {
		arg            string
		wantErr        error
		stdout, stderr string // prefixes; "" = nothing
	}{
		{"-help", flag.ErrHelp, "cmd: a command.\n", ""},
		{"-h", flag.ErrHelp, "cmd: a command.\n", ""},
		{"-nope", nil, "", "flag provided but not defined: -nope\nusage: cmd [flags]\n       cmd sub ARG\ncmd -help prints the whole manual.\n"},
		{"-max=x", nil, "", "invalid value \"x\" for flag -max"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			p := testPage()
			var stdout, stderr bytes.Buffer
			p.Flags.SetOutput(&stderr)
			cmdhelp.SetUsage(p.Flags, &stdout, func() *cmdhelp.Page { return p })
			err := p.Flags.Parse([]string{tc.arg})
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err == nil {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
			for _, c := range []struct {
				name      string
				got, want string
			}{{"stdout", stdout.String(), tc.stdout}, {"stderr", stderr.String(), tc.stderr}} {
				if !strings.HasPrefix(c.got, c.want) || c.want == "" && c.got != "" {
					t.Errorf("%s: got %q, want it to start with %q", c.name, c.got, c.want)
				}
			}
		})
	}
}
