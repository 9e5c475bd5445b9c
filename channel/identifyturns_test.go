package channel_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
)

// dialFromIP connects to addr from the loopback address ip as nick, with no
// password.
func dialFromIP(t *testing.T, addr, ip, nick string) *ircClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return register(t, nc, nick, "", allCaps...)
}

// Wrong passwords given to identify for one user from many addresses at
// once wait in turns, a delay apart; past the turns one is refused at
// once, unchecked.
func TestIdentifyGuessesAtOnceTakeTurns(t *testing.T) {
	// The delay is long: the guesses that get a turn stay waiting for
	// it, and the one past the turns is answered at once.
	ss := startSelfService(t, channel.RegistrationOpen,
		guard.FailureConfig{Free: 1, Delay: time.Hour, MaxDelay: time.Hour, RefuseAfter: -1})
	if err := createUser(ss.st, "bob", "bobs-pw"); err != nil {
		t.Fatal(err)
	}
	first := dialFromIP(t, ss.gw.ircAddr, "127.0.1.1", "bob")
	first.expectFrom("PRIVMSG", "root", "identify")
	first.private("identify guess", "Incorrect password")
	for i := range ircd.AccountTurns {
		c := dialFromIP(t, ss.gw.ircAddr, fmt.Sprintf("127.0.2.%d", i+1), "bob")
		c.expectFrom("PRIVMSG", "root", "identify")
		c.send("PRIVMSG root :identify guess")
		c.sync() // taken: it waits its turn
	}
	late := dialFromIP(t, ss.gw.ircAddr, "127.0.3.1", "bob")
	late.expectFrom("PRIVMSG", "root", "identify")
	late.private("identify bobs-pw", "Too many password attempts at bob just now")
}
