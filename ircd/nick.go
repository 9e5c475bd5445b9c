package ircd

import (
	"cmp"
	"strings"
	"unicode/utf8"
)

// Limits advertised in ISUPPORT and enforced on every name.
const (
	NickLen = 30
	// ClientNameLen is the longest client's name in an account name
	// ("user/client", soju's convention): no nick, but shown with the
	// user's in RPL_LOGGEDIN (twice), WHOIS, WHOX and extended-join, which
	// it must not push past 512 bytes.
	ClientNameLen = 64
	ChannelLen    = 64
	UserLen       = 16
	TopicLen      = 390
	HostLen       = 63
	// RealNameLen is the longest real name (NAMELEN): a virtual user's,
	// or what a client's SETNAME gives.
	RealNameLen = 200
	maxTargets  = 4 // TARGMAX for PRIVMSG, NOTICE and TAGMSG
)

// Nick is an IRC nickname. Compare nicks with Key, never with ==.
type Nick string

// Key is the nick casemapped with the rfc1459 casemapping that the server
// advertises in ISUPPORT (A-Z and []\~ fold to a-z and {}|^).
func (n Nick) Key() string { return foldCase(string(n)) }

// Valid reports whether n may be used as a nickname on this server: 1 to
// NickLen bytes of ASCII letters, digits and []\`_^{|}-, not starting with a
// digit or '-'.
func (n Nick) Valid() bool {
	s := string(n)
	if s == "" || len(s) > NickLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z':
		case strings.IndexByte("[]\\`_^{|}", b) >= 0:
		case b >= '0' && b <= '9', b == '-':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// foldCase applies the rfc1459 casemapping.
func foldCase(s string) string {
	for i := 0; i < len(s); i++ {
		if foldByte(s[i]) != s[i] {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = foldByte(b[j])
			}
			return string(b)
		}
	}
	return s
}

// foldByte is c in lower case (rfc1459: []\~ are the upper case of {}|^).
func foldByte(c byte) byte { return foldTable[c] }

// foldTable maps each byte to its lower case.
var foldTable = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c) + 'a' - 'A'
	}
	t['['], t[']'], t['\\'], t['~'] = '{', '}', '|', '^'
	return t
}()

// CompareNicks orders nicks as the server compares them: case folded, as
// strings.Compare orders their Keys.
func CompareNicks(a, b string) int { return compareFolded(a, b) }

// compareFolded compares a and b case folded, as strings.Compare compares
// foldCase(a) and foldCase(b), without making either.
func compareFolded(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] == b[i] {
			continue
		}
		if x, y := foldByte(a[i]), foldByte(b[i]); x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return cmp.Compare(len(a), len(b))
}

// validChannel reports whether s is a well-formed channel name: '#' or '&',
// then up to ChannelLen-1 bytes of UTF-8 (UTF8ONLY is advertised) without
// space, comma, colon, BEL, NUL, CR or LF.
func validChannel(s string) bool {
	if len(s) < 2 || len(s) > ChannelLen || !isChannel(s) {
		return false
	}
	return !strings.ContainsAny(s, " ,:\x07\x00\r\n") && utf8.ValidString(s)
}

// isChannel reports whether s names a channel (CHANTYPES=#&).
func isChannel(s string) bool { return s != "" && (s[0] == '#' || s[0] == '&') }

// validWord reports whether s can be a middle parameter (user, host): not
// empty, not starting with ':', no spaces or control bytes.
func validWord(s string, max int) bool {
	if s == "" || len(s) > max || s[0] == ':' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f || s[i] == '!' || s[i] == '@' {
			return false
		}
	}
	return true
}

// cleanUser makes a client-supplied USER name safe to use in a prefix.
func cleanUser(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < UserLen; i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '!' && c != '@' && c != ':' {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}
