//go:build !unix

package msim

import "io"

// readNowOf returns r's non-blocking read when it has one; sockets here
// are read readBuf bytes at a time.
func readNowOf(r io.Reader) func([]byte) (int, bool) {
	if nr, ok := r.(nowReader); ok {
		return nr.readNow
	}
	return nil
}
