package server

// The server's log holds no IM text: operators read it, and the users
// whose IMs pass did not write for it.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/msim"
)

// TestDebugLogHidesIMText: at debug level, the messages a session reads
// and sends are logged with the size of an IM's text in place of the text
// (an IM stored for an offline user, a live IM, an action), and with their
// other fields.
func TestDebugLogHidesIMText(t *testing.T) {
	const (
		stored = "meet me at the old mill"
		live   = "bring the lantern"
		action = "waves from the old mill"
	)
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	srv, err := New(Config{}, NewMemStore(), logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	addAccount(t, srv, "alice@example.com", "pw-alice", "alice")
	bobUID := addAccount(t, srv, "bob@example.com", "pw-bob", "bob")

	alice := login(t, addr, "alice@example.com", "pw-alice")
	alice.bm(msim.BMIM, bobUID, stored) // bob is offline: stored
	alice.sync()
	bob := login(t, addr, "bob@example.com", "pw-bob")
	bob.expect("the stored IM", isBM(msim.BMIM, alice.uid))
	alice.bm(msim.BMIM, bobUID, live)
	alice.bm(msim.BMAction, bobUID, action)
	bob.expect("the live IM", isBM(msim.BMIM, alice.uid))
	bob.expect("the action", isBM(msim.BMAction, alice.uid))
	alice.sync()

	var log strings.Builder
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		if err != nil {
			t.Fatal(err)
		}
		log.WriteString(line)
	}
	for _, text := range []string{stored, live, action, "old mill", "lantern"} {
		if strings.Contains(log.String(), text) {
			t.Errorf("got log %q, want no IM text in it", log.String())
		}
	}
	var recv []string
	for _, e := range hook.AllEntries() {
		if m, _ := e.Data["msg"].(string); e.Message == "recv" && strings.HasPrefix(m, `\bm\`) {
			recv = append(recv, m)
		}
	}
	for _, want := range []string{
		fmt.Sprintf(`\bm\1\sesskey\***\t\%d\cv\673\msg\<%d bytes>\final\`, bobUID, len(stored)),
		fmt.Sprintf(`\bm\1\sesskey\***\t\%d\cv\673\msg\<%d bytes>\final\`, bobUID, len(live)),
		fmt.Sprintf(`\bm\121\sesskey\***\t\%d\cv\673\msg\<%d bytes>\final\`, bobUID, len(action)),
	} {
		if !strings.Contains(strings.Join(recv, "\n"), want) {
			t.Errorf("got recv lines %q, want %q among them", recv, want)
		}
	}
}
