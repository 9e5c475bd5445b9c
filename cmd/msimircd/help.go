package main

import (
	"errors"
	"flag"
	"os"
	"strings"

	"github.com/msimircd/msimircd/internal/cmdhelp"
)

// docs/msimircd.1 is helpPage rendered as a man page; TestManPage fails
// when it is stale.
//go:generate go test -run ^TestManPage$ -update

// setHelp makes fs print the help text for -help and -h (to stdout; Parse
// then returns flag.ErrHelp, which main takes as success), and the usage
// lines after a bad flag's error.
func setHelp(fs *flag.FlagSet) {
	cmdhelp.SetUsage(fs, os.Stdout, func() *cmdhelp.Page { return helpPage(fs) })
}

// helpShown reports whether err only says that the help was printed.
func helpShown(err error) bool { return errors.Is(err, flag.ErrHelp) }

// configSections are the config file's top-level tables, one line each.
// TestConfigSections checks them against Config's toml tags.
var configSections = []cmdhelp.Item{
	{Term: "[irc]", Text: "the IRC side: listeners (listen; [[irc.tls]] tables with listen, cert and key), an optional server password, server_name, network, motd, service_nick, flood control (flood_rate, flood_burst), ping_interval, sendq, the connection caps max_connections and max_connections_per_addr, max_clients_per_user (IRC clients attached to one user at once), and registration (open or closed)."},
	{Term: "[msim]", Text: "the MSIM side: server (an upstream MSIM server; empty runs the embedded network, which embedded_listen exposes, data keeps, accounts and accounts_file fill, and account_creation_per_hour, max_connections, max_connections_per_addr and the offline_bytes_* keys limit), and for every link queue_limit, reconnect_min, reconnect_max and timeout; always_on (accounts stay online with no IRC client attached and log in at start; default true)."},
	{Term: "[store]", Text: "what survives a restart: state_dir (the state directory), driver (sqlite or postgres), dsn (the SQLite file or a PostgreSQL connection string) and key_file (the key sealing the MSIM passwords)."},
	{Term: "[metrics]", Text: "listen (an address for Prometheus metrics, /healthz and /readyz; off when unset) and public (true allows a non-loopback address)."},
	{Term: "[history]", Text: "enabled (keep every IM in and out in the store, for CHATHISTORY, read markers, the replay to clients and the history command; default true), retention (how long, e.g. 90d, the default; 0 keeps only what no client was sent yet) and replay_per_buddy (messages replayed per conversation to a client without chathistory; default 50)."},
	{Term: "[cluster]", Text: "several instances on one PostgreSQL store, behind a TCP load balancer: instance (this instance's name, each its own; unset: the only instance), lease_ttl (how long a user's lease lasts unrenewed, the longest the users of an instance that died wait; default 30s) and hand_over_wait (how long a connection waits for another instance to hand its user over; default 10s). Needs store.driver = \"postgres\" and msim.server."},
	{Term: "[log]", Text: "level (debug, info, warn or error) and format (text or json), to standard error."},
	{Term: "[[user]]", Text: "an IRC user: name, password, and [[user.account]] tables for their MSIM accounts (email, password or password_file, channel, autoconnect). Without any, every nick gets a demo account of its own."},
}

// helpPage is msimircd's manual: -help prints it, docs/msimircd.1 is it as
// a man page.
func helpPage(fs *flag.FlagSet) *cmdhelp.Page {
	userLine, userBody, _ := strings.Cut(userUsage, "\n")
	return &cmdhelp.Page{
		Name:    "msimircd",
		Summary: "an IRC server that bridges MySpaceIM (MSIM) to IRC",
		Synopsis: []string{
			"msimircd [flags]",
			strings.TrimPrefix(userLine, "usage: "),
		},
		Description: []string{
			"msimircd is an IRC server that bridges MySpaceIM to IRC, in the spirit of BitlBee. Point an IRC client at it: each MSIM account is a control channel, buddies are nicks in it, and instant messages are PRIVMSGs.",
			"Without -config it listens for IRC on 127.0.0.1:6667, runs the embedded MSIM network with the demo buddy Tom, and gives every IRC nick an MSIM account of its own. A config file sets up users with their MSIM accounts, an upstream MSIM server, TLS listeners and the store.",
			"What must survive a restart (the gateway's database, the key sealing the MSIM passwords in it, and the embedded network's data) is kept in the state directory: -state DIR, else the config's store.state_dir, else $XDG_STATE_HOME/msimircd, else ~/.local/state/msimircd. It is made mode 0700 at the first start, and the first log line names it.",
		},
		Flags: fs,
		Sections: []cmdhelp.Section{
			{
				Title: "Administering users",
				Pre:   strings.TrimLeft(userBody, "\n"),
			},
			{
				Title: "Config file",
				Paragraphs: []string{
					"msimircd reads a config file only when -config names one: there is no default path. The systemd unit in contrib/systemd uses /etc/msimircd/config.toml. The file is TOML; config.toml.example, beside the source, documents every key and its default. An unknown key or a bad value stops the start with the file, the line and the key named. Its tables:",
				},
				Items: configSections,
			},
			{
				Title: "Signals",
				Items: []cmdhelp.Item{
					{Term: "SIGINT, SIGTERM", Text: "shuts down gracefully: IRC clients get an ERROR saying so, and MSIM accounts log out."},
					{Term: "SIGHUP", Text: "re-reads the config file: users, MOTD, flood limits, log level, TLS certificates; other changes need a restart. Clients and MSIM sessions the change does not concern stay connected. A config file that does not load is refused with the error in the log, and the running config stays."},
				},
			},
			{
				Title: "Files",
				Items: []cmdhelp.Item{
					{Term: "STATE/msimircd.db", Text: "the gateway's SQLite database (with -wal and -shm beside it): buddy nicks, settings, control channels, held IMs (store.dsn puts it elsewhere; driver postgres uses PostgreSQL instead)."},
					{Term: "STATE/store.key", Text: "the key sealing the MSIM passwords in the database, mode 0600; back it up apart from the database (store.key_file)."},
					{Term: "STATE/msim.db", Text: "the embedded network's data, with msim.db.key and msim.db.irc-key beside it (msim.data)."},
				},
			},
			{
				Title: "Environment",
				Items: []cmdhelp.Item{
					{Term: "XDG_STATE_HOME", Text: "the default state directory is $XDG_STATE_HOME/msimircd when it is an absolute path; otherwise ~/.local/state/msimircd, under HOME."},
					{Term: "PGPASSFILE", Text: "with store.driver postgres, a password file PostgreSQL's client reads, instead of a password in the dsn."},
				},
			},
			{
				Title: "Exit status",
				Items: []cmdhelp.Item{
					{Term: "0", Text: "a clean shutdown, -help or -version."},
					{Term: "1", Text: "an error: a bad flag or config file, a listener or store that would not open; the message is on standard error."},
				},
			},
		},
	}
}
