package server

import (
	"html"
	"strings"
)

// toPlain reduces an IM body to its text: tags dropped, entities decoded.
func toPlain(markup string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(markup, '<')
		if i < 0 {
			b.WriteString(markup)
			break
		}
		j := strings.IndexByte(markup[i:], '>')
		if j < 0 {
			b.WriteString(markup)
			break
		}
		b.WriteString(markup[:i])
		markup = markup[i+j+1:]
	}
	return html.UnescapeString(b.String())
}

// fromPlain wraps plain text in the official client's markup.
func fromPlain(text string) string {
	return "<p><f f='Times' h='16'>" + html.EscapeString(text) + "</f></p>"
}
