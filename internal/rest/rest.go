// Package rest keeps the set of connection readers that can hand their
// wait to a fresh goroutine, so that one call reaches them all.
//
// A reader that handled input may have grown its goroutine's stack, and
// the Go runtime shrinks a waiting stack only by halves and only while
// three quarters of it are unused, which the frames of a blocked read
// never leave of a 4 KiB stack. A fresh goroutine starts at the size the
// runtime last found goroutines to use on average: after a burst, once
// the collector has seen the goroutines idle again, that is the smallest.
//
// Ownership: ircd's and msim's connection readers add themselves when
// they start and remove themselves when they end; the bridge's memory
// release (package channel) calls All after a burst of logins.
package rest

import (
	"sync"
	"time"
)

// Idle is how long a reader that has handled input waits for more before
// it hands its wait to a fresh goroutine of its own accord, without All
// (ircd.ReaderRest, msim.ReaderRest). A connection in steady use pays one
// more read deadline per Idle.
const Idle = time.Second

// Reader is a connection's reader. Rest asks it, without blocking, to
// hand its wait to a fresh goroutine if it is waiting for input (a reader
// busy with input ignores it or hands over once it waits again).
type Reader interface{ Rest() }

var (
	mu      sync.Mutex
	readers = map[Reader]struct{}{}
)

// Add registers r until Remove.
func Add(r Reader) {
	mu.Lock()
	readers[r] = struct{}{}
	mu.Unlock()
}

// Remove unregisters r.
func Remove(r Reader) {
	mu.Lock()
	delete(readers, r)
	mu.Unlock()
}

// All asks every registered reader to rest and returns how many it asked.
// Rest is called without the set's lock held.
func All() int {
	mu.Lock()
	all := make([]Reader, 0, len(readers))
	for r := range readers {
		all = append(all, r)
	}
	mu.Unlock()
	for _, r := range all {
		r.Rest()
	}
	return len(all)
}

// Len is how many readers are registered.
func Len() int {
	mu.Lock()
	defer mu.Unlock()
	return len(readers)
}
