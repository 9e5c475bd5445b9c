// Package cmdhelp renders a command's manual twice from one description:
// as the text -help prints and as a man(7) page. The flags come from the
// command's flag.FlagSet (VisitAll), so neither rendering can miss a flag
// or show a stale default. It holds no state; everything runs on the
// caller's goroutine.
package cmdhelp

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Page is a command's manual.
type Page struct {
	Name        string   // the command, e.g. "msimircd"
	Summary     string   // what it is, in one line without a final period
	Synopsis    []string // usage lines, each starting with the command's name
	Description []string // paragraphs
	Flags       *flag.FlagSet
	Sections    []Section // after the flags: files, signals, exit status…
}

// Section is a titled part of the page after the flags.
type Section struct {
	Title      string   // "Signals"; upper-cased in the man page
	Paragraphs []string // before the items
	Items      []Item
	Pre        string // preformatted lines, after the items
}

// Item is a term and its explanation, e.g. a signal or a config section.
type Item struct{ Term, Text string }

// Repeatable is implemented by flag values that collect every use of their
// flag; their default is shown as "none" instead of their String.
type Repeatable interface{ Repeatable() bool }

// Default is the default of f as the page shows it: the FlagSet's
// DefValue, or "none" when that is empty or f is repeatable.
func Default(f *flag.Flag) string {
	if r, ok := f.Value.(Repeatable); ok && r.Repeatable() {
		return "none"
	}
	if f.DefValue == "" {
		return "none"
	}
	return f.DefValue
}

// flagText is f's usage with its default: "(default X)" added, unless
// the FlagSet's default is none and the usage already says what happens
// without the flag in a "(default…" of its own (e.g. "the config's").
func flagText(f *flag.Flag, usage string) string {
	d := Default(f)
	if d == "none" && strings.Contains(usage, "(default") {
		return usage
	}
	return fmt.Sprintf("%s (default %s)", usage, d)
}

// flagTerm is "-name ARG" (ARG from a back-quoted word in the usage, or
// the value's type) and the usage without the quotes.
func flagTerm(f *flag.Flag) (name, arg, usage string) {
	arg, usage = flag.UnquoteUsage(f)
	return "-" + f.Name, arg, usage
}

// width is the text's right margin; indent starts an explanation.
const (
	width  = 79
	indent = "      "
)

// WriteText writes the -help text.
func (p *Page) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "%s: %s.\n\nUsage:\n", p.Name, p.Summary)
	for _, s := range p.Synopsis {
		fmt.Fprintf(b, "  %s\n", s)
	}
	for _, para := range p.Description {
		b.WriteString("\n")
		wrap(b, para, "", "")
	}
	if p.Flags != nil {
		b.WriteString("\nFlags:\n")
		p.Flags.VisitAll(func(f *flag.Flag) {
			name, arg, usage := flagTerm(f)
			fmt.Fprintf(b, "  %s\n", strings.TrimSpace(name+" "+arg))
			wrap(b, flagText(f, usage), indent, indent)
		})
	}
	for _, s := range p.Sections {
		fmt.Fprintf(b, "\n%s:\n", s.Title)
		for i, para := range s.Paragraphs {
			if i > 0 {
				b.WriteString("\n")
			}
			wrap(b, para, "  ", "  ")
		}
		for _, it := range s.Items {
			if len(it.Term) < len(indent)-2-1 { // fits before the text, with a space
				wrap(b, it.Text, "  "+it.Term+indent[2+len(it.Term):], indent)
				continue
			}
			fmt.Fprintf(b, "  %s\n", it.Term)
			wrap(b, it.Text, indent, indent)
		}
		for l := range strings.Lines(s.Pre) {
			fmt.Fprintf(b, "  %s", strings.TrimRight(l, " ")) // Lines keeps the newline
		}
		if s.Pre != "" && !strings.HasSuffix(s.Pre, "\n") {
			b.WriteString("\n")
		}
	}
	return b.Flush()
}

// wrap writes text filled to the margin, its first line after first and
// the others after rest.
func wrap(b *bufio.Writer, text, first, rest string) {
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
}

