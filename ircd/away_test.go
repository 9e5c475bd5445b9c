package ircd

import (
	"fmt"
	"testing"
)

// TestAwayTexts: users holding the same text share its index; a text no
// one holds frees its slot for the next; past awayIndexAt texts a map
// finds them, and it forgets what is freed; "" is always index 0.
func TestAwayTexts(t *testing.T) {
	var a awayTexts
	if i := a.hold(""); i != 0 || a.text(0) != "" {
		t.Fatalf(`hold(""): got %d, want 0`, i)
	}
	off1, off2, away := a.hold("Offline"), a.hold("Offline"), a.hold("Away")
	if off1 != off2 || off1 == away || a.text(off1) != "Offline" || a.text(away) != "Away" {
		t.Fatalf("indexes: Offline %d and %d, Away %d", off1, off2, away)
	}
	a.release(off1)
	if a.text(off2) != "Offline" {
		t.Fatalf("Offline freed while a user still holds it")
	}
	a.release(off2)
	if i := a.hold("lunch"); i != off1 {
		t.Errorf("a freed slot is not reused: lunch got %d, want %d", i, off1)
	}
	if i := a.hold("Offline"); i == off1 || a.text(i) != "Offline" {
		t.Errorf("Offline again: got %d (%q)", i, a.text(i))
	}
	var held []uint16
	for n := range 3 * awayIndexAt {
		held = append(held, a.hold(fmt.Sprintf("status %d", n)))
	}
	if a.index == nil {
		t.Fatalf("no index after %d texts", len(a.texts))
	}
	for n, i := range held {
		if got, ok := a.find(fmt.Sprintf("status %d", n)); !ok || got != i {
			t.Errorf("find status %d: got %d %v, want %d", n, got, ok, i)
		}
	}
	a.release(held[0])
	if _, ok := a.find("status 0"); ok {
		t.Error("a freed text is still found")
	}
	if i := a.hold("status 1"); i != held[1] {
		t.Errorf("a held text through the index: got %d, want %d", i, held[1])
	}
	// Away, lunch, Offline and every status but the first.
	if a.index["status 0"] != 0 || len(a.index) != len(held)+2 {
		t.Errorf("index holds %d entries, want %d", len(a.index), len(held)+2)
	}
}

// TestAwayTextsFull: with every slot held by another text, a new text
// shows as here (0) rather than as another's.
func TestAwayTextsFull(t *testing.T) {
	var a awayTexts
	for n := range maxAwayTexts {
		a.hold(fmt.Sprint(n))
	}
	if i := a.hold("one too many"); i != 0 {
		t.Errorf("past the last slot: got %d (%q), want 0", i, a.text(i))
	}
	a.release(a.hold("7") - 0) // hold and release: still held once
	if a.text(8) != "7" {
		t.Errorf("index 8: got %q, want 7", a.text(8))
	}
}
