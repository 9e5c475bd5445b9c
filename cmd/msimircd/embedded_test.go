package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/msim"
)

// TestEmbeddedNetworkForMSIMClients: with -msim-listen and -msim-account, an
// MSIM client joins the embedded network and chats with an IRC user.
func TestEmbeddedNetworkForMSIMClients(t *testing.T) {
	cfg := Defaults()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.MSIM.EmbeddedAddr = "127.0.0.1:0" // serve reports the port it got
	cfg.MSIM.Accounts = []string{"carol@example.com:Carol1"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logrus.NewEntry(l), ready) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	at := <-ready

	w, _, wait := ircUser(t, at.irc[0], "dave")
	// Logged in: carol's IM then arrives live, not as an offline one.
	wait(func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Name == "root" && m.Param(0) == "&dave" && strings.Contains(m.Trailing(), "Logged in")
	})

	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	carol, err := msim.Dial(cctx, msim.ClientConfig{Addr: at.msim, Email: "carol@example.com", Password: "Carol1"})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	p, err := carol.LookupUser(cctx, "dave")
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.SendIM(cctx, p.UID, "hello from an MSIM client"); err != nil {
		t.Fatal(err)
	}
	m := wait(func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Name == "carol" })
	if m.Trailing() != "hello from an MSIM client" {
		t.Errorf("IRC got %q", m.Trailing())
	}
	_ = w.Write("PRIVMSG carol :hi carol")
	for ev := range carol.Events() {
		if im, ok := ev.(msim.IMEvent); ok {
			if im.Text != "hi carol" || im.From != p.UID {
				t.Errorf("carol got %q from %d", im.Text, im.From)
			}
			break
		}
	}
}