// WriteMan writes the page in man(7) format, dated date (YYYY-MM-DD).
func (p *Page) WriteMan(w io.Writer, date string) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, ".\\\" Generated from %s -help's description; do not edit: see %s's help.go.\n", p.Name, p.Name)
	fmt.Fprintf(b, ".TH %s 1 \"%s\" %s\n", strings.ToUpper(p.Name), date, p.Name)
	fmt.Fprintf(b, ".SH NAME\n%s \\- %s\n", p.Name, manText(p.Summary))
	b.WriteString(".SH SYNOPSIS\n")
	for i, s := range p.Synopsis {
		if i > 0 {
			b.WriteString(".br\n")
		}
		cmd, args, _ := strings.Cut(s, " ")
		fmt.Fprintf(b, ".B %s\n", cmd)
		if args != "" {
			b.WriteString(manText(args) + "\n")
		}
	}
	b.WriteString(".SH DESCRIPTION\n")
	manParagraphs(b, p.Description)
	if p.Flags != nil {
		b.WriteString(".SH OPTIONS\n")
		p.Flags.VisitAll(func(f *flag.Flag) {
			name, arg, usage := flagTerm(f)
			if arg == "" {
				fmt.Fprintf(b, ".TP\n.B %s\n", manArg(name))
			} else {
				fmt.Fprintf(b, ".TP\n.BI %s \" %s\"\n", manArg(name), manArg(arg))
			}
			b.WriteString(manText(flagText(f, usage)) + "\n")
		})
	}
	for _, s := range p.Sections {
		fmt.Fprintf(b, ".SH %s\n", strings.ToUpper(manArg(s.Title)))
		manParagraphs(b, s.Paragraphs)
		for _, it := range s.Items {
			fmt.Fprintf(b, ".TP\n.B %s\n%s\n", manArg(it.Term), manText(it.Text))
		}
		if s.Pre != "" {
			if len(s.Paragraphs)+len(s.Items) > 0 {
				b.WriteString(".PP\n")
			}
			b.WriteString(".nf\n")
			for l := range strings.Lines(s.Pre) {
				b.WriteString(manText(strings.TrimRight(l, " \n")) + "\n")
			}
			b.WriteString(".fi\n")
		}
	}
	return b.Flush()
}

func manParagraphs(b *bufio.Writer, paras []string) {
	for i, para := range paras {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(manText(strings.Join(strings.Fields(para), " ")) + "\n")
	}
}

// manText escapes text for a man page's text line: backslashes, a hyphen
// that starts a word (a flag: a minus sign, so it can be copied), a
// period or an apostrophe that would make the line a request, and every
// character past ASCII (as \[uXXXX]: groff reads its input as Latin-1
// unless told otherwise, mandoc as ASCII).
func manText(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-' && (i == 0 || strings.IndexByte(" ([|\"'`", s[i-1]) >= 0):
			b.WriteString(`\-`)
		case r >= utf8.RuneSelf:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	return out
}

// manArg escapes text for one argument of a macro: as manText, with
// double quotes spelled out, and quoted when it has spaces.
func manArg(s string) string {
	t := strings.ReplaceAll(manText(s), `"`, `\(dq`)
	if strings.ContainsAny(t, " \t") {
		return `"` + t + `"`
	}
	return t
}

// DateOf returns the date of a man page WriteMan wrote (the third
// argument of its .TH line), or "" if there is none.
func DateOf(man string) string {
	for l := range strings.Lines(man) {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == ".TH" {
			return strings.Trim(f[3], `"`)
		}
	}
	return ""
}

// SetUsage sets fs's Usage: -help or -h writes the page that page builds
// to stdout (and fs.Parse returns flag.ErrHelp); a bad flag, once the flag
// package has written its error to fs's output, adds the usage lines and a
// pointer to -help there. Call it after fs.SetOutput, if any.
func SetUsage(fs *flag.FlagSet, stdout io.Writer, page func() *Page) {
	out := &noteWriter{w: fs.Output()}
	fs.SetOutput(out)
	fs.Usage = func() {
		if !out.wrote { // the flag package reports errors before calling Usage
			_ = page().WriteText(stdout)
			return
		}
		out.wrote = false
		p := page()
		fmt.Fprintf(out.w, "usage: %s\n", strings.Join(p.Synopsis, "\n       "))
		fmt.Fprintf(out.w, "%s -help prints the whole manual.\n", p.Name)
	}
}

// noteWriter notes that something was written through it.
type noteWriter struct {
	w     io.Writer
	wrote bool
}

func (n *noteWriter) Write(p []byte) (int, error) {
	n.wrote = true
	return n.w.Write(p)
}
