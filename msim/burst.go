package msim

import (
	"io"
	"sync"
)

// burstReader stands between a connection and a Decoder's small read
// buffer (readBuf). A read that fills the buffer whole says more is
// waiting (a contact list, a login's presences, a mailbox of offline
// IMs): the next read then asks the connection for up to burstRead bytes
// at once, into a buffer lent by burstBufs, and the Decoder's reads are
// served from it, instead of one read of readBuf bytes each. The buffer
// goes back once its bytes are read, so an idle connection holds none;
// reads that do not fill the buffer go straight to the connection, as
// before.
type burstReader struct {
	r    io.Reader
	lent *[]byte // lent by burstBufs while it holds unread bytes
	b    []byte  // the unread bytes, in *lent
	err  error   // the error that came with them, returned once they are read
	more bool    // the last read from r filled what it was given
}

// burstRead is how much a burstReader asks for at once in a burst.
const burstRead = 16 << 10

// burstBufs lends the buffers of burstReaders in a burst.
var burstBufs = sync.Pool{New: func() any { b := make([]byte, burstRead); return &b }}

func (br *burstReader) Read(p []byte) (int, error) {
	if len(br.b) > 0 {
		n := copy(p, br.b)
		br.b = br.b[n:]
		if len(br.b) > 0 {
			return n, nil
		}
		br.giveBack()
		err := br.err
		br.err = nil
		return n, err
	}
	if br.err != nil { // (only with nothing read along)
		err := br.err
		br.err = nil
		return 0, err
	}
	if !br.more || len(p) == 0 || len(p) >= burstRead {
		n, err := br.r.Read(p)
		br.more = n == len(p) && n > 0
		return n, err
	}
	br.lent = burstBufs.Get().(*[]byte)
	n, err := br.r.Read(*br.lent)
	br.more = n == len(*br.lent)
	br.b, br.err = (*br.lent)[:n], err
	if n == 0 {
		br.giveBack()
		br.err = nil
		return 0, err
	}
	return br.Read(p)
}

// giveBack returns the lent buffer, read to the end.
func (br *burstReader) giveBack() {
	br.b = nil
	burstBufs.Put(br.lent)
	br.lent = nil
}
