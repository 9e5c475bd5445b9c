package ircd

import "testing"

// TestPlainMessagePanicReleasesLock: a panic while a line's message runs
// under c.mu (here from a corrupt away index: any bug under the lock
// would do) must leave c.mu released, as run's deferred Unlock does on the
// general way. The reader recovers such a panic ("Internal error") and
// closeRead then takes c.mu: a lock left held hangs the reader, never
// closes the connection, and blocks every backend call on the client.
func TestPlainMessagePanicReleasesLock(t *testing.T) {
	for _, tc := range []struct{ way, line string }{
		{"general", "PRIVMSG  tom :hi"}, // two spaces: not the plain form
		{"plain", "PRIVMSG tom :hi"},
	} {
		c, _, done := plainClient(t, nil)
		c.mu.Lock()
		c.findUser("tom").away = 999 // awayOf panics: index out of range
		c.mu.Unlock()
		panicked := func() (p bool) {
			defer func() { p = recover() != nil }()
			c.handleLine([]byte(tc.line + "\r\n"))
			return false
		}()
		if !panicked {
			t.Fatalf("%s way: %q did not panic", tc.way, tc.line)
		}
		if !c.mu.TryLock() {
			t.Errorf("%s way: after a panic running %q, c.mu is still held", tc.way, tc.line)
		} else {
			c.mu.Unlock()
		}
		if c.lineID != "" {
			t.Errorf("%s way: after a panic running %q, lineID %q is left set", tc.way, tc.line, c.lineID)
		}
		done()
	}
}
