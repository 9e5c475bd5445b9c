package msim

import (
	"flag"
	"testing"
)

// fuzzMinimize is how many runs the fuzzing engine gives the minimization
// of each new input, unless -fuzzminimizetime says otherwise. The engine's
// own default is a minute of runs per input, and its pass that removes
// every span of bytes takes far longer than that on an input of a few
// kilobytes; the engine counts no runs until a minimization ends, so a
// fuzz run showed none for most of its time (and found no new input: the
// minimizations still under way at its end were lost).
const fuzzMinimize = "2000x"

// TestMain bounds the minimization of new fuzz inputs (see fuzzMinimize).
func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.fuzz").Value.String() != "" && !flagGiven("test.fuzzminimizetime") {
		if err := flag.Set("test.fuzzminimizetime", fuzzMinimize); err != nil {
			panic(err)
		}
	}
	m.Run()
}

// flagGiven reports whether the command line set the flag name.
func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
