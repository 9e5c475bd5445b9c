package msim

import (
	"io"
	"sync"
)

// burstReader stands between a connection and a Decoder's small read
// buffer (readBuf). A read that fills the buffer whole says more may be
// waiting (a contact list, a login's presences, a mailbox of offline
// IMs): the next read then takes what has arrived already, up to
// burstRead bytes at once, into a buffer lent by burstBufs, and the
// Decoder's reads are served from it, instead of one read of readBuf bytes
// each. That read never waits: when nothing has arrived the buffer goes
// back at once and the read goes to the connection as usual, so a reader
// waiting for the next message holds none; and the buffer goes back once
// its bytes are read. Reads that do not fill the buffer go straight to the
// connection, as before.
type burstReader struct {
	r io.Reader
	// now reads what has arrived already into p, without waiting; false
	// when nothing has (or it cannot tell, or the connection failed: the
	// ordinary read then says how). nil: r cannot, and bursts are read
	// readBuf bytes at a time.
	now   func(p []byte) (int, bool)
	lent  *[]byte // lent by burstBufs while it holds unread bytes
	b     []byte  // the unread bytes, in *lent
	more  bool    // the last read from r filled what it was given
	lends int     // buffers lent so far (for tests)
}

// newBurstReader returns a burstReader over r.
func newBurstReader(r io.Reader) *burstReader {
	return &burstReader{r: r, now: readNowOf(r)}
}

// nowReader is a reader that can read what has arrived without waiting
// (a test's connection).
type nowReader interface{ readNow(p []byte) (int, bool) }

// burstRead is how much a burstReader asks for at once in a burst.
const burstRead = 16 << 10

// burstBufs lends the buffers of burstReaders in a burst.
var burstBufs = sync.Pool{New: func() any { b := make([]byte, burstRead); return &b }}

func (br *burstReader) Read(p []byte) (int, error) {
	if len(br.b) > 0 {
		n := copy(p, br.b)
		br.b = br.b[n:]
		if len(br.b) == 0 {
			br.giveBack()
		}
		return n, nil
	}
	if br.more && br.now != nil && len(p) > 0 && len(p) < burstRead {
		br.more = false
		buf := burstBufs.Get().(*[]byte)
		if n, ok := br.now(*buf); ok {
			br.lent, br.b = buf, (*buf)[:n]
			br.lends++
			br.more = n == len(*buf)
			return br.Read(p)
		}
		burstBufs.Put(buf)
	}
	n, err := br.r.Read(p)
	br.more = n == len(p) && n > 0
	return n, err
}

// giveBack returns the lent buffer, read to the end.
func (br *burstReader) giveBack() {
	br.b = nil
	burstBufs.Put(br.lent)
	br.lent = nil
}
