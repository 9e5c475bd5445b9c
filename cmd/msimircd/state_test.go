package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultStateDir: $XDG_STATE_HOME/msimircd when XDG_STATE_HOME is an
// absolute path, else ~/.local/state/msimircd.
func TestDefaultStateDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct {
		name, xdg, want string
	}{
		{"XDG_STATE_HOME set", "/srv/state", "/srv/state/msimircd"},
		{"XDG_STATE_HOME empty", "", filepath.Join(home, ".local", "state", "msimircd")},
		{"XDG_STATE_HOME relative", "state", filepath.Join(home, ".local", "state", "msimircd")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			got, err := defaultStateDir()
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestStateDirChoice: -state wins over store.state_dir, which wins over
// the default; the database, the key file and the embedded network's
// data default to files in it, and what the config names stays.
func TestStateDirChoice(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_STATE_HOME", xdg)
	flagDir, cfgDir := t.TempDir(), t.TempDir()
	withDir := writeConfig(t, "[store]\nstate_dir = \""+cfgDir+"\"\n")
	named := writeConfig(t, "[store]\nstate_dir = \""+cfgDir+"\"\ndsn = \"/elsewhere/gw.db\"\nkey_file = \"/keys/gw.key\"\n[msim]\ndata = \"/data/msim.db\"\n")
	upstream := writeConfig(t, "[msim]\nserver = \"127.0.0.1:1863\"\n[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n")
	postgres := writeConfig(t, "[store]\ndriver = \"postgres\"\ndsn = \"host=/run/postgresql dbname=msimircd\"\n")
	def := filepath.Join(xdg, "msimircd")
	for _, tc := range []struct {
		name                    string
		args                    []string
		dir, dsn, key, msimData string
	}{
		{"default", nil, def, filepath.Join(def, "msimircd.db"), filepath.Join(def, "store.key"), filepath.Join(def, "msim.db")},
		{"config", []string{"-config", withDir}, cfgDir, filepath.Join(cfgDir, "msimircd.db"), filepath.Join(cfgDir, "store.key"), filepath.Join(cfgDir, "msim.db")},
		{"flag wins", []string{"-config", withDir, "-state", flagDir}, flagDir, filepath.Join(flagDir, "msimircd.db"), filepath.Join(flagDir, "store.key"), filepath.Join(flagDir, "msim.db")},
		{"paths the config names", []string{"-config", named}, cfgDir, "/elsewhere/gw.db", "/keys/gw.key", "/data/msim.db"},
		{"upstream: no embedded data", []string{"-config", upstream, "-state", flagDir}, flagDir, filepath.Join(flagDir, "msimircd.db"), filepath.Join(flagDir, "store.key"), ""},
		{"postgres", []string{"-config", postgres, "-state", flagDir}, flagDir, "host=/run/postgresql dbname=msimircd", filepath.Join(flagDir, "store.key"), filepath.Join(flagDir, "msim.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.args, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := o.cfg.Store
			if s.StateDir != tc.dir || s.DSN != tc.dsn || s.KeyFile != tc.key || o.cfg.MSIM.DataFile != tc.msimData {
				t.Errorf("got dir %q, dsn %q, key %q, msim data %q; want %q, %q, %q, %q",
					s.StateDir, s.DSN, s.KeyFile, o.cfg.MSIM.DataFile, tc.dir, tc.dsn, tc.key, tc.msimData)
			}
		})
	}
	if _, err := os.Stat(def); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("parsing the options made the state directory (%v); only the start makes it", err)
	}
}

// TestStateLine: the first log line names the state directory, the
// database and the embedded network's data, and never a PostgreSQL
// connection string (it may hold a password).
func TestStateLine(t *testing.T) {
	dir := "/home/x/.local/state/msimircd"
	base := Defaults()
	base.Store.StateDir = dir
	sqlite := base.withState()
	pg := base
	pg.Store.Driver, pg.Store.DSN = "postgres", "postgres://gw:s3cret-pw@db.example.net/msimircd"
	pg = pg.withState()
	elsewhere := base
	elsewhere.Store.DSN = "/var/lib/gw.db"
	elsewhere = elsewhere.withState()
	upstream := base
	upstream.MSIM.Server = "im.example.net:1863"
	upstream = upstream.withState()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"sqlite", sqlite, "state in " + dir + " (store: sqlite msimircd.db; embedded MSIM network: msim.db)"},
		{"postgres", pg, "state in " + dir + " (store: postgres; embedded MSIM network: msim.db)"},
		{"database elsewhere", elsewhere, "state in " + dir + " (store: sqlite /var/lib/gw.db; embedded MSIM network: msim.db)"},
		{"upstream", upstream, "state in " + dir + " (store: sqlite msimircd.db)"},
		{"memory only", Defaults(), "no state directory (store: memory only; embedded MSIM network: memory only)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stateLine(tc.cfg); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStoreErrorHidesDSNPassword: a PostgreSQL connection string that
// does not parse is refused without its password, whichever way it is
// written (pgx masks "password=pw" but not "password = pw", which libpq
// takes too).
func TestStoreErrorHidesDSNPassword(t *testing.T) {
	const secret = "s3cretPW"
	for _, dsn := range []string{
		"host=db.invalid dbname=x password = " + secret + " sslmode=bogus",
		"host=db.invalid dbname=x password= " + secret + " sslmode=bogus",
		"host=db.invalid dbname=x password = '" + secret + " x' sslmode=bogus",
		"host=db.invalid dbname=x password=" + secret + "\\ x sslmode=bogus",
		"postgres://u:" + secret + "@h/db?sslmode=bogus",
	} {
		t.Run(dsn, func(t *testing.T) {
			dir := t.TempDir()
			_, err := openStore(context.Background(), StoreConfig{Driver: "postgres", DSN: dsn, KeyFile: filepath.Join(dir, "store.key")})
			if err == nil {
				t.Fatal("got no error, want the connection string refused")
			}
			t.Log(err)
			if strings.Contains(err.Error(), secret) {
				t.Errorf("got %q, want an error without the password", err)
			}
			if !strings.Contains(err.Error(), "sslmode") {
				t.Errorf("got %q, want it to say what is wrong (sslmode)", err)
			}
		})
	}
}
