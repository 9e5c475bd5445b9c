package main

import (
	"testing"
	"time"
)

// watcher is a client watching &me for want, fed lines by hand.
func watcher(want ...string) *ircClient {
	c := &ircClient{nick: "me", channel: "&me", want: map[string]bool{}, members: map[string]bool{},
		joined: make(chan struct{}), closed: make(chan struct{}), registered: make(chan struct{})}
	for _, w := range want {
		c.want[nickKey(w)] = true
	}
	return c
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestWatchedMembership: joined closes exactly when the NAMES is complete
// and every wanted nick is a voiced member, whatever the order of JOIN,
// MODE, PART, QUIT and NAMES lines, and missing counts the rest.
func TestWatchedMembership(t *testing.T) {
	tests := []struct {
		name        string
		want        []string
		lines       []string
		joined      bool
		missing     int
		firstNames  int // wanted nicks voiced at the first 366
		namesNeeded bool
	}{
		{"all voiced in NAMES", []string{"Bob", "carol"}, []string{
			":srv 353 me = &me :me +bob +Carol dave",
			":srv 366 me &me :End of /NAMES list.",
		}, true, 0, 2, false},
		{"voiced by MODE after NAMES", []string{"bob", "carol"}, []string{
			":me!u@h JOIN &me",
			":srv 353 me = &me :me +bob",
			":srv 366 me &me :End",
			":carol!u@h JOIN &me",
			":srv MODE &me +v carol",
		}, true, 0, 1, false},
		{"voice before NAMES waits for it", []string{"bob"}, []string{
			":bob!u@h JOIN &me",
			":srv MODE &me +v bob",
		}, false, 0, 0, true},
		{"devoiced again", []string{"bob", "carol"}, []string{
			":srv 353 me = &me :+bob carol",
			":srv 366 me &me :End",
			":srv MODE &me -v+v bob carol",
		}, false, 1, 1, false},
		{"voice of a non-member ignored", []string{"bob"}, []string{
			":srv 366 me &me :End",
			":srv MODE &me +v bob",
		}, false, 1, 0, false},
		{"parted and back", []string{"bob"}, []string{
			":srv 353 me = &me :@+bob",
			":bob!u@h PART &me :bye",
			":srv 366 me &me :End",
			":bob!u@h JOIN &me",
		}, false, 1, 0, false},
		{"quit then rejoined and voiced", []string{"bob", "carol"}, []string{
			":srv 353 me = &me :+bob +carol",
			":bob!u@h QUIT :gone",
			":srv 366 me &me :End",
			":bob!u@h JOIN &me",
			":srv MODE &me +v bob",
		}, true, 0, 1, false},
		{"other nicks and channels do not count", []string{"bob"}, []string{
			":srv 353 me = &other :+bob",
			":srv 353 me = &me :+dave +erin",
			":srv 366 me &me :End",
		}, false, 1, 0, false},
		{"nothing wanted", nil, []string{
			":srv 366 me &me :End",
		}, true, 0, 0, false},
		{"voiced twice counts once", []string{"bob", "carol"}, []string{
			":srv 353 me = &me :+bob",
			":srv 353 me = &me :+bob",
			":srv MODE &me +v bob",
			":srv 366 me &me :End",
		}, false, 1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := watcher(tc.want...)
			for _, l := range tc.lines {
				c.handle([]byte(l), time.Now())
			}
			if got := isClosed(c.joined); got != tc.joined {
				t.Errorf("joined: got %v, want %v", got, tc.joined)
			}
			if got := c.missing(); got != tc.missing {
				t.Errorf("missing: got %d, want %d", got, tc.missing)
			}
			if got := c.inFirstNames; got != tc.firstNames {
				t.Errorf("voiced at the first NAMES: got %d, want %d", got, tc.firstNames)
			}
			if got := !c.namesDone; got != tc.namesNeeded {
				t.Errorf("NAMES still awaited: got %v, want %v", got, tc.namesNeeded)
			}
		})
	}
}
