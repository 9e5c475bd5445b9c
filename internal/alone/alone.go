// Package alone runs a test by itself, in a child process of the test
// binary, for what the rest of the package's tests would disturb: the Go
// runtime's sizes (a new goroutine's stack starts at the size the
// goroutines alive at the last collection used on average, and a package
// holds its parallel tests' goroutines, paused, while the others run).
//
// Ownership: tests only; the package has no state.
package alone

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// childEnv marks the child process, naming the test it runs.
const childEnv = "MSIMIRCD_ALONE_TEST"

// Run returns true in the child, where the test goes on. In the parent it
// runs the test alone in a child and fails t with the child's output if
// the child failed; the parent's test then returns at once (Run is false).
func Run(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s alone: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s alone: the child did not pass it:\n%s", t.Name(), out)
	}
	return false
}
