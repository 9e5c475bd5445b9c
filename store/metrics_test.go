package store

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/internal/promtest"
)

const opMetric = "msimircd_store_operation_duration_seconds"

// TestWithMetrics: every operation through the wrapper is timed under its
// op (failed ones too) and returns what the store returned; every op shows
// from the start.
func TestWithMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := WithMetrics(engines[0].fresh(t).open(t, testKey(1)), reg)
	if got, want := promtest.Count(t, reg, opMetric), len(allOps)+len(historyOps)+len(leaseOps)+len(failureOps); got != want {
		t.Errorf("series before any operation: got %d, want one per op, %d", got, want)
	}
	mustCreate(t, s, "alice")
	if u, err := s.User(ctx, "alice"); err != nil || u.Name != "alice" {
		t.Errorf("User(alice) through the wrapper: got %+v, %v", u, err)
	}
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(nobody) through the wrapper: got %v, want ErrNotFound", err)
	}
	if _, err := s.HoldIM(ctx, "alice", "none@example.com", HeldIM{Text: "hi"}); err == nil {
		t.Error("HoldIM for an unknown account through the wrapper: got nil, want an error")
	}
	for _, tc := range []struct {
		op   string
		want float64
	}{
		{opCreateUser, 1},
		{opUser, 2},
		{opHoldIM, 1},
		{opLoadUser, 0},
	} {
		if got := promtest.Value(t, reg, opMetric, "op", tc.op); got != tc.want {
			t.Errorf("op %s: got %v observations, want %v", tc.op, got, tc.want)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping through the wrapper: %v", err)
	}
}

// TestMetricsOpsCoverStore: every method of Store but Ping and Close has
// its op, named after it in snake case, and there is no other op.
func TestMetricsOpsCoverStore(t *testing.T) {
	st := reflect.TypeFor[Store]()
	var want []string
	for i := range st.NumMethod() {
		if n := st.Method(i).Name; n != "Ping" && n != "Close" {
			want = append(want, snake(n))
		}
	}
	got := slices.Sorted(slices.Values(slices.Concat(allOps, historyOps, leaseOps, failureOps)))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ops: got %v, want %v", got, want)
	}
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) && unicode.IsLower(rune(s[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// TestWithMetricsOff: without a registry the store is returned as it is.
func TestWithMetricsOff(t *testing.T) {
	s := engines[0].fresh(t).open(t, testKey(1))
	if got := WithMetrics(s, nil); got != Store(s) {
		t.Errorf("WithMetrics(s, nil): got %T, want s itself", got)
	}
}

// TestPing: an open store answers Ping; a closed one fails it.
func TestPing(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			s := e.fresh(t).open(t, testKey(1))
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping of an open store: %v", err)
			}
			s.Close()
			if err := s.Ping(ctx); err == nil {
				t.Error("Ping of a closed store: got nil, want an error")
			}
		})
	}
}
