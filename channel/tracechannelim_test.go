package channel_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim/server"
)

// TestTraceHidesIMTypedInControlChannel: an IM typed in the control
// channel as "tom: text", which goes to the buddy tom, is traced with its
// text as its size (-debug, the line trace msimircd sets up), as an IM in
// a query is, even when its first words read like a control command.
func TestTraceHidesIMTypedInControlChannel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	log := logrus.NewEntry(logger)
	msrv, err := server.New(server.Config{Demo: true}, server.NewMemStore(), log.WithField("part", "msim"))
	if err != nil {
		t.Fatal(err)
	}
	mln := listenLoopback(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = msrv.Serve(ctx, mln) }()
	b, err := channel.New(channel.Config{
		MSIMAddr:     mln.Addr().String(),
		Directory:    &channel.DemoDirectory{CreateAccount: msrv.AddAccount, Exists: func(err error) bool { return errors.Is(err, server.ErrAccountExists) }},
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
		Log: log.WithField("part", "bridge"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var bridge atomic.Pointer[channel.Bridge]
	bridge.Store(b)
	icfg := testIRCConfig()
	icfg.TraceLines = true
	icfg.Redact = func(m *irc.Message) *irc.Message { return bridge.Load().RedactLine(m) }
	isrv := ircd.NewServer(icfg, b, log.WithField("part", "ircd"))
	iln := listenLoopback(t)
	wg.Add(1)
	go func() { defer wg.Done(); _ = isrv.Serve(ctx, iln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = isrv.Shutdown(sctx)
		_ = b.Shutdown(sctx)
		_ = msrv.Shutdown(sctx)
		cancel()
		wg.Wait()
	})

	c := dial(t, iln.Addr().String(), "alice", "pw-alice")
	c.joinedControl("&alice")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.sync()
	c.send("PRIVMSG tom :hi") // Tom greets first, then says back what he is told
	c.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "tom" })
	ims := []string{
		"set the password aside and meet me at the old mill",
		"account add msim ben@example.com is my other address, write there",
		"register for the party at the old mill",
	}
	for _, im := range ims {
		c.send("PRIVMSG &alice :tom: " + im)
		// Tom answers an IM with its text: it went to him as an IM.
		c.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "tom" && strings.Contains(m.Trailing(), im) })
	}
	c.sync()
	for _, e := range hook.AllEntries() {
		if !strings.HasPrefix(e.Message, "irc <- PRIVMSG &alice") {
			continue
		}
		for _, leak := range []string{"the password", "ben@example.com", "register"} {
			if strings.Contains(e.Message, leak) {
				t.Errorf("trace line %q shows %q of an IM to tom; want its text as its size", e.Message, leak)
			}
		}
	}
}
