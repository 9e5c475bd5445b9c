// Package cmdhelptest holds the checks that a command's -help text and man
// page teach every flag of its FlagSet, shared by the commands' tests.
package cmdhelptest

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/cmdhelp"
)

// FlagEntries splits a -help text's "Flags:" section into each flag's
// entry (its line and the explanation below it), by flag name.
func FlagEntries(text string) map[string]string {
	_, flags, _ := strings.Cut(text, "\nFlags:\n")
	if i := strings.Index(flags, "\n\n"); i >= 0 {
		flags = flags[:i+1]
	}
	entries := map[string]string{}
	var name string
	for l := range strings.Lines(flags) {
		if strings.HasPrefix(l, "  -") {
			name = strings.Fields(l)[0][1:]
		}
		if name != "" {
			entries[name] += l
		}
	}
	return entries
}

// CheckHelp fails t unless text has an entry for every flag of fs that
// names its default (the FlagSet's, or for one without, the words of the
// flag's usage saying what happens without it), no entry for a flag fs
// lacks, and the sections every manual has.
func CheckHelp(t *testing.T, text string, fs *flag.FlagSet) {
	t.Helper()
	entries := FlagEntries(text)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		e, ok := entries[f.Name]
		switch {
		case !ok:
			t.Errorf("-%s: no entry in the help's Flags section", f.Name)
		case f.DefValue != "" && cmdhelp.Default(f) != "none":
			if want := "(default " + f.DefValue + ")"; !strings.Contains(oneLine(e), want) {
				t.Errorf("-%s: got entry %q, want it to say %q", f.Name, e, want)
			}
		case !strings.Contains(e, "(default"):
			t.Errorf("-%s: got entry %q, want it to say what its default is", f.Name, e)
		}
	})
	if len(entries) != n {
		t.Errorf("got %d flag entries, want %d (one per flag of the FlagSet)", len(entries), n)
	}
	for _, want := range []string{"\nUsage:\n", "\nSignals:\n  SIGINT, SIGTERM\n", "\n  SIGHUP\n", "\nExit status:\n  0 "} {
		if !strings.Contains(text, want) {
			t.Errorf("the help has no %q", want)
		}
	}
}

// oneLine joins an entry's wrapped lines.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// CheckMan fails t unless the man page at path is page as WriteMan renders
// it (whatever its date); with update it writes the page there instead,
// dated today when it changed. It also names every flag of page.Flags, so
// a failure says which flag is missing.
func CheckMan(t *testing.T, path string, page *cmdhelp.Page, update bool) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil && !(update && os.IsNotExist(err)) {
		t.Fatalf("%v (go generate ./cmd/%s writes it)", err, page.Name)
	}
	var want bytes.Buffer
	if err := page.WriteMan(&want, cmdhelp.DateOf(string(old))); err != nil {
		t.Fatal(err)
	}
	if update {
		if bytes.Equal(old, want.Bytes()) {
			return
		}
		want.Reset()
		if err := page.WriteMan(&want, time.Now().UTC().Format(time.DateOnly)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		return
	}
	page.Flags.VisitAll(func(f *flag.Flag) {
		if !bytes.Contains(old, []byte(".B \\-"+f.Name+"\n")) && !bytes.Contains(old, []byte(".BI \\-"+f.Name+" ")) {
			t.Errorf("%s does not describe -%s", path, f.Name)
		}
	})
	if !bytes.Equal(old, want.Bytes()) {
		t.Errorf("%s is stale: it is not what -help says; run go generate ./cmd/%s", path, page.Name)
	}
}

// LintMan runs mandoc -T lint on the man page at path, or where mandoc is
// missing groff -man -ww -z, failing t on any warning; without either it
// skips.
func LintMan(t *testing.T, path string) {
	t.Helper()
	var cmd *exec.Cmd
	if _, err := exec.LookPath("mandoc"); err == nil {
		cmd = exec.Command("mandoc", "-T", "lint", "-W", "warning", path)
	} else if _, err := exec.LookPath("groff"); err == nil {
		cmd = exec.Command("groff", "-man", "-ww", "-z", path)
	} else {
		t.Skip("neither mandoc nor groff is installed (Debian: apt-get install mandoc)")
	}
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("%s: %v\n%s", cmd, err, out)
	}
}
