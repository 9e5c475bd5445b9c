package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// TestSASLForEveryUserTheConfigTakes: the config takes a [[user]] named
// "bob smith", and a client names its user with SASL PLAIN as with PASS
// name:password: SASL logs that user in too.
func TestSASLForEveryUserTheConfigTakes(t *testing.T) {
	path := writeConfig(t, fmt.Sprintf("[store]\nstate_dir = %q\n\n[[user]]\nname = \"bob smith\"\npassword = \"irc-bob\"\n\n  [[user.account]]\n  email = \"bob@example.com\"\n  password = \"Msim-bob\"\n", t.TempDir()))
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("the config refuses the [[user]] \"bob smith\": %v", err)
	}
	at, _ := startServe(t, cfg)
	if _, m := ircRegister(t, at.irc[0], "bob", ":bob smith:irc-bob"); m.Command != "001" {
		t.Fatalf("PASS :bob smith:irc-bob: got %v, want 001", m)
	}
	nc, err := net.Dial("tcp", at.irc[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := irc.NewReader(nc), irc.NewWriter(nc)
	_ = w.Write("CAP REQ :sasl")
	_ = w.Write("NICK bob2")
	_ = w.Write("USER bob 0 * :bob")
	_ = w.Write("AUTHENTICATE PLAIN")
	_ = w.Write("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("\x00bob smith\x00irc-bob")))
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if m.Command == "903" {
			return
		}
		if m.Command == "904" {
			t.Fatalf("SASL PLAIN as the [[user]] \"bob smith\" with its password: got %v, want 903", m)
		}
	}
}
