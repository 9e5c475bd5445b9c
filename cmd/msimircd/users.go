package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

const userUsage = `usage: msimircd user [-config FILE] [-state DIR] add|del|list|passwd [NICK]

Administers the IRC users kept in the gateway's store (those that register
makes; with irc.registration = "closed", the only way to make one):
  add NICK     create a user; its password is read from standard input
               (asked for without echo on a terminal), never from the command line
  passwd NICK  set a user's password, read the same way
  del NAME     delete a user and everything kept for them: NAME as list
               shows it (a [[user]] is kept under its name as the config
               spells it), or the nick of a registered user
  list         list the users (users of the config and of the demo network
               are kept too, under their own names)`

// runUser is msimircd user: it works on the store of the config and state
// directory the server uses. Passwords come from stdin.
func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("msimircd user", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, userUsage) }
	configPath := fs.String("config", "", "the server's config file (TOML)")
	stateDir := fs.String("state", "", "the server's state directory, overriding the config's store.state_dir")
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(words) == 0 {
		return errors.New(userUsage)
	}
	op, rest := words[0], words[1:]
	want := 1
	if op == "list" {
		want = 0
	}
	switch op {
	case "add", "del", "list", "passwd":
	default:
		return fmt.Errorf("user: unknown command %q\n%s", op, userUsage)
	}
	if len(rest) != want {
		return fmt.Errorf("user %s: want %d argument(s), got %d (a password is never given on the command line)\n%s", op, want, len(rest), userUsage)
	}
	var nick string
	if want == 1 {
		nick = rest[0]
		if op != "del" && !ircd.Nick(nick).Valid() {
			return fmt.Errorf("user %s: %q is not a valid nick", op, nick)
		}
	}
	cfg := Defaults()
	if *configPath != "" {
		var err error
		if cfg, err = LoadConfig(*configPath); err != nil {
			return err
		}
	}
	if err := cfg.resolveStateDir(*stateDir); err != nil {
		return err
	}
	cfg = cfg.withState()
	if err := makeStateDir(cfg.Store.StateDir); err != nil {
		return err
	}
	ctx := context.Background()
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		return locateKey(*configPath, err)
	}
	if st == nil {
		return errors.New("user: no store is configured")
	}
	defer st.Close()
	name := channel.UserName(nick)
	switch op {
	case "list":
		us, err := st.Users(ctx)
		if err != nil {
			return err
		}
		for _, u := range us {
			fmt.Fprintf(stdout, "%s\t%s\n", u.Name, u.Created.UTC().Format("2006-01-02 15:04"))
		}
		return nil
	case "del":
		if name, err = delName(ctx, st, nick); err != nil {
			return err
		}
		if err := st.DeleteUser(ctx, name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("user del: no user %s", name)
			}
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", name)
		return nil
	}
	if op == "add" || op == "passwd" {
		configured := channel.StaticDirectory{Users: staticUsers(cfg.Users)}
		if u := configured.Find(nick); u != nil {
			return fmt.Errorf("user %s: %s is a [[user]] of the config file (%q), which wins over the store: its password is set there", op, nick, u.Name)
		}
	}
	if op == "add" {
		if _, err := st.User(ctx, name); err == nil {
			return fmt.Errorf("user add: %s exists already (user passwd changes its password)", name)
		}
	}
	pw, err := readNewPassword(stdin, stderr, name)
	if err != nil {
		return err
	}
	hash, err := store.HashPassword(pw)
	if err != nil {
		return err
	}
	if op == "add" {
		if _, err := st.CreateUser(ctx, name, hash); err != nil {
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("user add: %s exists already", name)
			}
			return err
		}
		fmt.Fprintf(stdout, "added %s\n", name)
		return nil
	}
	if err := st.SetPassword(ctx, name, hash); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("user passwd: no user %s", name)
		}
		return err
	}
	fmt.Fprintf(stdout, "password of %s changed\n", name)
	return nil
}

// delName returns the stored user that user del's argument names: the
// user of that exact name (as list shows it: a [[user]] is kept under its
// name as the config spells it, which may have capitals or be no nick),
// else the registered user of the nick.
func delName(ctx context.Context, st store.Store, arg string) (string, error) {
	_, err := st.User(ctx, arg)
	switch {
	case err == nil:
		return arg, nil
	case !errors.Is(err, store.ErrNotFound):
		return "", err
	case !ircd.Nick(arg).Valid():
		return "", fmt.Errorf("user del: no user %q (user list shows the stored users' names)", arg)
	}
	return channel.UserName(arg), nil
}

// readNewPassword reads a password: from a terminal without echo, twice;
// otherwise the first line of stdin.
func readNewPassword(stdin io.Reader, stderr io.Writer, name string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Password for %s: ", name)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return checkNewPassword(string(a))
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return checkNewPassword(strings.TrimRight(line, "\r\n"))
}

func checkNewPassword(pw string) (string, error) {
	switch {
	case pw == "":
		return "", errors.New("no password given (standard input is empty)")
	case strings.ContainsAny(pw, " \t"):
		return "", errors.New("a password is one word: IRC commands split at spaces")
	}
	return pw, nil
}
