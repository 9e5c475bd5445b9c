package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValueAndSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_things_total", Help: "h"}, []string{"b", "a"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_seconds", Help: "h"})
	reg.MustRegister(cv, h)
	cv.WithLabelValues("x", "y").Add(2)
	h.Observe(1)
	h.Observe(2)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"t_things_total", []string{"a", "y", "b", "x"}, 2},
		{"t_things_total", []string{"b", "x", "a", "y"}, 2},
		{"t_things_total", []string{"a", "z", "b", "x"}, 0},
		{"t_seconds", nil, 2},
	} {
		if got := Value(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("Value(%s %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := Count(t, reg, "t_things_total"); got != 1 {
		t.Errorf("Count = %d, want 1", got)
	}
	if got, want := Series("m", "b", "2", "a", "1"), `m{a="1",b="2"}`; got != want {
		t.Errorf("Series = %s, want %s", got, want)
	}
}

func TestParseText(t *testing.T) {
	got, err := ParseText("# HELP m h\n# TYPE m counter\nm{a=\"1\",b=\"2\"} 3\nn 1.5e+06\n")
	if err != nil {
		t.Fatal(err)
	}
	if got[`m{a="1",b="2"}`] != 3 || got["n"] != 1.5e6 || len(got) != 2 {
		t.Errorf("got %v", got)
	}
	if _, err := ParseText("m{a=\"1\"} x\n"); err == nil {
		t.Error("a bad value was read")
	}
}
