// Package leakcheck is the TestMain of packages whose tests must leave no
// goroutine behind: it runs them under goleak, except while fuzzing, when
// the fuzzing engine's own goroutines would fail the check (and keep the
// engine from stopping in time).
package leakcheck

import (
	"flag"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main runs m's tests and checks for leaked goroutines unless fuzzing.
func Main(m *testing.M) {
	flag.Parse()
	if Fuzzing() {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// Fuzzing reports whether this test binary is a fuzzing run or one of its
// workers.
func Fuzzing() bool {
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return true
	}
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}
