package channel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
)

// TestPassClientNameBounded: a client's name in PASS name/client:password
// is at most ClientNameLen bytes, as in a SASL account (ircd bounds that
// one): a longer one is refused as a wrong password is (464), one of that
// length
// attaches.
func TestPassClientNameBounded(t *testing.T) {
	st := startStack(t)
	dialRefused(t, st.ircAddr, "bob", "bob/"+strings.Repeat("p", ircd.ClientNameLen+1)+":pw")
	bob := dial(t, st.ircAddr, "bob", "bob/"+strings.Repeat("p", ircd.ClientNameLen)+":pw", allCaps...)
	bob.joinedControl("&bob")
}

// TestAuthenticateClientNameBounded: the bridge's SASL check refuses an
// account whose client's name is longer than ClientNameLen bytes, as a
// wrong password (ErrAuth), without asking its directory; one of that length is
// checked as ever.
func TestAuthenticateClientNameBounded(t *testing.T) {
	d := &recordingDirectory{}
	b, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", Directory: d})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Authenticate(context.Background(), "bob/"+strings.Repeat("p", ircd.ClientNameLen+1), "pw")
	if !errors.Is(err, channel.ErrAuth) {
		t.Errorf("client's name past ClientNameLen: got %v, want ErrAuth", err)
	}
	if len(d.authenticated) != 0 {
		t.Errorf("client's name past ClientNameLen: got the directory asked %v, want it not asked", d.authenticated)
	}
	if err := b.Authenticate(context.Background(), "bob/"+strings.Repeat("p", ircd.ClientNameLen), "pw"); err != nil {
		t.Errorf("client's name of ClientNameLen: got %v, want it accepted", err)
	}
	if len(d.authenticated) != 1 || d.authenticated[0] != "bob:pw" {
		t.Errorf("client's name of ClientNameLen: got the directory asked %v, want [bob:pw]", d.authenticated)
	}
}
