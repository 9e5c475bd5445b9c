package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/store"
)

// StoreConfig is the [store] table: where msimircd keeps what it must not
// forget across restarts.
type StoreConfig struct {
	// StateDir holds the gateway's database, its key file and the
	// embedded network's data (the -state flag overrides it). The command
	// line fills in a default ($XDG_STATE_HOME/msimircd, else
	// ~/.local/state/msimircd); a Config with none keeps everything in
	// memory, which only tests use.
	StateDir string `toml:"state_dir"`
	Driver   string `toml:"driver"`   // sqlite or postgres
	DSN      string `toml:"dsn"`      // sqlite: the database file; postgres: a connection string
	KeyFile  string `toml:"key_file"` // the key sealing the MSIM passwords in the database
}

// File names in the state directory.
const (
	stateDBName   = "msimircd.db"
	stateKeyName  = "store.key"
	stateMSIMName = "msim.db"
)

// storeOpenTimeout bounds opening the store (migrations included).
const storeOpenTimeout = time.Minute

// defaultStateDir is $XDG_STATE_HOME/msimircd, else ~/.local/state/msimircd.
// An XDG_STATE_HOME that is not absolute is ignored, as the XDG base
// directory specification asks.
func defaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "msimircd"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w (give one with -state DIR)", err)
	}
	return filepath.Join(home, ".local", "state", "msimircd"), nil
}

// resolveStateDir sets the state directory: flagDir when given, else the
// config's, else the default; made absolute, so the log names it whole.
func (c *Config) resolveStateDir(flagDir string) error {
	if flagDir != "" {
		c.Store.StateDir = flagDir
	}
	if c.Store.StateDir == "" {
		d, err := defaultStateDir()
		if err != nil {
			return err
		}
		c.Store.StateDir = d
	}
	abs, err := filepath.Abs(c.Store.StateDir)
	if err != nil {
		return fmt.Errorf("state directory %s: %w", c.Store.StateDir, err)
	}
	c.Store.StateDir = abs
	return nil
}

// withState returns c with the paths that default to the state directory
// filled in: the SQLite database, the store's key file and, with the
// embedded network, its data file. Without a state directory they stay
// empty (memory only, for tests), unless the config names them.
func (c Config) withState() Config {
	d := c.Store.StateDir
	if d == "" {
		return c
	}
	if c.Store.Driver == "sqlite" && c.Store.DSN == "" {
		c.Store.DSN = filepath.Join(d, stateDBName)
	}
	if c.Store.KeyFile == "" {
		c.Store.KeyFile = filepath.Join(d, stateKeyName)
	}
	if c.MSIM.Server == "" && c.MSIM.DataFile == "" {
		c.MSIM.DataFile = filepath.Join(d, stateMSIMName)
	}
	return c
}

// stateLine is msimircd's first log line: where its state is kept. It
// never shows a PostgreSQL connection string (it may hold a password).
func stateLine(c Config) string {
	d := c.Store.StateDir
	var b strings.Builder
	if d == "" {
		b.WriteString("no state directory")
	} else {
		fmt.Fprintf(&b, "state in %s", d)
	}
	switch {
	case c.Store.Driver == "postgres":
		b.WriteString(" (store: postgres")
	case c.Store.DSN == "":
		b.WriteString(" (store: memory only")
	default:
		fmt.Fprintf(&b, " (store: sqlite %s", inDir(d, c.Store.DSN))
	}
	if c.MSIM.Server == "" {
		if c.MSIM.DataFile == "" {
			b.WriteString("; embedded MSIM network: memory only")
		} else {
			fmt.Fprintf(&b, "; embedded MSIM network: %s", inDir(d, c.MSIM.DataFile))
		}
	}
	b.WriteString(")")
	return b.String()
}

// inDir is p relative to dir when it is in dir, else p.
func inDir(dir, p string) string {
	if dir != "" && filepath.Dir(p) == dir {
		return filepath.Base(p)
	}
	return p
}

// makeStateDir creates the state directory (mode 0700) if it is missing.
func makeStateDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return nil
}

// openStore opens the gateway's store as [store] says, creating its key
// file (mode 0600) at the first start; nil, nil when there is none to open
// (no state directory and no dsn: memory only). The store's errors name
// the database file (or the PostgreSQL database, never its password).
func openStore(ctx context.Context, sc StoreConfig) (store.Store, error) {
	st, _, err := openStoreKey(ctx, sc)
	return st, err
}

// openStoreKey is openStore that also returns the sealing key.
func openStoreKey(ctx context.Context, sc StoreConfig) (store.Store, []byte, error) {
	if sc.DSN == "" {
		return nil, nil, nil
	}
	if sc.KeyFile == "" {
		return nil, nil, errKey("no key file: set store.key_file or a state directory (-state DIR or store.state_dir)", "key_file", pathStep{"store", -1})
	}
	key, err := store.LoadOrCreateKey(sc.KeyFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w (does its directory exist?)", err)
		}
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	st, err := store.Open(ctx, sc.Driver, sc.DSN, key)
	return st, key, dsnKeyErr(err)
}

// dsnKeyErr names store.dsn in an error that its connection string does
// not parse (sqldb.ErrDSN, whose text leaves the string out: it may hold a
// password), so that the config's line is given.
func dsnKeyErr(err error) error {
	if !errors.Is(err, sqldb.ErrDSN) {
		return err
	}
	return errKey(err.Error(), "dsn", pathStep{"store", -1})
}

// validate checks the [store] table.
func (s *StoreConfig) validate() error {
	st := pathStep{"store", -1}
	switch s.Driver {
	case "sqlite":
		if strings.Contains(s.DSN, "?") || strings.HasPrefix(s.DSN, "file:") {
			return errKey("for sqlite, the database file's plain path (no '?', no file: URI)", "dsn", st)
		}
	case "postgres":
		if s.DSN == "" {
			return errKey(`postgres needs a connection string, e.g. "host=/var/run/postgresql dbname=msimircd" (a password goes here or in PGPASSFILE, never on the command line)`, "dsn", st)
		}
	default:
		return errKey(fmt.Sprintf("unknown driver %q (sqlite or postgres)", s.Driver), "driver", st)
	}
	return nil
}
