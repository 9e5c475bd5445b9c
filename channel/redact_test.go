package channel_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
)

// redactBridge is a bridge (never started) whose RedactLine the tests call.
func redactBridge(t testing.TB, service string) *channel.Bridge {
	t.Helper()
	b, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", ServiceNick: service, Directory: &channel.StaticDirectory{}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRedactLine: the password words of the control commands that carry
// one are masked in lines to root or to a channel, whatever the case,
// spacing, tags, prefix, address ("root: …") or CTCP framing, and whether
// the text is a trailing parameter or not; the rest of the line is kept,
// and lines to buddies, other commands and root's own lines are left as
// they are.
func TestRedactLine(t *testing.T) {
	const m = ircd.Masked
	for _, tc := range []struct {
		name    string
		service string // "" = root
		line    string
		want    string // the masked text; "" = the line is returned as it is
	}{
		{"identify to root", "", "PRIVMSG root :identify hunter2", "identify " + m},
		{"upper case", "", "PRIVMSG ROOT :IDENTIFY hunter2", "IDENTIFY " + m},
		{"lower-case command", "", "privmsg Root :Identify hunter2", "Identify " + m},
		{"odd spacing", "", "PRIVMSG root :  identify \t hunter2  ", "  identify \t " + m + "  "},
		{"several words", "", "PRIVMSG root :identify correct horse battery", "identify " + m},
		{"no trailing parameter", "", "PRIVMSG root identify hunter2", "identify " + m},
		{"text over several parameters", "", "PRIVMSG root identify :hunter2 again", "identify " + m},
		{"identify -noload", "", "PRIVMSG root :identify -noload hunter2", "identify -noload " + m},
		{"identify -force", "", "PRIVMSG root :identify -FORCE hunter2", "identify -FORCE " + m},
		{"register", "", "PRIVMSG root :register hunter2", "register " + m},
		{"drop", "", "PRIVMSG root :drop hunter2", "drop " + m},
		{"NOTICE", "", "NOTICE root :identify hunter2", "identify " + m},
		{"tags and prefix", "", "@+draft/reply=1;label=a :alice!a@host PRIVMSG root :identify hunter2", "identify " + m},
		{"several targets", "", "PRIVMSG tom,root :identify hunter2", "identify " + m},
		{"root@server", "", "PRIVMSG root@irc.example :identify hunter2", "identify " + m},
		{"control channel", "", "PRIVMSG &alice :register hunter2", "register " + m},
		{"# control channel", "", "PRIVMSG #alice :register hunter2", "register " + m},
		{"status prefix", "", "PRIVMSG @&alice :register hunter2", "register " + m},
		{"addressed to root", "", "PRIVMSG &alice :root: identify hunter2", "root: identify " + m},
		{"addressed without a space", "", "PRIVMSG &alice :root:identify hunter2", "root:identify " + m},
		{"addressed with a comma", "", "PRIVMSG &alice :root, identify hunter2", "root, identify " + m},
		{"CTCP ACTION", "", "PRIVMSG &alice :\x01ACTION identify hunter2\x01", "\x01ACTION identify " + m + "\x01"},
		{"CTCP", "", "PRIVMSG root :\x01identify hunter2\x01", "\x01identify " + m + "\x01"},
		{"account add msim", "", "PRIVMSG root :account add msim me@example.com hunter2", "account add msim me@example.com " + m},
		{"account add myspace, password with @", "", "PRIVMSG &alice :ACCOUNT ADD MySpace me@example.com p@ss", "ACCOUNT ADD MySpace me@example.com " + m},
		{"account add without protocol", "", "PRIVMSG root :account add me@example.com hunter2", "account add me@example.com " + m},
		{"account add without e-mail", "", "PRIVMSG root :account add msim hunter2", "account add msim " + m},
		{"account add, password first", "", "PRIVMSG root :account add msim hunter2 me@example.com", "account add msim " + m},
		{"account set password", "", "PRIVMSG root :account 0 set password hunter2", "account 0 set password " + m},
		{"account set password by e-mail", "", "PRIVMSG &alice :account me@example.com SET Password hunter2 more", "account me@example.com SET Password " + m},
		{"set password", "", "PRIVMSG root :set password hunter2", "set password " + m},
		{"other service nick", "svc", "PRIVMSG SVC :identify hunter2", "identify " + m},

		{"to a buddy", "", "PRIVMSG tom :identify hunter2", ""},
		{"root is not the service nick", "svc", "PRIVMSG root :identify hunter2", ""},
		{"addressed to a buddy in private", "", "PRIVMSG tom :root: identify hunter2", ""},
		{"help", "", "PRIVMSG root :help identify", ""},
		{"no password", "", "PRIVMSG root :identify", ""},
		{"account list", "", "PRIVMSG root :account list", ""},
		{"account set another key", "", "PRIVMSG root :account 0 set autoconnect false", ""},
		{"account set password, no value", "", "PRIVMSG root :account 0 set password", ""},
		{"command later in the text", "", "PRIVMSG &alice :please identify hunter2", ""},
		{"status text", "", "PRIVMSG root :status away register later", ""},
		{"TAGMSG", "", "@+typing=active TAGMSG root", ""},
		{"JOIN", "", "JOIN &alice", ""},
		{"PRIVMSG without text", "", "PRIVMSG root", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			service := tc.service
			if service == "" {
				service = "root"
			}
			b := redactBridge(t, service)
			in := irc.MustParseMessage(tc.line)
			before := in.Copy()
			got := b.RedactLine(in)
			if in.Command != before.Command || !slices.Equal(in.Params, before.Params) || !maps.Equal(in.Tags, before.Tags) || *in.Prefix != *before.Prefix {
				t.Fatalf("RedactLine modified its argument: got %q, was %q", in, before)
			}
			if tc.want == "" {
				if got != in {
					t.Fatalf("got %q, want the line unchanged", got)
				}
				return
			}
			if got.Command != in.Command || !slices.Equal(got.Params, []string{in.Params[0], tc.want}) {
				t.Fatalf("got %s %q, want %s %q", got.Command, got.Params, in.Command, []string{in.Params[0], tc.want})
			}
			if !maps.Equal(got.Tags, in.Tags) || got.Prefix.String() != in.Prefix.String() {
				t.Errorf("got tags %q prefix %q, want them kept: %q %q", got.Tags, got.Prefix, in.Tags, in.Prefix)
			}
			if strings.Contains(got.String(), "hunter2") || strings.Contains(got.String(), "p@ss") {
				t.Errorf("got %q, want no password in it", got)
			}
		})
	}
}

