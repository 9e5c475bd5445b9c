package markup

import (
	"slices"
	"strings"
)

// Smiley is one row of the smiley table (spec §5.3).
type Smiley struct {
	Name   string // value of <i n="…"/>
	Symbol string // its text form; case-sensitive
}

// smileys is the spec's table in Pidgin's order. The first row for a name
// gives its symbol; happi, tongy and winc are alternate names that are only
// decoded, never produced.
var smileys = [...]Smiley{
	{"bigsmile", ":D"}, {"bigsmile", ":-D"}, {"devil", "}:)"},
	{"frazzled", ":Z"}, {"geek", "B)"}, {"googles", "%)"}, {"growl", ":E"},
	{"laugh", ":))"}, {"happy", ":)"}, {"happy", ":-)"}, {"happi", ":)"},
	{"heart", ":X"}, {"mohawk", "-:"}, {"mad", "X("}, {"messed", "X)"},
	{"nerd", "Q)"}, {"oops", ":G"}, {"pirate", "P)"}, {"scared", ":O"},
	{"sidefrown", ":{"}, {"sinister", ":B"}, {"smirk", ":,"},
	{"straight", ":|"}, {"tongue", ":P"}, {"tongue", ":p"}, {"tongy", ":P"},
	{"upset", "B|"}, {"wink", ";-)"}, {"wink", ";)"}, {"winc", ";)"},
	{"worried", ":["}, {"kiss", ":x"},
}

// alternate names: decoded by ToPlain, never produced by FromPlain.
var alternate = map[string]bool{"happi": true, "tongy": true, "winc": true}

var (
	symbolOf    = map[string]string{} // name → first symbol
	outgoing    []Smiley              // FromPlain's symbols, longest first
	smileyStart [256]bool             // first bytes of outgoing symbols
	startingBy  [256][]Smiley         // outgoing by first byte, longest first
)

func init() {
	for _, s := range smileys {
		if _, ok := symbolOf[s.Name]; ok {
			continue
		}
		symbolOf[s.Name] = s.Symbol
		if !alternate[s.Name] {
			outgoing = append(outgoing, s)
		}
	}
	// Longest first; equal lengths keep table order. No two outgoing
	// symbols are equal, so the order among equals does not matter.
	slices.SortStableFunc(outgoing, func(a, b Smiley) int {
		return len(b.Symbol) - len(a.Symbol)
	})
	for _, s := range outgoing {
		smileyStart[s.Symbol[0]] = true
		special[s.Symbol[0]] = true
		startingBy[s.Symbol[0]] = append(startingBy[s.Symbol[0]], s)
	}
	specialEscaped = special
	specialEscaped['/'], specialEscaped['\\'] = true, true
}

// Symbol returns the text form of smiley name as ToPlain renders it: the
// symbol of the name's first row in the table (so "happi" gives ":)"), or
// "**name**" for a name not in the table.
func Symbol(name string) string {
	if s, ok := symbolOf[name]; ok {
		return s
	}
	return "**" + name + "**"
}

// writeSymbol writes Symbol(name) to b.
func writeSymbol(b *strings.Builder, name []byte) {
	if s, ok := symbolOf[string(name)]; ok {
		b.WriteString(s)
		return
	}
	b.WriteString("**")
	b.Write(name)
	b.WriteString("**")
}

// Smileys returns the whole table (spec §5.3) in Pidgin's order.
func Smileys() []Smiley {
	return append([]Smiley(nil), smileys[:]...)
}

// Outgoing returns the smileys FromPlain produces, longest symbol first:
// each name's first symbol, without the alternate names. Any other symbol
// (":-)", ";)", ":p"…) is sent as text.
func Outgoing() []Smiley {
	return append([]Smiley(nil), outgoing...)
}

// matchSmiley returns the outgoing smiley that s starts with, if any.
func matchSmiley(s string) (symbol, name string) {
	if s == "" {
		return "", ""
	}
	for _, sm := range startingBy[s[0]] {
		if strings.HasPrefix(s, sm.Symbol) {
			return sm.Symbol, sm.Name
		}
	}
	return "", ""
}
