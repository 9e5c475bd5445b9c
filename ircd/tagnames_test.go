package ircd

import (
	"maps"
	"slices"
	"testing"

	"gopkg.in/irc.v4"
)

// tagKeys returns the keys of tags, sorted.
func tagKeys(tags irc.Tags) []string { return slices.Sorted(maps.Keys(tags)) }

// A client-only tag whose name message-tags' grammar does not allow
// ('+', an optional vendor and '/', then letters, digits and '-') is
// dropped, as ergo drops it: it reaches neither the echo nor the backend,
// which would hand it to the user's other clients.
func TestClientTagNamesChecked(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me", "message-tags", "echo-message")
	bad := "+bad!name=1;+x/=2;+/y=3;+a.b=4;+caf\u00e9=5;+v_/z=7"
	for _, line := range []string{
		"@+good=1;+example.com/ok-2=x;" + bad + " PRIVMSG ann :hi",
		"@+good=1;+example.com/ok-2=x;" + bad + " TAGMSG ann",
	} {
		c.send(t, line)
		got := c.sync(t)
		if len(got) != 1 {
			t.Fatalf("got %v, want the echo", msgStrings(got))
		}
		var client []string
		for _, k := range tagKeys(got[0].Tags) {
			if k[0] == '+' {
				client = append(client, k)
			}
		}
		want := []string{"+example.com/ok-2", "+good"}
		if !slices.Equal(client, want) {
			t.Errorf("echo of %q: got client tags %q, want %q", line, client, want)
		}
		fc.drain()
		if in := fc.lastInput(); !slices.Equal(tagKeys(in.Tags), want) {
			t.Errorf("backend got tags %q for %q, want %q", tagKeys(in.Tags), line, want)
		}
	}
}

// A delivery's tags with a name that is no client-only tag's are left
// out: a space, ';' or '=' in one would make a malformed line.
func TestDeliverDropsInvalidTagNames(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me", "message-tags")
	fc.c.Deliver(Delivery{From: "tom", Text: "hi", Tags: irc.Tags{"+ok": "1", "+a b": "2", "+a;b": "3", "+a=b": "4", "+": "5"}})
	got := c.sync(t)
	checkMsgs(t, got, []want{w("PRIVMSG", "me", "hi")})
	if keys := tagKeys(got[0].Tags); !slices.Equal(keys, []string{"+ok"}) {
		t.Fatalf("got tags %q, want only +ok", keys)
	}
}
