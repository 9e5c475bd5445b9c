// What a session uses of its neighbours: small interfaces for the IRC
// connection and the MSIM client, the dial that makes an MSIM client, and a
// clock. Production passes *ircd.Client, *msim.Client, msim.Dial and the
// wall clock; the session's table tests pass fakes and step time by hand.

package channel

import (
	"context"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// ircConn is what a session uses of its IRC connection (*ircd.Client).
type ircConn interface {
	Deliver(d ircd.Delivery) bool
	Room() int
	HasCap(name string) bool
	Nick() string
	Close(reason string)
	AddUser(u ircd.User) error
	Reserve(channel string, n int)
	RenameUser(oldNick, newNick string) error
	SetPresence(nick, away string, online bool)
	SetRealName(nick, name string)
	SetOwnRealName(name string)
	CreateChannel(name, topic string) error
	JoinUser(channel, nick string, voice bool)
	PartUser(channel, nick, reason string)
	SetVoice(channel, nick string, voice bool)
	SetOp(channel, nick string, op bool)
	JoinClient(channel string, marker time.Time)
	RemoveUser(nick, reason string)
	RemoveChannel(name string)
	DeliverHistory(target string, ds []ircd.Delivery) bool
	SendReadMarker(target string, t time.Time)
}

// MSIMClient is what the bridge uses of an MSIM session (*msim.Client).
// Every uid it reports (contacts, presence, IMs) is a valid one: positive
// and 31 bits at most, which a buddy keeps in 32.
type MSIMClient interface {
	Self() msim.Profile
	// AppendContacts appends the contact list to dst.
	AppendContacts(dst []msim.Contact) []msim.Contact
	// PresenceOf is the latest presence the client received for uid
	// (offline when none); the bridge keeps no copy of its own.
	PresenceOf(uid msim.UID) (msim.Status, string, bool)
	TakeEvents(dst []msim.Event) []msim.Event
	SendIM(ctx context.Context, to msim.UID, text string) error
	// SendStyledIM sends spans; text is the IM as the bridge keeps it.
	SendStyledIM(ctx context.Context, to msim.UID, text string, spans []markup.Span) error
	SendTyping(ctx context.Context, to msim.UID, typing bool) error
	SendZap(ctx context.Context, to msim.UID, z markup.Zap) error
	SetStatus(ctx context.Context, st msim.Status, text string) error
	Profile(ctx context.Context, uid msim.UID) (msim.Profile, error)
	LookupUser(ctx context.Context, who string) (msim.Profile, error)
	AddBuddy(ctx context.Context, uid msim.UID, group string) error
	RemoveBuddy(ctx context.Context, uid msim.UID) error
	Block(ctx context.Context, uid msim.UID) error
	Allow(ctx context.Context, uid msim.UID) error
	CheckAlerts(ctx context.Context) ([]string, error)
	Close() error
}

// DialMSIM logs an account in; the MSIM client it returns must take events
// through cfg.Notify and TakeEvents.
type DialMSIM func(ctx context.Context, cfg msim.ClientConfig) (MSIMClient, error)

// dialMSIM is the production DialMSIM: msim.Dial.
func dialMSIM(ctx context.Context, cfg msim.ClientConfig) (MSIMClient, error) {
	cl, err := msim.Dial(ctx, cfg)
	if cl == nil {
		return nil, err // not a typed nil in the interface
	}
	return cl, err
}

// Clock tells the time and runs functions later; the bridge's timers
// (reconnects, alert polls) all go through it.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// wallClock is the real Clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
func (wallClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
