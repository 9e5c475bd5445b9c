package msim

import (
	"strconv"
	"strings"
	"testing"
)

// TestReaderOwnerKeepingUpNeverOverflows: an owner that takes every event
// as soon as it is told of it (here in Notify itself, as the package's own
// BenchmarkReadIMs and TestReadIMCostsTwoObjects owners do) never has more
// than one event not taken, so EventBacklog (4) is never passed, however
// many IMs come in one read. The reader holding a read's IMs (up to
// heldEvents) and queueing them at once, with no Notify between, makes
// them pass the backlog together: the session ends with DisconnectOverflow
// and IMs are dropped, where before every IM was delivered.
func TestReaderOwnerKeepingUpNeverOverflows(t *testing.T) {
	t.Parallel()
	const ims = 8
	var wire strings.Builder
	for i := range ims {
		wire.Write(Encode(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i))))
	}
	got := readKeepingUp(ClientConfig{EventBacklog: 4}, wire.String())
	var texts []string
	var d DisconnectedEvent
	for _, ev := range got {
		switch ev := ev.(type) {
		case IMEvent:
			texts = append(texts, ev.Text)
		case DisconnectedEvent:
			d = ev
		}
	}
	if d.Reason != DisconnectNetwork || d.DroppedIMs != 0 {
		t.Errorf("end: got %v (%v), %d IMs dropped; want the server's close (EOF), none dropped", d.Reason, d.Err, d.DroppedIMs)
	}
	if len(texts) != ims {
		t.Errorf("IMs delivered: got %q, want all %d", texts, ims)
	}
}

// readKeepingUp runs a client of cfg whose reader reads wire to its end,
// taking every event as soon as Notify tells of it, and returns them all
// (the last the session's end).
func readKeepingUp(cfg ClientConfig, wire string) []Event {
	var c *Client
	var got []Event
	cfg.Notify = func() { got = c.TakeEvents(got) }
	cfg.setDefaults()
	c = newClient(cfg, &memConn{data: []byte(wire)})
	c.wg.Add(2)
	go c.readLoop(nil)
	c.wg.Wait()
	return c.TakeEvents(got)
}
