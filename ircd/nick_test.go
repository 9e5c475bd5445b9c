package ircd

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// compareFolded orders as strings.Compare orders the folded strings, over
// random strings of the letters casemapping folds and their neighbours.
func TestCompareFolded(t *testing.T) {
	const alphabet = "aAzZ[]{}\\|~^@`_-0"
	rng := rand.New(rand.NewPCG(3, 4))
	word := func() string {
		b := make([]byte, rng.IntN(5))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		a, b := word(), word()
		if got, want := compareFolded(a, b), strings.Compare(foldCase(a), foldCase(b)); got != want {
			t.Fatalf("compareFolded(%q, %q) got %d, want %d", a, b, got, want)
		}
	}
	if got := foldCase("Nick[]\\~"); got != "nick{}|^" {
		t.Errorf("foldCase got %q, want %q", got, "nick{}|^")
	}
}
