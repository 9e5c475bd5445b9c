package main

import (
	"bytes"
	"errors"
	"flag"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/internal/cmdhelp/cmdhelptest"
)

var update = flag.Bool("update", false, "rewrite docs/msimircd.1 from the help (go generate does this)")

// helpFlags runs msimircd -help (or -h) and returns what it printed and
// the FlagSet it was generated from.
func helpFlags(t *testing.T, arg string) (string, *flag.FlagSet) {
	t.Helper()
	var o options
	out, err := captureStdout(t, func() error {
		var err error
		o, err = parseOptions([]string{arg}, strings.NewReader(""))
		return err
	})
	if !errors.Is(err, flag.ErrHelp) || o.flags == nil {
		t.Fatalf("%s: got error %v, want flag.ErrHelp", arg, err)
	}
	return out, o.flags
}

// TestHelp: -help and -h print a text with an entry for every flag of the
// command line, with its default, the config file's tables, the signals
// (SIGHUP reloading the config) and the exit status.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-help", "-h"} {
		t.Run(arg, func(t *testing.T) {
			text, fs := helpFlags(t, arg)
			cmdhelptest.CheckHelp(t, text, fs)
			for _, want := range []string{
				"msimircd [flags]\n",
				"msimircd user [-config FILE] [-state DIR] add|del|list|passwd [NICK]\n",
				"$XDG_STATE_HOME/msimircd, else ~/.local/state/msimircd",
				"\nConfig file:\n",
				"re-reads the config file: users, MOTD, flood limits, log level, TLS certificates; other changes need a restart",
			} {
				if !strings.Contains(strings.Join(strings.Fields(text), " ")+"\n", strings.Join(strings.Fields(want), " ")) {
					t.Errorf("the help has no %q", want)
				}
			}
			for _, s := range configSections {
				if !strings.Contains(text, "\n  "+s.Term+"\n") {
					t.Errorf("the help has no line for %s", s.Term)
				}
			}
		})
	}
}

// TestConfigSections: the help lists exactly the config file's top-level
// tables, as Config's toml tags name them ([name], or [[name]] for an
// array of tables), so a new table cannot be left out of it.
func TestConfigSections(t *testing.T) {
	var want []string
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Slice {
			want = append(want, "[["+name+"]]")
		} else {
			want = append(want, "["+name+"]")
		}
	}
	var got []string
	for _, s := range configSections {
		got = append(got, s.Term)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got config sections %v in the help, want %v (Config's tables): add a line to configSections in help.go", got, want)
	}
}

// TestManPage: docs/msimircd.1 is the help rendered as a man page, naming
// every flag, and mandoc (or groff) finds nothing to warn about in it.
func TestManPage(t *testing.T) {
	_, fs := helpFlags(t, "-help")
	cmdhelptest.CheckMan(t, "../../docs/msimircd.1", helpPage(fs), *update)
	cmdhelptest.LintMan(t, "../../docs/msimircd.1")
}

// TestHelpExitStatus: the binary exits 0 after -help, -h and user -help,
// with the help on stdout (the user's usage on stderr); after a bad flag
// it exits 1 with the error and the usage lines on stderr, nothing on
// stdout.
func TestHelpExitStatus(t *testing.T) {
	bin := binary(t, ".")
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string // a prefix
		stderrHas  string
		stderrNone bool
	}{
		{[]string{"-help"}, 0, "msimircd: an IRC server", "", true},
		{[]string{"-h"}, 0, "msimircd: an IRC server", "", true},
		{[]string{"user", "-help"}, 0, "", "usage: msimircd user", false},
		{[]string{"-no-such-flag"}, 1, "", "usage: msimircd [flags]\n", false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("got exit status %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tc.stdout) || tc.stdout == "" && stdout.Len() > 0 {
				t.Errorf("got stdout %.80q, want it to start with %q", stdout.String(), tc.stdout)
			}
			if tc.stderrNone && stderr.Len() > 0 || !strings.Contains(stderr.String(), tc.stderrHas) {
				t.Errorf("got stderr %q, want %q in it", stderr.String(), tc.stderrHas)
			}
		})
	}
}
