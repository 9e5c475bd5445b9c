package ircd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// TestListNumericsFit: with a long server name and nick, and users with
// long masks, every numeric that lists things (MONITOR's 730-732 and 734,
// WHOIS's 319, USERHOST's 302, ISON's 303) keeps within 512 bytes, split
// over as many lines as it takes, and every item arrives whole; ISON
// answers every nick of a full line, given as one parameter or many.
func TestListNumericsFit(t *testing.T) {
	t.Parallel()
	c, fc := longNamesClient(t)
	c.keep = true

	// Users with the longest masks, all online, in many long channels.
	var nicks, masks, chans []string
	for i := range 40 {
		n := fmt.Sprintf("u%03d%s", i, strings.Repeat("x", NickLen-4))
		ident, host := strings.Repeat("i", UserLen), fmt.Sprintf("h%03d%s", i, strings.Repeat("h", HostLen-4))
		if err := fc.c.AddUser(User{Nick: n, Mask: ident + "@" + host, RealName: "R"}); err != nil {
			t.Fatal(err)
		}
		nicks, masks = append(nicks, n), append(masks, n+"!"+ident+"@"+host)
	}
	for i := range 30 {
		ch := fmt.Sprintf("#c%02d%s", i, strings.Repeat("c", ChannelLen-4))
		if err := fc.c.CreateChannel(ch, ""); err != nil {
			t.Fatal(err)
		}
		fc.c.JoinUser(ch, nicks[0], true)
		chans = append(chans, "+"+ch)
	}
	c.sync(t)
	c.raw = nil

	// items gathers the items of every line of code, split at sep from the
	// parameter at i (-1: the last).
	items := func(got []string, code string, i int, sep string) []string {
		t.Helper()
		var out []string
		for _, l := range got {
			m := irc.MustParseMessage(strings.TrimRight(l, "\r\n"))
			if m.Command != code {
				continue
			}
			p := m.Trailing()
			if i >= 0 {
				p = m.Param(i)
			}
			out = append(out, strings.Split(p, sep)...)
		}
		return out
	}
	run := func(lines ...string) []string {
		t.Helper()
		c.raw = nil
		c.send(t, lines...)
		c.sync(t)
		got := c.raw
		for _, l := range got {
			if l = strings.TrimRight(l, "\r\n"); len(l)+2 > 512 {
				t.Errorf("line of %d bytes: %.80q…", len(l)+2, l)
			}
		}
		return got
	}
	same := func(what string, got, want []string) {
		t.Helper()
		if slices.Equal(got, want) {
			return
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("%s: got %d items, item %d %q, want %d, item %d %q", what, len(got), i, got[i], len(want), i, want[i])
				return
			}
		}
		t.Errorf("%s: got %d items, want %d", what, len(got), len(want))
	}

	got := run("MONITOR + " + strings.Join(nicks[:15], ","))
	same("730", items(got, "730", -1, ","), masks[:15])
	run("MONITOR + " + strings.Join(nicks[15:30], ","))
	got = run("MONITOR L")
	same("732", items(got, "732", -1, ","), nicks[:30])
	got = run("MONITOR S")
	same("730 of S", items(got, "730", -1, ","), masks[:30])

	// A list nearly full, then more than it takes: 734 names all the rest.
	var more []string
	for i := range MonitorLimit - 30 - 1 {
		more = append(more, fmt.Sprintf("w%d", i))
	}
	for len(more) > 0 {
		n := min(len(more), 80)
		run("MONITOR + " + strings.Join(more[:n], ","))
		more = more[n:]
	}
	refused := nicks[31:]
	for i := range 5 {
		refused = append(refused, fmt.Sprintf("z%03d%s", i, strings.Repeat("z", NickLen-4)))
	}
	got = run("MONITOR + " + nicks[30] + "," + strings.Join(refused, ","))
	same("730 before the limit", items(got, "730", -1, ","), masks[30:31])
	same("734", items(got, "734", 2, ","), refused)
	for _, l := range got {
		if m := irc.MustParseMessage(strings.TrimRight(l, "\r\n")); m.Command == "734" && m.Trailing() != "Monitor list is full" {
			t.Errorf("734 %q: want its text whole", l)
		}
	}

	got = run("WHOIS " + nicks[0])
	same("319", items(got, "319", -1, " "), chans)

	got = run("USERHOST " + strings.Join(nicks[:5], " "))
	var want []string
	for _, m := range masks[:5] {
		want = append(want, strings.Replace(m, "!", "=+", 1))
	}
	same("302", items(got, "302", -1, " "), want)

	var ison []string // as many as a client's line holds
	for _, n := range nicks {
		if len("ISON :")+len(strings.Join(append(ison, n), " ")) > maxBodyLen {
			break
		}
		ison = append(ison, n)
	}
	got = run("ISON :" + strings.Join(ison, " "))
	same("303", items(got, "303", -1, " "), ison)
	// The nicks as separate parameters, more than 15, and then with a
	// trailing one after them: each still answered.
	if len(ison) <= maxParams {
		t.Fatalf("ISON of %d nicks: want more than %d", len(ison), maxParams)
	}
	got = run("ISON " + strings.Join(ison, " "))
	same("303 of parameters", items(got, "303", -1, " "), ison)
	got = run("ISON " + strings.Join(ison[:len(ison)-2], " ") + " :" + strings.Join(ison[len(ison)-2:], " "))
	same("303 of parameters and a trailing one", items(got, "303", -1, " "), ison)
}

