package channel_test

import (
	"context"
	"testing"

	"github.com/msimircd/msimircd/channel"
)

// TestAuthenticateTakesAClientNamePASSTakes: a client's name is no nick
// and names nobody the directory looks up: PASS "bob/name:password" and
// USER "bob/name" give a client any name, and the history keeps its
// position by it. The same client naming itself so with SASL
// ("bob/name") is the same user, and must not be refused because its
// name is longer than NICKLEN.
func TestAuthenticateTakesAClientNamePASSTakes(t *testing.T) {
	const client = "thinkpad-x1-carbon-weechat-home" // 31 bytes
	d := &recordingDirectory{}
	b, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", Directory: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Authenticate(context.Background(), "bob/"+client, "pw"); err != nil {
		t.Errorf("SASL as bob/%s: got %v, want bob's password checked (directory asked %v)", client, err, d.authenticated)
	}
	if len(d.authenticated) != 1 || d.authenticated[0] != "bob:pw" {
		t.Errorf("directory asked %v, want [bob:pw]", d.authenticated)
	}
}
