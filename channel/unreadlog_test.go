package channel

import (
	"strings"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
)

// The rows of held and queued IMs the store cannot read are logged by id
// only: the store's error quotes the value that did not convert, which
// may be a message's text (here the corrupt columns hold "bob", set by
// unreadableRig: the test puts text of a message there instead).
func TestUnreadableIMRowsLoggedByID(t *testing.T) {
	r, _ := unreadableRig(t)
	const email = "alice@msim.test"
	l, hook := logtest.NewNullLogger()
	r.s.mem.log = l.WithField("test", true)
	r.s.mem.heldFor(email)
	r.s.mem.unreadNoted = nil // the rig's read noted the queued ones: once more
	r.s.mem.queuedFor(email)
	var logged int
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `\"bob\"`) || strings.Contains(line, `"bob"`) {
			t.Errorf("logged the value that did not convert: %s", line)
		}
		if _, ok := e.Data["rows"]; ok {
			logged++
		}
	}
	if logged != 2 {
		t.Errorf("logged the unreadable rows by id %d times, want 2 (held, queued)", logged)
	}
}
