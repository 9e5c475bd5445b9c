package channel_test

import (
	"testing"

	"github.com/msimircd/msimircd/internal/leakcheck"
)

// TestMain checks that no test leaves a goroutine behind: sessions, MSIM
// clients, dialers, timers and the servers of the stack all end.
func TestMain(m *testing.M) { leakcheck.Main(m) }
