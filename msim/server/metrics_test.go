package server

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/msimircd/msimircd/msim"
)

// The helpers below read metrics from what a registry gathers, by their
// exported names and labels. (prometheus/testutil would do, but it needs a
// module go.mod does not require.)

// find returns the series name{labels} (label pairs as name, value, …) from
// reg, or nil.
func find(t *testing.T, reg *prometheus.Registry, name string, labels ...string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if maps.Equal(got, want) {
				return m
			}
		}
	}
	return nil
}

// value is a counter's or gauge's value; a missing series fails the test.
func value(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	m := find(t, reg, name, labels...)
	switch {
	case m == nil:
		t.Fatalf("no series %s%v", name, labels)
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

// series counts the series of the family name.
func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// wantValues checks counters or gauges: name{labels} → value.
func wantValues(t *testing.T, reg *prometheus.Registry, want []wantValue) {
	t.Helper()
	for _, w := range want {
		if got := value(t, reg, w.name, w.labels...); got != w.v {
			t.Errorf("%s%v: got %v, want %v", w.name, w.labels, got, w.v)
		}
	}
}

type wantValue struct {
	name   string
	labels []string
	v      float64
}

func metricsServer(t *testing.T, cfg Config) (*Server, string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	srv, addr := startServer(t, cfg, NewMemStore())
	return srv, addr, reg
}

func TestMetricsLogins(t *testing.T) {
	tests := []struct {
		name    string
		attempt func(t *testing.T, addr string)
		result  string // the login result counted
		session float64
	}{
		{"ok", func(t *testing.T, addr string) {
			c := login(t, addr, "alice@example.com", "Secret1")
			c.sync() // the count follows the lc 2
		}, "ok", 1},
		{"wrong password", func(t *testing.T, addr string) {
			c := dial(t, addr)
			if m := c.tryLogin("alice@example.com", "wrong"); !isError(msim.ErrCodeBadPassword)(m) {
				t.Fatalf("wrong password: got %v, want error 260", m)
			}
		}, "260", 0},
		{"unknown address", func(t *testing.T, addr string) {
			c := dial(t, addr)
			if m := c.tryLogin("nobody@example.com", "Secret1"); !isError(msim.ErrCodeBadPassword)(m) {
				t.Fatalf("unknown address: got %v, want error 260", m)
			}
		}, "260", 0},
		{"malformed", func(t *testing.T, addr string) {
			c := dial(t, addr)
			c.send(msim.NewInt("login2", msim.LoginAlgorithm).Add("username", "alice@example.com"))
			c.expect("error 1", isError(msim.ErrCodeParse))
		}, "1", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, addr, reg := metricsServer(t, Config{})
			addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			tc.attempt(t, addr)
			want := []wantValue{{"msimd_sessions", nil, tc.session}}
			for _, r := range []string{"ok", "1", "260"} {
				v := 0.0
				if r == tc.result {
					v = 1
				}
				want = append(want, wantValue{"msimd_logins_total", []string{"result", r}, v})
			}
			if tc.result != "ok" {
				want = append(want, wantValue{"msimd_protocol_errors_total", []string{"code", tc.result}, 1})
			}
			wantValues(t, reg, want)
		})
	}
}

func TestMetricsIMsOnlineOfflineAndFromStorage(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr, alice, bob := pair(t, Config{Metrics: reg})
	ims := func(routed, stored, fromStorage float64) []wantValue {
		return []wantValue{
			{"msimd_ims_routed_total", nil, routed},
			{"msimd_ims_stored_total", nil, stored},
			{"msimd_ims_delivered_from_storage_total", nil, fromStorage},
		}
	}

	exchange(t, alice, bob, "hi bob")
	alice.bm(msim.BMAction, bob.uid, "%typing%") // not an IM
	bob.expect("typing", isBM(msim.BMAction, alice.uid))
	alice.sync() // alice's requests are handled in order: both are counted
	wantValues(t, reg, ims(1, 0, 0))

	bob.send(msim.New("logout", "").AddInt("sesskey", bob.key))
	bob.expectClosed()
	alice.expect("bob offline", isPresence(bob.uid, msim.StatusOffline))
	alice.bm(msim.BMIM, bob.uid, "are you there?")
	alice.bm(msim.BMIM, bob.uid, "hello?")
	alice.sync()
	wantValues(t, reg, ims(1, 2, 0))

	bob = login(t, addr, "bob@example.com", "hunter2")
	bob.expect("stored IM", isBM(msim.BMIM, alice.uid))
	bob.sync() // the login, and its count, is over
	wantValues(t, reg, ims(1, 2, 2))
}

func TestMetricsIMsWithTom(t *testing.T) {
	srv, addr, reg := metricsServer(t, Config{Demo: true})
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	alice := login(t, addr, "alice@example.com", "Secret1")
	alice.bm(msim.BMIM, TomUID, "hi Tom")
	alice.expect("Tom's answer", isBM(msim.BMIM, TomUID))
	alice.sync() // Tom answers within alice's request
	// alice's IM to Tom and his answer to her.
	wantValues(t, reg, []wantValue{{"msimd_ims_routed_total", nil, 2}, {"msimd_ims_stored_total", nil, 0}})
}

func TestMetricsPresenceFanout(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		t.Run(strconv.Itoa(n)+" buddies", func(t *testing.T) {
			t.Parallel()
			srv, addr, reg := metricsServer(t, Config{})
			aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			var buddies []*client
			for i := range n {
				email := "buddy" + strconv.Itoa(i) + "@example.com"
				uid := addAccount(t, srv, email, "pw", "")
				if err := srv.store.PutContact(uid, Contact{UID: aUID, GroupName: "IM Friends", Visibility: 1}); err != nil {
					t.Fatal(err)
				}
				buddies = append(buddies, login(t, addr, email, "pw"))
			}
			// Someone who does not list alice is not told.
			addAccount(t, srv, "stranger@example.com", "pw", "stranger")
			stranger := login(t, addr, "stranger@example.com", "pw")

			alice := login(t, addr, "alice@example.com", "Secret1")
			alice.status(msim.StatusOnline, "here")
			for _, b := range buddies {
				b.expect("alice online", isPresence(aUID, msim.StatusOnline))
			}
			alice.sync() // the status, and its count, is over
			h := histogram(t, reg, "msimd_presence_fanout_recipients")
			if h.GetSampleCount() != 1 || h.GetSampleSum() != float64(n) {
				t.Errorf("after a status change: got %d changes, %v recipients; want 1, %d", h.GetSampleCount(), h.GetSampleSum(), n)
			}
			stranger.sync()
			none(t, stranger.takeSeen(), "alice's presence", isBM(msim.BMStatus, aUID))
			if n == 0 {
				return // nobody sees alice go: no barrier for her logout
			}

			alice.send(msim.New("logout", "").AddInt("sesskey", alice.key))
			for _, b := range buddies {
				b.expect("alice offline", isPresence(aUID, msim.StatusOffline))
			}
			// The logout counts in the registry's lock, which the
			// alerts request takes after it.
			buddies[0].persist(msim.CmdGet, msim.PersistAlerts, nil)
			h = histogram(t, reg, "msimd_presence_fanout_recipients")
			if h.GetSampleCount() != 2 || h.GetSampleSum() != float64(2*n) {
				t.Errorf("after a logout: got %d changes, %v recipients; want 2, %d", h.GetSampleCount(), h.GetSampleSum(), 2*n)
			}
			if got := value(t, reg, "msimd_sessions"); got != float64(n+1) {
				t.Errorf("sessions after alice's logout: got %v, want %d", got, n+1)
			}
		})
	}
}

