//go:build unix

package msim

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// readNowOf returns a function that reads what has arrived on r without
// waiting: one non-blocking read of the socket (the runtime's poller
// keeps it non-blocking). A read the runtime makes later tries the socket
// before it waits, so this read leaves it nothing to miss.
func readNowOf(r io.Reader) func([]byte) (int, bool) {
	if nr, ok := r.(nowReader); ok {
		return nr.readNow
	}
	sc, ok := r.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(p []byte) (int, bool) {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Read(int(fd), p)
				if rerr != unix.EINTR {
					return true // never wait
				}
			}
		})
		if err != nil || rerr != nil || n <= 0 {
			return 0, false // nothing yet, or the ordinary read will say what
		}
		return n, true
	}
}
