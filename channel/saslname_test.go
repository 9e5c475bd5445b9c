package channel_test

import (
	"context"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
)

// TestAuthenticateBoundsTheUserName: a SASL account whose user name is
// longer than NICKLEN names no user (users are named by their nick, and a
// configuration's user names are bounded so too): the bridge refuses it
// without asking its directory, which a name of NICKLEN, with or without
// a client's name, still reaches. A client's name longer than
// ClientNameLen is refused so too (splitClient).
func TestAuthenticateBoundsTheUserName(t *testing.T) {
	for _, tc := range []struct {
		name, account string
		asked         string // the user the directory is asked about; "" = none
	}{
		{"user name of NICKLEN", strings.Repeat("a", ircd.NickLen), strings.Repeat("a", ircd.NickLen)},
		{"user name of NICKLEN and a client's name", strings.Repeat("a", ircd.NickLen) + "/phone", strings.Repeat("a", ircd.NickLen)},
		{"user name past NICKLEN", strings.Repeat("b", ircd.NickLen+1), ""},
		{"user name past NICKLEN and a client's name", strings.Repeat("b", ircd.NickLen+1) + "/phone", ""},
		{"client's name of ClientNameLen", "bob/" + strings.Repeat("p", ircd.ClientNameLen), "bob"},  // a client's name is no nick
		{"client's name past ClientNameLen", "bob/" + strings.Repeat("p", ircd.ClientNameLen+1), ""}, // as ircd bounds it (validAccountName)
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &recordingDirectory{}
			b, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", Directory: d})
			if err != nil {
				t.Fatal(err)
			}
			err = b.Authenticate(context.Background(), tc.account, "pw")
			if tc.asked == "" {
				if err == nil {
					t.Errorf("got the account accepted, want it refused")
				}
				if len(d.authenticated) != 0 {
					t.Errorf("got the directory asked %v, want it not asked", d.authenticated)
				}
				return
			}
			if err != nil {
				t.Errorf("got %v, want the account accepted", err)
			}
			if want := []string{tc.asked + ":pw"}; len(d.authenticated) != 1 || d.authenticated[0] != want[0] {
				t.Errorf("got the directory asked %v, want %v", d.authenticated, want)
			}
		})
	}
}
