package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/internal/cmdhelp/cmdhelptest"
)

var update = flag.Bool("update", false, "rewrite docs/msimd.1 from the help (go generate does this)")

// helpFlags runs msimd with args and returns what it printed on stdout and
// stderr, its FlagSet and its error.
func helpFlags(t *testing.T, args ...string) (stdout, stderr string, fs *flag.FlagSet, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, flags: func(f *flag.FlagSet) { fs = f }}
	err = run(context.Background(), args, e)
	if fs == nil {
		t.Fatal("run defined no flags")
	}
	return out.String(), errOut.String(), fs, err
}

// TestHelp: -help and -h (also after adduser) print a text on stdout with
// an entry for every flag, with its default, the signals (SIGHUP
// re-reading -account-file) and the exit status, and nothing on stderr.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-help"}, {"-h"}, {"adduser", "-help"}, {"-data", "x", "adduser", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			text, stderr, fs, err := helpFlags(t, args...)
			if !errors.Is(err, flag.ErrHelp) || stderr != "" {
				t.Fatalf("got error %v and stderr %q, want flag.ErrHelp and nothing", err, stderr)
			}
			cmdhelptest.CheckHelp(t, text, fs)
			for _, want := range []string{
				"msimd [flags]\n",
				"msimd (-data PATH | -db DSN) [-key PATH] [-demo] adduser [-username NAME] EMAIL\n",
				"msimd (-data PATH | -db DSN) [-key PATH] import [-key OLD.key] OLD.db\n",
				"re-reads the -account-file",
				"\n  2   a usage error",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("the help has no %q", want)
				}
			}
		})
	}
}

// TestBadFlagUsage: a bad flag or a stray argument is a usage error: the
// error and the usage lines on stderr, not the whole help.
func TestBadFlagUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag\nusage: msimd [flags]\n"},
		{[]string{"-max-conns", "many"}, "invalid value \"many\" for flag -max-conns"},
		{[]string{"stray"}, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, _, err := helpFlags(t, tc.args...)
			if !errors.Is(err, errUsage) || stdout != "" || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("got error %v, stdout %.60q, stderr %q; want a usage error, no stdout, %q on stderr", err, stdout, stderr, tc.stderr)
			}
		})
	}
}

// TestManPage: docs/msimd.1 is the help rendered as a man page, naming
// every flag, and mandoc (or groff) finds nothing to warn about in it.
func TestManPage(t *testing.T) {
	_, _, fs, _ := helpFlags(t, "-help")
	cmdhelptest.CheckMan(t, "../../docs/msimd.1", helpPage(fs), *update)
	cmdhelptest.LintMan(t, "../../docs/msimd.1")
}

// mainArgsEnv, in a copy of the test binary, makes TestHelpExitStatus run
// main with these arguments (one a line) instead of testing.
const mainArgsEnv = "MSIMD_TEST_MAIN_ARGS"

// TestHelpExitStatus: the command exits 0 after -help, with the help on
// stdout and nothing on stderr, and 2 after a bad flag, with nothing on
// stdout.
func TestHelpExitStatus(t *testing.T) {
	if args, ok := os.LookupEnv(mainArgsEnv); ok {
		os.Args = append([]string{"msimd"}, strings.Split(args, "\n")...)
		main()
		os.Exit(0) // as returning from main does
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a prefix; "" = nothing
	}{
		{[]string{"-help"}, 0, "msimd: a standalone MySpaceIM (MSIM) server.\n"},
		{[]string{"-h"}, 0, "msimd: a standalone MySpaceIM (MSIM) server.\n"},
		{[]string{"-no-such-flag"}, 2, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelpExitStatus$")
			cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join(tc.args, "\n"))
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
			if (tc.code == 0) != (stderr.Len() == 0) {
				t.Errorf("got stderr %q with exit status %d", stderr.String(), tc.code)
			}
		})
	}
}
