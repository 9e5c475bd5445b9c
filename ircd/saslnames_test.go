package ircd

import (
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/irc.v4"
)

// TestSASLRefusesUnsafeAccountNames: a SASL PLAIN account name (and
// authzid) comes base64-encoded, past the checks every line gets. One that
// could not stand as a parameter of a reply (a line's end, NUL, another
// control character, a space, a leading ':', invalid UTF-8) is refused
// with 904 before the backend is asked, even by a backend that would
// accept it, so that no 900, WHOIS or JOIN repeats it; so is one whose
// user name, or client's name, is longer than NICKLEN.
func TestSASLRefusesUnsafeAccountNames(t *testing.T) {
	t.Parallel()
	b := newBackend()
	var mu sync.Mutex
	var asked []string
	b.authErr = func(account, _ string) error { // accepts any name
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, account)
		return nil
	}
	addr, _ := startServer(t, testConfig(), b)
	plain := func(authzid, authcid string) string {
		return base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + authcid + "\x00secret"))
	}
	tests := []struct {
		name    string
		payload string
		account string // the name the backend is asked about and logged in; "" = refused
	}{
		{"line feed", plain("", "alice\n:evil PRIVMSG me :hi"), ""},
		{"carriage return and line feed", plain("", "alice\r\nPRIVMSG me :hi"), ""},
		{"carriage return", plain("", "alice\rx"), ""},
		{"authzid with a line end", plain("alice\r\nx", "alice\r\nx"), ""},
		{"invalid UTF-8", plain("", "alice\xff\xfe"), ""},
		{"invalid UTF-8 authzid", plain("al\xc3ice", "al\xc3ice"), ""},
		{"control character", plain("", "alice\x01"), ""},
		{"delete", plain("", "alice\x7f"), ""},
		{"C1 control", plain("", "alice\u0085"), ""},
		{"space", plain("", "alice bob"), "alice bob"},
		{"leading colon", plain("", ":alice"), ":alice"},
		{"plain name", plain("", "alice"), "alice"},
		{"same authzid", plain("alice", "alice"), "alice"},
		{"non-ASCII name", plain("", "ålice"), "ålice"},
		{"client's name", plain("", "alice/phone"), "alice/phone"},
		{"user name of NICKLEN", plain("", strings.Repeat("a", NickLen)), strings.Repeat("a", NickLen)},
		{"user name of NICKLEN and a client's name of ClientNameLen", plain("", strings.Repeat("a", NickLen)+"/"+strings.Repeat("p", ClientNameLen)),
			strings.Repeat("a", NickLen) + "/" + strings.Repeat("p", ClientNameLen)},
		{"user name past NICKLEN", plain("", strings.Repeat("b", NickLen+1)), ""},
		{"user name past NICKLEN with a client's name", plain("", strings.Repeat("b", NickLen+1)+"/phone"), ""},
		{"client's name past ClientNameLen", plain("", "bob/"+strings.Repeat("p", ClientNameLen+1)), ""},
		{"client's name past ClientNameLen, with a slash", plain("", "bob/"+strings.Repeat("p", ClientNameLen)+"/x"), ""},
		{"client's name of ClientNameLen, with a slash", plain("", "bob/"+strings.Repeat("p", ClientNameLen-2)+"/x"), "bob/" + strings.Repeat("p", ClientNameLen-2) + "/x"},
		{"long name", plain("", strings.Repeat("c", 200)), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			c.send(t, "CAP LS 302", "CAP REQ :sasl")
			c.sync(t)
			c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+tc.payload)
			wants := []want{w("AUTHENTICATE", "+"), w(irc.ERR_SASLFAIL, "*", "SASL authentication failed")}
			if tc.account != "" {
				wants = []want{w("AUTHENTICATE", "+"), w(irc.RPL_LOGGEDIN, "*", "*!*@127.0.0.1", middleParam(tc.account), "You are now logged in as "+tc.account),
					w(irc.RPL_SASLSUCCESS, "*", "SASL authentication successful")}
			}
			checkMsgs(t, c.sync(t), wants)
			c.send(t, "CAP END", "NICK me", "USER u 0 * :R")
			c.readUntil(t, irc.RPL_ENDOFMOTD)
			if fc := b.conn(t, c); fc.reg.Account != tc.account {
				t.Fatalf("got account %q at registration, want %q", fc.reg.Account, tc.account)
			}
		})
	}
	accepted := make(map[string]bool)
	for _, tc := range tests {
		accepted[tc.account] = tc.account != ""
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range asked {
			if !accepted[a] {
				t.Errorf("the backend was asked about account %q, want it refused before", a)
			}
		}
	})
}

// TestSASLLongestAccountNameFitsLines: every line a client is sent after
// RPL_LOGGEDIN (900) with the longest account name SASL accepts, a user's
// name of NICKLEN and a client's name of ClientNameLen, fits 512 bytes and carries the
// name whole: 900 (which repeats it), WHOIS's 330, WHOX's account field and
// an extended-join JOIN, for a nick of NICKLEN and a long channel name. A
// longer client's name is refused (904), so that no line has to be cut.
func TestSASLLongestAccountNameFitsLines(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.authErr = func(string, string) error { return nil }
	addr, _ := startServer(t, testConfig(), b)
	nick := "n" + strings.Repeat("x", NickLen-1)
	channel := "#" + strings.Repeat("c", 49)
	longest := strings.Repeat("a", NickLen) + "/" + strings.Repeat("p", ClientNameLen)
	for _, account := range []string{longest, strings.Repeat("a", NickLen) + "/" + strings.Repeat("p", 400)} {
		c := dial(t, addr)
		c.send(t, "CAP LS 302", "CAP REQ :sasl extended-join")
		c.sync(t)
		c.send(t, "AUTHENTICATE PLAIN")
		payload := base64.StdEncoding.EncodeToString([]byte("\x00" + account + "\x00secret"))
		for len(payload) >= saslChunk { // in chunks of 400, as a client sends it
			c.send(t, "AUTHENTICATE "+payload[:saslChunk])
			payload = payload[saslChunk:]
		}
		if payload == "" {
			payload = "+"
		}
		c.send(t, "AUTHENTICATE "+payload)
		got := c.sync(t)
		if account != longest {
			checkMsgs(t, got, []want{w("AUTHENTICATE", "+"), w(irc.ERR_SASLFAIL, "*", "SASL authentication failed")})
			continue
		}
		c.send(t, "CAP END", "NICK "+nick, "USER u 0 * :R")
		got = append(got, c.readUntil(t, irc.RPL_ENDOFMOTD)...)
		c.send(t, "JOIN "+channel, "WHOIS "+nick, "WHO "+nick+" %na")
		got = append(got, c.sync(t)...)
		after, whole := false, map[string]bool{}
		for _, m := range got {
			if m.Command == irc.RPL_LOGGEDIN {
				after = true
			}
			if !after {
				continue
			}
			if n := bodyLen(m) + 2; n > 512 {
				t.Errorf("account of %d bytes: got a line of %d bytes: %q", len(account), n, m)
			}
			switch m.Command {
			case irc.RPL_LOGGEDIN:
				whole[m.Command] = m.Param(2) == account && strings.HasSuffix(m.Trailing(), " "+account)
			case rplWhoisAccount, "354", "JOIN":
				whole[m.Command] = slices.Contains(m.Params, account)
			}
		}
		for _, cmd := range []string{irc.RPL_LOGGEDIN, rplWhoisAccount, "354", "JOIN"} {
			if !whole[cmd] {
				t.Errorf("account of %d bytes: no %s line carries it whole: %v", len(account), cmd, msgStrings(got))
			}
		}
	}
}
