// Small strings that live as long as an account's buddies, packed.

package channel

import (
	"strconv"
	"strings"

	"github.com/msimircd/msimircd/msim"
)

// packChunk is the least a strPack allocates at a time.
const packChunk = 512

// strPack hands out strings that share a few large allocations, so the
// masks (ident@host) of a contact list's virtual users are not each a small
// object among a login's garbage, keeping a span of it from being reused.
// A strings.Builder never rewrites bytes it has written: a string the pack
// gave stays valid when a later one starts a new buffer. Owned by the
// session goroutine.
type strPack struct{ b strings.Builder }

// grow makes room for n more bytes in the current buffer.
func (p *strPack) grow(n int) {
	if p.b.Cap()-p.b.Len() >= n {
		return
	}
	p.b = strings.Builder{} // the old buffer stays with the strings taken from it
	p.b.Grow(max(n, packChunk))
}

// maskOf is "ident@host" for the virtual user of a's buddy uid: a short
// plain user name as the ident, or "u" and the uid; "msim." and the uid
// as the host.
func (a *account) maskOf(userName string, uid msim.UID) string {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(uid), 10)
	ident, plain := plainIdent(userName)
	p := &a.strs
	p.grow(maskLen(ident, plain, len(d)))
	start := p.b.Len()
	if plain {
		p.b.WriteString(ident)
	} else {
		p.b.WriteByte('u')
		p.b.Write(d)
	}
	p.b.WriteString("@msim.")
	p.b.Write(d)
	return p.b.String()[start:]
}

// plainIdent is the user name made a nick, if it makes an ident.
func plainIdent(userName string) (string, bool) {
	ident := sanitizeNick(userName)
	return ident, ident != "" && len(ident) <= 10 && ident[0] != '_'
}

// maskLen is the length of a mask whose uid has digits digits.
func maskLen(ident string, plain bool, digits int) int {
	n := len("@msim.") + digits
	if plain {
		return n + len(ident)
	}
	return n + len("u") + digits
}

// maskSize is how much of a strPack maskOf takes for a buddy.
func maskSize(userName string, uid msim.UID) int {
	var digits [20]byte
	ident, plain := plainIdent(userName)
	return maskLen(ident, plain, len(strconv.AppendInt(digits[:0], int64(uid), 10)))
}
