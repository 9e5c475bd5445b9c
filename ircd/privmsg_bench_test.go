package ircd

import (
	"testing"
	"time"
)

// benchCaps are the capability sets the per-message benchmarks run with:
// none (the load clients' set) and the tags a modern client takes.
var benchCaps = []struct {
	name string
	caps []string
}{
	{"plain", nil},
	{"tags", []string{"message-tags", "server-time", "echo-message"}},
}

// BenchmarkReadPrivmsg measures one PRIVMSG to a buddy read from the
// client: its line checked, parsed and run, and the handler called with
// its Input (the echo, with echo-message, queued and dropped).
func BenchmarkReadPrivmsg(b *testing.B) {
	for _, bc := range benchCaps {
		b.Run(bc.name, func(b *testing.B) {
			c, done := fuzzClient(b)
			defer done()
			for _, cp := range bc.caps {
				c.caps[cp] = true
			}
			addBud(b, c)
			line := []byte("PRIVMSG bud :Hey, are you coming to the show tonight? It starts at eight.\r\n")
			b.ReportAllocs()
			for b.Loop() {
				c.lineAt = time.Now()
				c.handleLine(line)
				c.lineAt = time.Time{}
				c.giveBack(c.take())
			}
		})
	}
}

// BenchmarkDeliverPrivmsg measures one IM from a buddy queued for the
// client (Deliver), the queue then taken and given back as the writer
// does.
func BenchmarkDeliverPrivmsg(b *testing.B) {
	for _, bc := range benchCaps {
		b.Run(bc.name, func(b *testing.B) {
			c, done := fuzzClient(b)
			defer done()
			for _, cp := range bc.caps {
				c.caps[cp] = true
			}
			addBud(b, c)
			d := Delivery{From: "bud", Text: "Hey, are you coming to the show tonight? It starts at eight.", MsgID: NewMsgID(), Time: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				c.Deliver(d)
				c.giveBack(c.take())
			}
		})
	}
}

// BenchmarkPacedDeliver measures one IM from a buddy as a backend pacing
// its deliveries queues it: Room, then Deliver, the queue then taken and
// given back as the writer does.
func BenchmarkPacedDeliver(b *testing.B) {
	c, done := fuzzClient(b)
	defer done()
	addBud(b, c)
	d := Delivery{From: "bud", Text: "Hey, are you coming to the show tonight? It starts at eight.", MsgID: NewMsgID(), Time: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if c.Room() > 0 {
			c.Deliver(d)
		}
		c.giveBack(c.take())
	}
}