// TestNumericListOversizedItem: numericList keeps every line within 512
// bytes whatever the length of an item: one too long for a line goes on a
// line of its own, cut to fit at a UTF-8 boundary, and a last parameter
// after the list arrives whole; the items that fit arrive whole, in order.
func TestNumericListOversizedItem(t *testing.T) {
	t.Parallel()
	c, fc := longNamesClient(t)
	ascii, wide := strings.Repeat("a", 600), strings.Repeat("é", 300) // 600 bytes each
	items := []string{"one", ascii, "two", wide, "three"}
	for _, tc := range []struct {
		name, sep, after string
	}{
		{"list then a last parameter", ",", "Monitor list is full"},
		{"list last", " ", ""},
	} {
		c.keep, c.raw = true, nil
		fc.c.mu.Lock()
		fc.c.numericList(irc.ERR_MONLISTFULL, []string{"512"}, items, tc.sep, tc.after)
		fc.c.mu.Unlock()
		c.sync(t)
		var got []string
		var lens []int
		for _, l := range c.raw {
			l = strings.TrimRight(l, "\r\n")
			m := irc.MustParseMessage(l)
			if m.Command != irc.ERR_MONLISTFULL {
				continue
			}
			if len(l)+2 > 512 {
				t.Errorf("%s: line of %d bytes", tc.name, len(l)+2)
			}
			list := m.Trailing()
			if tc.after != "" {
				if len(m.Params) != 4 || m.Params[3] != tc.after {
					t.Errorf("%s: got params %.80q, want the list, then %q whole", tc.name, m.Params, tc.after)
				}
				list = m.Param(2)
			}
			got, lens = append(got, list), append(lens, len(l)+2)
		}
		if len(got) != 5 || got[0] != "one" || got[2] != "two" || got[4] != "three" {
			t.Fatalf("%s: got lists %.80q, want one, the first long item, two, the second, three", tc.name, got)
		}
		// Each long item fills its line, as much of it as fits (but for
		// the colon a last parameter without a space does without, and
		// the rest of a rune).
		if !strings.HasPrefix(ascii, got[1]) || lens[1] < 511 {
			t.Errorf("%s: got %d bytes of the first long item on a line of %d, want the line filled", tc.name, len(got[1]), lens[1])
		}
		if !strings.HasPrefix(wide, got[3]) || !utf8.ValidString(got[3]) || lens[3] < 510 {
			t.Errorf("%s: got %d bytes of the second long item on a line of %d, want whole runes filling the line", tc.name, len(got[3]), lens[3])
		}
	}
}

// longNamesClient registers a client whose nick is NickLen bytes with a
// server whose name is HostLen bytes: every line's prefix as long as it
// gets.
func longNamesClient(t *testing.T) (*tclient, *fakeConn) {
	t.Helper()
	cfg := testConfig()
	cfg.ServerName = "irc." + strings.Repeat("s", HostLen-len("irc..test")) + ".test" // HostLen bytes
	b := newBackend()
	addr, _ := startServer(t, cfg, b)
	c, fc, _ := register(t, addr, b, "m"+strings.Repeat("e", NickLen-1))
	return c, fc
}

