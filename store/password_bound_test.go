package store

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// TestArgon2ConcurrencyBounded: however many logins check a password at
// once, at most runtime.GOMAXPROCS(0) argon2id computations (each of
// hashMemory KiB for HashPassword's hashes) run at the same time; the
// others wait for a slot. Without the bound, memory grows with the number
// of concurrent logins of a user who knows their password.
func TestArgon2ConcurrencyBounded(t *testing.T) {
	// A cheap hash (m=64 KiB, t=1), so the real argon2id below is quick.
	salt := []byte("saltsalt")
	key := argon2.IDKey([]byte("pw"), salt, 1, 64, 1, 16)
	h := "$argon2id$v=19$m=64,t=1,p=1$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)

	var inFlight, peak, calls atomic.Int64
	orig := idKey
	t.Cleanup(func() { idKey = orig })
	idKey = func(password, salt []byte, time_, memory uint32, threads uint8, keyLen uint32) []byte {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		return orig(password, salt, time_, memory, threads, keyLen)
	}

	const checks, hashes = 64, 4
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, checks+hashes)
	for range checks {
		wg.Go(func() {
			<-start
			errs <- CheckPassword(h, "pw")
		})
	}
	for range hashes {
		wg.Go(func() {
			<-start
			_, err := HashPassword("correct horse")
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("CheckPassword(right)/HashPassword: got %v, want nil", err)
		}
	}
	if got := calls.Load(); got != checks+hashes {
		t.Errorf("argon2id calls: got %d, want %d", got, checks+hashes)
	}
	bound := int64(runtime.GOMAXPROCS(0))
	t.Logf("peak argon2id in flight: %d (bound %d)", peak.Load(), bound)
	if p := peak.Load(); p > bound || p < 1 {
		t.Errorf("argon2id computations in flight at once: peak %d, want 1..%d (GOMAXPROCS)", p, bound)
	}
}