func histogram(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	m := find(t, reg, name)
	if m == nil || m.Histogram == nil {
		t.Fatalf("no histogram %s", name)
	}
	return m.GetHistogram()
}

func TestMetricsPersistRequests(t *testing.T) {
	srv, addr, reg := metricsServer(t, Config{})
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	c := login(t, addr, "alice@example.com", "Secret1")
	tests := []struct {
		name   string
		cmd    int
		kind   msim.DSNLID
		body   msim.Dict
		label  string
		result string
	}{
		{"contact list", msim.CmdGet, msim.PersistContactList, nil, "1/0/1", "ok"},
		{"profile without a uid", msim.CmdGet, msim.PersistProfile, nil, "1/4/3", "error"},
		{"preferences", msim.CmdPut | msim.CmdAction, msim.PersistSetPrefs, msim.Dict{{Key: "Sound", Value: "False"}}, "2/1/10", "ok"},
		{"unknown kind", msim.CmdGet, msim.DSNLID{DSN: 99, LID: 98}, nil, "other", "error"},
		{"unknown kind again", msim.CmdPut, msim.DSNLID{DSN: 97, LID: 96}, nil, "other", "error"},
	}
	counts := map[[2]string]float64{}
	for _, tc := range tests {
		r := c.persist(tc.cmd, tc.kind, tc.body) // counted before the reply is queued
		if got := r.IsError(); got != (tc.result == "error") {
			t.Errorf("%s: error reply %v, want result %s (%v)", tc.name, got, tc.result, r)
		}
		counts[[2]string{tc.label, tc.result}]++
	}
	// A persist that does not parse.
	c.send(msim.New("persist", "").AddInt("sesskey", c.key).AddInt("cmd", 1))
	c.expect("error 1", isError(msim.ErrCodeParse))
	counts[[2]string{"other", "error"}]++

	for k, v := range counts {
		wantValues(t, reg, []wantValue{{"msimd_persist_requests_total", []string{"kind", k[0], "result", k[1]}, v}})
	}
	// Unknown kinds share one label: the series are the known kinds' and
	// "other"'s, ok and error each.
	if got, want := series(t, reg, "msimd_persist_requests_total"), 2*(len(persistKinds)+1); got != want {
		t.Errorf("persist series: got %d, want %d", got, want)
	}
}

