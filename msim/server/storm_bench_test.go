package server

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// BenchmarkLoginStorm logs 300 accounts in at once with the MSIM client the
// gateway uses, each listing its 100 nearest accounts on a ring (so most
// of its buddies log in with it), and logs them out again. One op is one
// login; the server and the clients share the process, so profile with
// -cpuprofile and focus on this package for the server's part.
func BenchmarkLoginStorm(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchLoginStorm(b, NewMemStore()) })
	b.Run("sqlite", func(b *testing.B) {
		st, err := OpenFileStore(filepath.Join(b.TempDir(), "msim.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchLoginStorm(b, st)
	})
}

func benchLoginStorm(b *testing.B, st Store) {
	const n, buddies = 300, 100
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.ErrorLevel) // as msimbench runs msimd
	srv, err := New(Config{SendQ: 1 << 16, MaxConnections: 4 * n, MaxConnectionsPerAddr: -1}, st, logrus.NewEntry(l))
	if err != nil {
		b.Fatal(err)
	}
	addr := serve(b, srv)
	uids := make([]msim.UID, n)
	for i := range uids {
		uids[i] = addAccount(b, srv, fmt.Sprintf("storm%03d@bench.invalid", i), "benchpw1", fmt.Sprintf("storm%03d", i))
	}
	for i, u := range uids {
		for d := 1; d <= buddies/2; d++ {
			for _, j := range []int{(i + d) % n, (i - d + n) % n} {
				if err := srv.store.PutContact(u, Contact{UID: uids[j], GroupName: "IM Friends", Position: d, Visibility: 1}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	log := logrus.NewEntry(l)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N / n {
		cls := make([]*msim.Client, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range cls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl, err := msim.Dial(ctx, msim.ClientConfig{Addr: addr, Email: fmt.Sprintf("storm%03d@bench.invalid", i), Password: "benchpw1", Log: log,
					Notify: func() {}})
				if err != nil {
					errs <- err
					return
				}
				cls[i] = cl
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		for _, cl := range cls {
			cl.Close()
		}
		for srv.reg.count() > 0 {
			runtime.Gosched()
		}
	}
}
