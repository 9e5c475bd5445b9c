package channel

import (
	"slices"
	"sync"
	"testing"
)

// closingIRC is a connection that records being closed.
type closingIRC struct {
	*fakeIRC
	mu      sync.Mutex
	reasons []string
}

func (f *closingIRC) Close(reason string) {
	f.mu.Lock()
	f.reasons = append(f.reasons, reason)
	f.mu.Unlock()
}

func (f *closingIRC) closedFor() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reasons)
}

// TestClientsClosedAsTheSessionEnds: a session asked to close its
// connections (closeClients: replaced by another session of the user,
// as becomeUser and Connect do) closes them though it ends first: asked,
// then ended before its loop took the ask (becomeUser cancels it right
// after); asked as it ends; asked once it has ended. None stays open on
// a session that no longer answers it.
func TestClientsClosedAsTheSessionEnds(t *testing.T) {
	const reason = "Replaced by a new connection"
	for _, tc := range []struct {
		name string
		end  func(r *rig)
	}{
		{"asked, then ended before the loop took it", func(r *rig) {
			r.s.closeClients(reason)
			r.s.cancel()
			r.s.shutdown() // the loop sees the end first
		}},
		{"asked as it ends", func(r *rig) {
			r.s.cancel()
			r.s.closeClients(reason)
			r.s.shutdown()
		}},
		{"asked once it has ended", func(r *rig) {
			r.s.cancel()
			r.s.shutdown()
			r.s.closeClients(reason)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			c := &closingIRC{fakeIRC: newFakeIRC()}
			attachNamed(r, c, "phone")
			tc.end(r)
			if got := c.closedFor(); len(got) != 1 || got[0] != reason {
				t.Errorf("the connection was closed for %q; want once, for %q", got, reason)
			}
		})
	}
}