// TestRepliesToLongWordsFit: a reply that repeats a word of the client's
// as a middle parameter (a target, a command, a mask: as long as the
// client's line allows) keeps within 512 bytes, labeled or not: the word
// is cut, at a rune's boundary, and the reply's text stays whole.
func TestRepliesToLongWordsFit(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, _, _ := register(t, addr, b, "me", "batch", "labeled-response", "draft/multiline")
	c.keep = true
	word := strings.Repeat("é", 245) // 490 bytes
	half := strings.Repeat("é", 120) // 240 bytes
	for _, tc := range []struct {
		lines []string
		code  string // the reply whose text is checked
		text  string
	}{
		{[]string{"PRIVMSG " + word + " :hi"}, irc.ERR_NOSUCHNICK, "No such nick/channel"},
		{[]string{"PRIVMSG #" + word + " :hi"}, irc.ERR_NOSUCHCHANNEL, "No such channel"},
		{[]string{"WHOIS " + word}, irc.RPL_ENDOFWHOIS, "End of /WHOIS list."},
		{[]string{"WHOWAS " + word}, irc.ERR_WASNOSUCHNICK, "There was no such nickname"},
		{[]string{"NICK " + word}, irc.ERR_ERRONEUSNICKNAME, "Erroneous nickname"},
		{[]string{"NAMES #" + word}, irc.RPL_ENDOFNAMES, "End of /NAMES list."},
		{[]string{"WHO " + word}, irc.RPL_ENDOFWHO, "End of /WHO list."},
		{[]string{"HELP " + word}, "705", "Commands for the gateway are typed as plain messages in a control channel: type help there."},
		{[]string{"CAP " + word}, irc.ERR_INVALIDCAPCMD, "Invalid CAP command"},
		{[]string{strings.Repeat("X", 500)}, irc.ERR_UNKNOWNCOMMAND, "Unknown command"},
		{[]string{"BATCH +ml draft/multiline " + half, "@batch=ml PRIVMSG " + half + "x :hi", "BATCH -ml"}, "FAIL", "Invalid multiline target"},
	} {
		for _, label := range []string{"", "@label=L "} {
			name := fmt.Sprintf("%s%.20s", label, tc.lines[0])
			c.raw = nil
			c.send(t, label+tc.lines[0]) // a batch's label is its opening line's
			c.send(t, tc.lines[1:]...)
			c.sync(t)
			seen := false
			for _, l := range c.raw {
				l = strings.TrimRight(l, "\r\n")
				m := irc.MustParseMessage(l)
				body := l
				if l[0] == '@' {
					_, body, _ = strings.Cut(l, " ")
				}
				if len(body)+2 > 512 || !utf8.ValidString(l) {
					t.Errorf("%s: got a %d-byte line %.60q…, want at most 512 bytes of UTF-8", name, len(body)+2, l)
				}
				if m.Command == tc.code {
					seen = true
					if m.Trailing() != tc.text {
						t.Errorf("%s: got %q, want the text %q whole", name, l, tc.text)
					}
				}
			}
			if !seen {
				t.Errorf("%s: got %q, want a %s", name, c.raw, tc.code)
			}
		}
	}
}

// TestCutParamsKeepsMiddleParamsWhole: cutParams never leaves a middle
// parameter empty, even one that does not start as UTF-8 (its first
// byte stays), and the line it ends fits.
func TestCutParamsKeepsMiddleParamsWhole(t *testing.T) {
	for _, params := range [][]string{
		{"\xc3" + strings.Repeat("\x80", 499), "INVALID_UTF8", "Message rejected"},
		{"\x80" + strings.Repeat("é", 250), "more", "text"},
		{strings.Repeat("é", 300), strings.Repeat("x", 300)},
	} {
		n := len(":irc.test FAIL") + paramsLen(params)
		got := cutParams(n, params)
		for i, p := range got[:len(got)-1] {
			if p == "" || !strings.HasPrefix(params[i], p) {
				t.Errorf("cutParams(%.12q…): middle parameter %d is %q, want a non-empty start of %.12q…", params[0], i, p, params[i])
			}
		}
		if m := len(":irc.test FAIL") + paramsLen(got); m > maxLineBody {
			t.Errorf("cutParams(%.12q…): %d bytes, want at most %d", params[0], m, maxLineBody)
		}
	}
}