// FuzzRedactLine: masking never panics, and masking a masked line changes
// nothing more.
func FuzzRedactLine(f *testing.F) {
	for _, s := range []string{"identify hunter2", "root: identify a b", "\x01ACTION register x\x01", "account add msim me@example.com pw",
		"account 0 set password pw", "\x01", "root:", "account add", "identify -noload", " \t", "r\xffoot: identify x"} {
		f.Add("root", s)
		f.Add("&alice", s)
	}
	b := redactBridge(f, "root")
	f.Fuzz(func(t *testing.T, target, text string) {
		m := &irc.Message{Prefix: &irc.Prefix{}, Command: "PRIVMSG", Params: []string{target, text}}
		once := b.RedactLine(m)
		twice := b.RedactLine(once)
		if !slices.Equal(once.Params, twice.Params) {
			t.Fatalf("masking %q again: got %q, want %q", text, twice.Params, once.Params)
		}
	})
}

// TestAccountAddDoesNotQuoteAPassword: account add with the password
// where the e-mail goes is refused without quoting it back (the reply
// would show it in the debug trace).
func TestAccountAddDoesNotQuoteAPassword(t *testing.T) {
	const secret = "Swapped-Secret42"
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	c := dial(t, ss.gw.ircAddr, "sam", "", allCaps...)
	c.joinedControl("&sam")
	c.private("register sam-irc", "is registered")
	c.joinedControl("&sam")
	r := c.private("account add msim "+secret+" sam@example.com", "not an e-mail address")
	if strings.Contains(r.Trailing(), secret) {
		t.Errorf("got %q, want a reply without the password", r.Trailing())
	}
}
