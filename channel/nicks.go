package channel

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/msimircd/msimircd/ircd"
)

// NickLen is the longest nick the bridge makes (ircd's NICKLEN is larger).
const NickLen = 24

// nickKey folds a nick the way the IRC server compares them.
func nickKey(s string) string { return ircd.Nick(s).Key() }

func isNickSpecial(r rune) bool { return strings.ContainsRune("[]\\`_^{|}-", r) }

// sanitizeNick turns a user name or display name into a valid IRC nick, or
// "" if nothing usable is left. Accents are dropped (é → e), spaces and
// other characters become '_', and a leading digit or '-' gets a '_' before it.
func sanitizeNick(s string) string {
	if plainNick(s) {
		return s // what sanitizeNickFull would make of it, without the work
	}
	return sanitizeNickFull(s)
}

// sanitizeNickFull is sanitizeNick's work for any s.
func sanitizeNickFull(s string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue // combining accent
		case r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || isNickSpecial(r)):
			b.WriteRune(r)
		case unicode.IsSpace(r) || r == '.' || r == '@':
			b.WriteByte('_')
		}
	}
	n := strings.Trim(b.String(), "_")
	for strings.Contains(n, "__") {
		n = strings.ReplaceAll(n, "__", "_")
	}
	if n == "" {
		return ""
	}
	if n[0] == '-' || (n[0] >= '0' && n[0] <= '9') {
		n = "_" + n
	}
	if len(n) > NickLen {
		n = strings.TrimRight(n[:NickLen], "_")
	}
	if n == s {
		return s // kept with s's bytes, not a copy: a buddy's nick, ident and user name are often one string
	}
	return n
}

// plainNick reports whether s is a nick sanitizeNick would keep as it is,
// by a scan of its bytes: ASCII letters, digits and nick specials, lone
// '_' inside only, not starting with a digit or '-', and short enough.
// Most user names are; the rest take sanitizeNick's full path.
func plainNick(s string) bool {
	if s == "" || len(s) > NickLen || s[0] == '_' || s[len(s)-1] == '_' || s[0] == '-' || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_':
			if s[i-1] == '_' {
				return false
			}
		case strings.IndexByte("[]\\`^{|}-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validNick reports whether s can be used as a nick as it is: a valid IRC
// nick of at most NickLen. (Nicks the bridge makes are such nicks, without
// '_' at either end or twice in a row; one the user picks need not be.)
func validNick(s string) bool {
	return len(s) <= NickLen && ircd.Nick(s).Valid()
}

// baseNick chooses a buddy's nick: the user name, then the display name, then
// "u" + the uid.
func baseNick(userName, displayName string, uid int) string {
	if n := sanitizeNick(userName); n != "" && !allDigits(userName) {
		return n
	}
	if n := sanitizeNick(displayName); n != "" {
		return n
	}
	return "u" + strconv.Itoa(uid)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// uniqueNick returns base, or base with the smallest suffix _2, _3, … that
// taken does not report as used.
func uniqueNick(base string, taken func(key string) bool) string {
	if !taken(nickKey(base)) {
		return base
	}
	for i := 2; ; i++ {
		suf := "_" + strconv.Itoa(i)
		b := base
		if len(b)+len(suf) > NickLen {
			b = b[:NickLen-len(suf)]
		}
		if n := b + suf; !taken(nickKey(n)) {
			return n
		}
	}
}