// TestMetricsPersistKindsAnswered checks that every kind the metrics name
// is one the server answers (not with "Unknown request").
func TestMetricsPersistKindsAnswered(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	c := login(t, addr, "alice@example.com", "Secret1")
	seen := map[string]bool{}
	for _, k := range persistKinds {
		l := k.kindLabel()
		if seen[l] {
			t.Errorf("kind %s listed twice", l)
		}
		seen[l] = true
		if r := c.persist(k.op, k.dsn, nil); r.ErrorMessage() == string(errUnknownRequest) {
			t.Errorf("kind %s: the server does not know it", l)
		}
	}
}

func TestMetricsProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		do   func(t *testing.T, addr string)
		code int
	}{
		{"not logged in", Config{}, func(t *testing.T, addr string) {
			c := dial(t, addr)
			c.send(msim.NewInt("bm", msim.BMIM).AddInt("t", 1).Add("msg", "hi"))
			c.expect("error 2", isError(msim.ErrCodeNotLoggedIn))
		}, msim.ErrCodeNotLoggedIn},
		{"bad session key", Config{}, func(t *testing.T, addr string) {
			c := login(t, addr, "alice@example.com", "Secret1")
			c.send(msim.NewInt("status", 100).AddInt("sesskey", c.key+1))
			c.expect("error 3", isError(msim.ErrCodeBadSession))
		}, msim.ErrCodeBadSession},
		{"unknown request", Config{}, func(t *testing.T, addr string) {
			c := login(t, addr, "alice@example.com", "Secret1")
			c.send(msim.New("frobnicate", "").AddInt("sesskey", c.key))
			c.expect("error 1", isError(msim.ErrCodeParse))
		}, msim.ErrCodeParse},
		{"IM to nobody", Config{}, func(t *testing.T, addr string) {
			c := login(t, addr, "alice@example.com", "Secret1")
			c.bm(msim.BMIM, 424242, "hi")
			c.expect("error 4352", isError(msim.ErrCodeBadUID))
		}, msim.ErrCodeBadUID},
		{"connection refused", Config{MaxConnectionsPerAddr: 1}, func(t *testing.T, addr string) {
			dial(t, addr)
			c := connect(t, "", addr)
			c.expect("error 4354", isError(ErrCodeRefused))
		}, ErrCodeRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, addr, reg := metricsServer(t, tc.cfg)
			addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			tc.do(t, addr)
			var want []wantValue
			for _, c := range errorCodes {
				v := 0.0
				if c == tc.code {
					v = 1
				}
				want = append(want, wantValue{"msimd_protocol_errors_total", []string{"code", strconv.Itoa(c)}, v})
			}
			wantValues(t, reg, want)
		})
	}
}

func TestMetricsRegisteredTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Metrics: reg}, NewMemStore(), testLog(t)); err != nil {
		t.Fatalf("first server: %v", err)
	}
	_, err := New(Config{Metrics: reg}, NewMemStore(), testLog(t))
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second server on one registry: got %v, want an AlreadyRegisteredError", err)
	}
}

func TestCheckListening(t *testing.T) {
	srv, err := New(Config{}, NewMemStore(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := srv.CheckListening(ctx); !errors.Is(err, ErrNotServing) {
		t.Errorf("before Serve: got %v, want ErrNotServing", err)
	}
	dial(t, serve(t, srv)) // the accept loop runs
	if err := srv.CheckListening(ctx); err != nil {
		t.Errorf("serving: got %v, want nil", err)
	}
	sctx, cancel := context.WithTimeout(ctx, testWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.CheckListening(ctx); !errors.Is(err, ErrNotServing) {
		t.Errorf("after Shutdown: got %v, want ErrNotServing", err)
	}
}

// stuckStore is a Store whose Account waits for release and counts its
// calls.
type stuckStore struct {
	Store
	release chan struct{}
	calls   *atomic.Int32
}

func (s stuckStore) Account(uid msim.UID) (*Account, error) {
	s.calls.Add(1)
	<-s.release
	return s.Store.Account(uid)
}

func TestCheckStore(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T) Store {
		st, err := OpenFileStore(filepath.Join(t.TempDir(), "msim.db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	newServer := func(t *testing.T, st Store) *Server {
		srv, err := New(Config{}, st, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}

	t.Run("usable", func(t *testing.T) {
		fs := open(t)
		defer fs.Close()
		for _, st := range []Store{NewMemStore(), fs} {
			if err := newServer(t, st).CheckStore(ctx); err != nil {
				t.Errorf("%T: got %v, want nil", st, err)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		st := open(t)
		srv := newServer(t, st)
		st.Close()
		if err := srv.CheckStore(ctx); err == nil {
			t.Error("closed file store: got nil, want an error")
		}
	})
	t.Run("stuck", func(t *testing.T) {
		st := stuckStore{Store: NewMemStore(), release: make(chan struct{}), calls: new(atomic.Int32)}
		srv := newServer(t, st)
		for i := range 3 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			err := srv.CheckStore(cctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("probe %d of a stuck store: got %v, want DeadlineExceeded", i, err)
			}
		}
		close(st.release)
		if err := srv.CheckStore(ctx); err != nil {
			t.Errorf("after the store answers: got %v, want nil", err)
		}
		// The stuck read was shared; at most one more was made after it.
		if n := st.calls.Load(); n < 1 || n > 2 {
			t.Errorf("store reads: got %d, want 1 or 2", n)
		}
	})
}

func TestMetricsUnlistedValuesAndNil(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetricSet(reg, &Server{})
	if err != nil {
		t.Fatal(err)
	}
	m.login(77)
	m.protocolError(77)
	m.persistRequest(&msim.Persist{Cmd: msim.CmdGet, DSN: 50, LID: 51}, nil)
	wantValues(t, reg, []wantValue{
		{"msimd_logins_total", []string{"result", "other"}, 1},
		{"msimd_protocol_errors_total", []string{"code", "other"}, 1},
		{"msimd_persist_requests_total", []string{"kind", "other", "result", "ok"}, 1},
		{"msimd_sessions", nil, 0},
	})

	// Without a registry there is no set, and every hook is a no-op.
	if m, err := newMetricSet(nil, &Server{}); m != nil || err != nil {
		t.Fatalf("no registry: got %v, %v; want nil, nil", m, err)
	}
	var none *metricSet
	none.login(0)
	none.routedIM(msim.BMIM)
	none.storedIMs(1)
	none.deliveredFromStorage(1)
	none.lostIM(lostUntold)
	none.presenceFanout(1)
	none.persistRequest(nil, nil)
	none.sent(msim.ErrorMessage(1, false, "x"))
	none.protocolError(1)
}
