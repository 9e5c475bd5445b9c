package ircd

import "testing"

// TestClosedClientKeepsNoStampTimer: the timer a delivery set to end the
// client's current stamp is stopped once the connection has ended (as
// dropWhois stops the WHOIS timeouts), and a delivery to the ended
// connection sets none: a closed client, the idlest of all, keeps no
// timer holding it.
func TestClosedClientKeepsNoStampTimer(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	addBud(t, c)
	ft := fakeStamps(c)
	if !c.Deliver(Delivery{From: "bud", Text: "hello"}) {
		t.Fatal("delivery refused")
	}
	c.giveBack(c.take())
	if ds, _ := ft.durations(); len(ds) != 1 {
		t.Fatalf("timers %v after a delivery, want one", ds)
	}
	c.closeRead("test over")
	if ds, stopped := ft.durations(); stopped != len(ds) {
		t.Errorf("once the connection ended: %d stamp timers set, %d stopped; want all stopped", len(ds), stopped)
	}
	if n := ft.fire(); n != 0 {
		t.Errorf("%d stamp timers of the ended connection still ran (staleStamp on a closed client)", n)
	}
	c.Deliver(Delivery{From: "bud", Text: "after the end"})
	if ds, stopped := ft.durations(); len(ds) != stopped {
		t.Errorf("a delivery to the ended connection: %d stamp timers set, %d stopped; want none left running", len(ds), stopped)
	}
}
