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
// idents and hosts of a contact list's virtual users are not each a small
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

// uid returns prefix followed by uid in decimal.
func (p *strPack) uid(prefix string, uid msim.UID) string {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(uid), 10)
	p.grow(len(prefix) + len(d))
	start := p.b.Len()
	p.b.WriteString(prefix)
	p.b.Write(d)
	return p.b.String()[start:]
}

// userOf is the ident and host of the virtual user of a's buddy uid:
// a short plain user name as the ident, or "u" and the uid; "msim." and
// the uid as the host.
func (a *account) userOf(userName string, uid msim.UID) (ident, host string) {
	ident, ok := plainIdent(userName)
	if !ok {
		ident = a.strs.uid("u", uid)
	}
	return ident, a.strs.uid("msim.", uid)
}

// plainIdent is the user name made a nick, if it makes an ident.
func plainIdent(userName string) (string, bool) {
	ident := sanitizeNick(userName)
	return ident, ident != "" && len(ident) <= 10 && ident[0] != '_'
}

// identHostLen is how much of a strPack userOf takes for a buddy.
func identHostLen(userName string, uid msim.UID) int {
	var digits [20]byte
	d := len(strconv.AppendInt(digits[:0], int64(uid), 10))
	n := len("msim.") + d
	if _, ok := plainIdent(userName); !ok {
		n += len("u") + d
	}
	return n
}
