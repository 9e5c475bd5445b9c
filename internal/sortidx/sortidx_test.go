package sortidx

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/internal/allocs"
)

type item struct {
	name string
	n    int
}

func byName(v *item, k string) int { return strings.Compare(v.name, k) }

// TestIndexAsMap: random adds and deletes leave the index holding what a
// map would, in key order.
func TestIndexAsMap(t *testing.T) {
	x := New(byName)
	want := map[string]*item{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		k := string(rune('a'+rng.IntN(26))) + string(rune('a'+rng.IntN(26)))
		if rng.IntN(3) == 0 {
			v, ok := x.Delete(k)
			w, wok := want[k]
			if ok != wok || v != w {
				t.Fatalf("step %d: Delete(%q) got (%v, %v), want (%v, %v)", i, k, v, ok, w, wok)
			}
			delete(want, k)
			continue
		}
		v := &item{name: k, n: i}
		_, had := want[k]
		if got := x.Add(v, k); got == had {
			t.Fatalf("step %d: Add(%q) got %v, want %v", i, k, got, !had)
		}
		if !had {
			want[k] = v
		}
		if g, ok := x.Get(k); !ok || g != want[k] {
			t.Fatalf("step %d: Get(%q) got (%v, %v), want %v", i, k, g, ok, want[k])
		}
	}
	if x.Len() != len(want) {
		t.Fatalf("Len got %d, want %d", x.Len(), len(want))
	}
	var keys []string
	for _, v := range x.All() {
		keys = append(keys, v.name)
		if want[v.name] != v {
			t.Errorf("All holds %q = %v, want %v", v.name, v, want[v.name])
		}
	}
	if !slices.IsSorted(keys) {
		t.Errorf("All got %q, want key order", keys)
	}
	if _, ok := x.Get("missing"); ok {
		t.Error("Get of a missing key got a value")
	}
}

// TestGrow: after Grow(n), n adds allocate nothing, and the values kept
// before stay.
func TestGrow(t *testing.T) {
	var x Index[*item, string]
	n := allocs.Least(5, func() func() {
		x = New(byName)
		x.Add(&item{name: "m"}, "m")
		vs := make([]*item, 100)
		for i := range vs {
			vs[i] = &item{name: "v" + strconv.Itoa(i)}
		}
		x.Grow(len(vs))
		return func() {
			for _, v := range vs {
				x.Add(v, v.name)
			}
		}
	})
	if n != 0 {
		t.Errorf("adding after Grow: got %d allocations, want 0", n)
	}
	if x.Len() != 101 {
		t.Errorf("Len got %d, want 101", x.Len())
	}
	if v, ok := x.Get("m"); !ok || v.name != "m" {
		t.Errorf("Get(m) after Grow got (%v, %v)", v, ok)
	}
}
