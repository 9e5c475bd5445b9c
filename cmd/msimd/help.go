package main

import (
	"errors"
	"flag"
	"io"
	"os"

	"github.com/msimircd/msimircd/internal/cmdhelp"
)

// docs/msimd.1 is helpPage rendered as a man page; TestManPage fails when
// it is stale.
//go:generate go test -run ^TestManPage$ -update

// setHelp makes fs print the help text for -help and -h (to e.stdout;
// Parse then returns flag.ErrHelp, which main takes as success), and the
// usage lines after a bad flag's error (to fs's output).
func setHelp(fs *flag.FlagSet, e env) {
	var stdout io.Writer = os.Stdout
	if e.stdout != nil {
		stdout = e.stdout
	}
	cmdhelp.SetUsage(fs, stdout, func() *cmdhelp.Page { return helpPage(fs) })
	if e.flags != nil {
		e.flags(fs)
	}
}

// parseError is run's error for a failed fs.Parse: flag.ErrHelp after
// -help, otherwise errUsage (the flag package has printed what was wrong).
func parseError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return flag.ErrHelp
	}
	return errUsage
}

// helpShown reports whether err only says that the help was printed.
func helpShown(err error) bool { return errors.Is(err, flag.ErrHelp) }

// configTop is the help's line for the config file's top-level keys.
const configTop = "top level"

// configSections are the config file's keys, one line per table.
// TestConfigSections checks them against fileConfig's toml tags.
var configSections = []cmdhelp.Item{
	{Term: configTop, Text: "listen, data, db, key, demo, debug and account_file, as the flags -listen, -data, -db, -key, -demo, -debug and -account-file. There is no key for -account: passwords stay out of the file."},
	{Term: "[limits]", Text: "max_conns, max_conns_per_addr, offline_bytes and offline_sender_bytes, as the flags of the same names (0: the default; negative: no cap)."},
	{Term: "[metrics]", Text: "listen and public, as -metrics-listen and -metrics-public."},
	{Term: "[cluster]", Text: "nats (a list of NATS URLs, or one string of them separated by commas, as -nats) and node, as -node."},
}

// helpPage is msimd's manual: -help prints it, docs/msimd.1 is it as a
// man page.
func helpPage(fs *flag.FlagSet) *cmdhelp.Page {
	return &cmdhelp.Page{
		Name:    "msimd",
		Summary: "a standalone MySpaceIM (MSIM) server",
		Synopsis: []string{
			"msimd [flags]",
			"msimd (-data PATH | -db DSN) [-key PATH] [-demo] adduser [-username NAME] EMAIL",
			"msimd (-data PATH | -db DSN) [-key PATH] import [-key OLD.key] OLD.db",
		},
		Description: []string{
			"msimd runs the MSIM network that msimircd embeds, on its own: for real MSIM clients (such as libpurple's), for msimircd gateways whose [msim] server points at it, and for testing.",
			"Without -data or -db the network lives in memory and is gone at exit. With -data PATH, accounts, contact lists and offline IMs are kept in the SQLite database file PATH; with -db DSN, in PostgreSQL (DSN a postgres:// URL; several msimd nodes may share one database) or, given a path, in SQLite too. The password hashes in the database are sealed under the key file -key (for SQLite, default: the database file's path + \".key\", created mode 0600 at the first start; PostgreSQL needs -key, the same file on every node): back the key file up apart from the database. The schema is created, and migrated when msimd is upgraded, at the start; a database written by a newer msimd is refused.",
			"With -nats, msimd is one node of a cluster: any number of nodes that share the store and a NATS server (or NATS cluster) serve one network, and a user may log in to any of them. IMs, typing, zaps, presence, alerts and the kick of a second login cross NATS; a node that dies or loses NATS has its users offline for the others within seconds, and IMs for them are stored.",
			"Accounts are made out of band, because the login never shows the password to the server: with adduser on the database (it asks for the password twice without echo on a terminal, or reads one line from standard input; a running msimd on the same database sees the account at once), or from an -account-file of EMAIL:PASSWORD lines (mode 0600; the user name is the part of the address before '@'). The older forms \"adduser EMAIL PASSWORD [USERNAME]\" and -account EMAIL:PASSWORD still work but show the password to other local users.",
			"import carries over the data file of an earlier msimd (a bbolt file, which this msimd no longer serves): accounts with their sealed password hashes (sealed anew when -key differs from the old key file), profiles, groups, block lists, contact lists and waiting offline IMs go into the -data or -db store, in one transaction. The store must be empty; the old file is only read (stop the old msimd first). Its key file is OLD.db.key unless import's own -key names another.",
		},
		Flags: fs,
		Sections: []cmdhelp.Section{
			{
				Title: "Config file",
				Paragraphs: []string{
					"-config FILE reads the settings from a TOML file whose keys mirror the flags; msimd.toml.example, beside the source, documents every key. A flag given on the command line wins over the file; a key left out keeps the flag's default. An unknown key, a bad value, or a setting the flags would refuse (cluster.node without cluster.nats, a PostgreSQL db without key) stops the start with the file, the line and the key named. The file may be readable by others while it holds no secret; when db or cluster.nats holds a password, msimd refuses it unless only its owner may read it (PostgreSQL's password is better kept in PGPASSFILE). The file is read at the start only. Its keys:",
				},
				Items: configSections,
			},
			{
				Title: "Signals",
				Items: []cmdhelp.Item{
					{Term: "SIGINT, SIGTERM", Text: "shuts down: the listener closes and every session ends."},
					{Term: "SIGHUP", Text: "re-reads the -account-file and creates the accounts added to it since; existing accounts are kept as they are. A file that does not read is logged and the server goes on. The config file is not read again."},
				},
			},
			{
				Title: "Files",
				Items: []cmdhelp.Item{
					{Term: "DATA", Text: "the SQLite database -data names, with DATA-wal and DATA-shm beside it while it is open."},
					{Term: "DATA.key", Text: "the key sealing its password hashes, mode 0600, unless -key puts it elsewhere. Without it the database does not open."},
					{Term: "FILE", Text: "the -account-file: EMAIL:PASSWORD lines; '#' starts a comment line. It holds passwords, so msimd refuses it when group or others may read it."},
				},
			},
			{
				Title: "Exit status",
				Items: []cmdhelp.Item{
					{Term: "0", Text: "a clean shutdown, or -help."},
					{Term: "1", Text: "an error, such as a damaged database or a listener that would not open; the message is on standard error."},
					{Term: "2", Text: "a usage error: a bad flag or argument, a config file that does not load, -key without -data or -db, PostgreSQL without -key, or -node without -nats."},
				},
			},
		},
	}
}
