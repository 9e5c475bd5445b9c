// Package tomlkey finds where a key is set in a TOML file, for config
// errors that name the line: the TOML decoder reports a syntax error's
// line but not the line of a key it decoded. The config loaders of
// cmd/msimircd and cmd/msimd own what they look for; this package owns
// reading a file's lines as TOML does (comments, strings, multi-line
// strings).
package tomlkey

import "strings"

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
// "[[user]]"), or "".
func Header(code string) string {
	t := strings.TrimSpace(code)
	if !strings.HasPrefix(t, "[") {
		return ""
	}
	double := strings.HasPrefix(t, "[[")
	name := strings.TrimSpace(strings.Trim(t, "[]"))
	name = strings.ReplaceAll(name, " ", "")
	if double {
		return "[[" + name + "]]"
	}
	return "[" + name + "]"
}

// Key returns the key a line of Code sets, or "": dotted as written
// ("metrics.listen"), with the spaces and quotes around its parts left out.
func Key(code string) string {
	k, _, ok := strings.Cut(code, "=")
	if !ok || Header(code) != "" {
		return ""
	}
	k = strings.ReplaceAll(strings.TrimSpace(k), " ", "")
	return strings.ReplaceAll(strings.ReplaceAll(k, `"`, ""), "'", "")
}

// Line returns the line (from 1) of data that sets key name in table (""
// for the top level, "user.account" for a sub-table or an array of
// tables), written plainly in the table or dotted from an outer one; else
// the line of the table's header ([table.name] when the key is a table);
// else 0.
func Line(data []byte, table, name string) int {
	full := name
	if table != "" {
		full = table + "." + name
	}
	cur, header := "", 0
	for i, code := range Code(data) {
		if h := Header(code); h != "" {
			cur = strings.Trim(h, "[]")
			if cur == full || cur == table && header == 0 {
				header = i + 1
			}
			continue
		}
		k := Key(code)
		if k == "" {
			continue
		}
		if cur == table && k == name || cur == "" && k == full || cur != "" && cur+"."+k == full {
			return i + 1
		}
	}
	return header
}
