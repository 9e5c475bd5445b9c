// Package tomlkey finds where a key is set in a TOML file, for config
// errors that name the line: the TOML decoder reports a syntax error's
// line but not the line of a key it decoded. The config loaders of
// cmd/msimircd and cmd/msimd own what they look for; this package owns
// reading a file's lines as TOML does (comments, strings, multi-line
// strings).
package tomlkey

import (
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Code returns the file's lines as TOML reads them: comments removed,
// and lines that a multi-line string, array or inline table continues
// blanked, so that neither is taken for a key or a table header.
func Code(data []byte) []string {
	lines := strings.Split(string(data), "\n")
	out := make([]string, len(lines))
	var open string // the delimiter of a multi-line string still open
	depth := 0      // the arrays and inline tables of a value still open
	for i, l := range lines {
		var code strings.Builder
		inside := open != "" || depth > 0 // the line starts inside a value
		value := depth > 0                // brackets are a value's, not a header's
		for j := 0; j < len(l); {
			switch {
			case open != "":
				if l[j] == '\\' && open == `"""` {
					j += 2
					continue
				}
				if strings.HasPrefix(l[j:], open) {
					j += len(open)
					open = ""
					continue
				}
				j++
			case strings.HasPrefix(l[j:], `"""`), strings.HasPrefix(l[j:], "'''"):
				open = l[j : j+3]
				code.WriteString(open)
				j += 3
			case l[j] == '"' || l[j] == '\'':
				q := l[j]
				k := j + 1
				for k < len(l) && l[k] != q {
					if q == '"' && l[k] == '\\' {
						k++
					}
					k++
				}
				k = min(k+1, len(l))
				code.WriteString(l[j:k])
				j = k
			case l[j] == '#':
				j = len(l)
			default:
				depth, value = nest(l[j], depth, value)
				code.WriteByte(l[j])
				j++
			}
		}
		if !inside {
			out[i] = code.String()
		}
	}
	return out
}

// nest follows the brackets of a value, c being a byte of code outside
// strings: after a key's '=', or on a line a value continues, '[' and '{'
// open an array or inline table and ']' and '}' close one; before the
// '=' they are a table header's.
func nest(c byte, depth int, value bool) (int, bool) {
	switch {
	case c == '=':
		return depth, true
	case !value:
	case c == '[' || c == '{':
		depth++
	case (c == ']' || c == '}') && depth > 0:
		depth--
	}
	return depth, value
}

// Header returns the table header a line of Code holds ("[irc]",
// "[[user]]"), or "": its parts written as the TOML decoder writes a key
// (see Key).
func Header(code string) string {
	parts, double, ok := headerParts(code)
	switch {
	case !ok:
		return ""
	case double:
		return "[[" + toml.Key(parts).String() + "]]"
	}
	return "[" + toml.Key(parts).String() + "]"
}

// headerParts returns the key parts of a table header, and whether it is
// an array of tables' ([[name]]).
func headerParts(code string) (parts []string, double, ok bool) {
	t := strings.TrimLeft(code, " \t")
	open, closing := "[", "]"
	if strings.HasPrefix(t, "[[") {
		open, closing = "[[", "]]"
	}
	if !strings.HasPrefix(t, open) {
		return nil, false, false
	}
	parts, rest, ok := cutKey(t[len(open):])
	if !ok || !strings.HasPrefix(rest, closing) {
		return nil, false, false
	}
	return parts, open == "[[", true
}

// Key returns the key a line of Code sets, or "": dotted as written
// ("metrics.listen"), with the spaces around its parts left out and each
// part quoted only when it is not bare, as the TOML decoder writes a key
// (toml.Key.String): `"a.b" = 1` sets "a.b", not the key b of table a.
func Key(code string) string {
	parts, ok := keyParts(code)
	if !ok {
		return ""
	}
	return toml.Key(parts).String()
}

// keyParts returns the parts of the key a line of Code sets.
func keyParts(code string) ([]string, bool) {
	parts, rest, ok := cutKey(code)
	if !ok || !strings.HasPrefix(rest, "=") {
		return nil, false
	}
	return parts, true
}

// cutKey reads the dotted key s starts with (spaces around its parts
// allowed) and returns its parts, unquoted, and what follows it, spaces
// skipped. A part is bare (letters, digits, '_' and '-'), a basic string
// ("…", with escapes) or a literal one ('…'); inside a string '=', '.',
// spaces and brackets are the part's own.
func cutKey(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		var part string
		if part, s, ok = cutPart(s); !ok {
			return nil, "", false
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

// cutPart reads one part of a key from the start of s.
func cutPart(s string) (part, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	switch s[0] {
	case '\'':
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", "", false
		}
		return s[1 : 1+end], s[2+end:], true
	case '"':
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				return unescape(s[1:i]), s[i+1:], true
			}
		}
		return "", "", false
	}
	n := 0
	for n < len(s) && bare(s[n]) {
		n++
	}
	return s[:n], s[n:], n > 0
}

func bare(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// unescape reads the escapes of a basic string; one TOML does not have
// is kept as written.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		if r, ok := escapes[s[i]]; ok {
			b.WriteByte(r)
			continue
		}
		if n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[i]]; n > 0 && i+n < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32); err == nil {
				b.WriteRune(rune(v))
				i += n
				continue
			}
		}
		b.WriteByte('\\')
		b.WriteByte(s[i])
	}
	return b.String()
}

// escapes are a basic string's one-letter escapes.
var escapes = map[byte]byte{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', 'e': 0x1b, '"': '"', '\\': '\\'}

// Line returns the line (from 1) of data that sets the key whose parts
// (unquoted) are key: the last one the key's name, the others its table
// (a sub-table or an array of tables: "user", "account" for
// [[user.account]]), written plainly in the table or dotted from an outer
// one; else the line of the table's header ([table.name] when the key is
// a table); else 0.
func Line(data []byte, key ...string) int {
	if len(key) == 0 {
		return 0
	}
	table := key[:len(key)-1]
	var cur []string
	header := 0
	for i, code := range Code(data) {
		if h, _, ok := headerParts(code); ok {
			cur = h
			if slices.Equal(cur, key) || slices.Equal(cur, table) && header == 0 {
				header = i + 1
			}
			continue
		}
		if k, ok := keyParts(code); ok && slices.Equal(append(slices.Clip(cur), k...), key) {
			return i + 1
		}
	}
	return header
}
