// Package secretflag is a repeatable command-line flag whose values may
// hold a password (EMAIL:PASSWORD): msimd's -account and msimircd's
// -msim-account. The flag package quotes a value its Set refuses in the
// error it prints, so List's Set takes any value, and Check refuses a
// malformed one after the parse, by its position, never showing it. It
// holds no state but the values; everything runs on the caller's
// goroutine.
package secretflag

import "fmt"

// List collects the values of a repeated flag. String never shows them.
type List []string

func (l *List) String() string { return fmt.Sprintf("%d accounts", len(*l)) }

// Set takes any value: see the package comment.
func (l *List) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// Repeatable marks the flag as repeatable for the command's help (its
// default is no value).
func (*List) Repeatable() bool { return true }

// Check returns an error naming the first value valid refuses by its
// position ("the 2nd -account is not EMAIL:PASSWORD"), name being the
// flag's and want what a value must be; nil if valid takes them all.
func (l List) Check(name, want string, valid func(string) bool) error {
	for i, v := range l {
		if !valid(v) {
			return fmt.Errorf("the %s -%s is not %s (not shown: it may hold a password)", ordinal(i+1), name, want)
		}
	}
	return nil
}

// ordinal writes n as "1st", "2nd", "3rd", "4th"…
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return fmt.Sprintf("%d%s", n, suffix)
}
