package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim/server"
)

// startConfig runs msimd with exactly args (no -listen added) until the
// test ends and returns its MSIM address, its metrics address ("" without
// one) and its log.
func startConfig(t *testing.T, args ...string) (addr, metricsAddr string, logs *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	ready := make(chan string, 1)
	mready := make(chan string, 1)
	done := make(chan error, 1)
	e := env{stdin: strings.NewReader(""), stderr: logs, reload: make(chan struct{}),
		ready: func(a string) { ready <- a }, metricsReady: func(a string) { mready <- a }}
	go func() { done <- run(ctx, args, e) }()
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("msimd stopped: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		t.Fatal("msimd did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("msimd: %v", err)
		}
	})
	select {
	case metricsAddr = <-mready:
	default:
	}
	return addr, metricsAddr, logs
}

// TestConfigFileAlone: a config file alone sets msimd up: the listener, a
// SQLite store through db, the accounts of account_file, a limit, the
// metrics listener and a cluster node on an in-process NATS server; it
// serves a login, and /readyz (which checks the cluster) answers 200.
func TestConfigFileAlone(t *testing.T) {
	nats := startNATS(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "accounts"), "alice@example.com:pw-alice\n", 0o600)
	db := filepath.Join(dir, "msim.db")
	cfg := filepath.Join(dir, "msimd.toml")
	writeFile(t, cfg, fmt.Sprintf(`listen = "127.0.0.1:0"
db = %q
account_file = %q

[limits]
max_conns = 50

[metrics]
listen = "127.0.0.1:0"

[cluster]
nats = [%q]
node = "from-file"
`, db, filepath.Join(dir, "accounts"), nats), 0o644)

	addr, metricsAddr, logs := startConfig(t, "-config", cfg)
	if _, m := login(t, addr, "alice@example.com", "pw-alice"); !m.Is("lc") {
		t.Fatalf("alice's login: got %v, want lc 2", m)
	}
	if metricsAddr == "" {
		t.Fatal("no metrics listener: metrics.listen was not taken")
	}
	if code, body := get(t, metricsAddr, "/readyz"); code != http.StatusOK || !strings.Contains(body, "cluster") {
		t.Errorf("GET /readyz: got %d %q, want 200 with the cluster check", code, body)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("the SQLite store db names: %v", err)
	}
	for _, want := range []string{"node=from-file", "joined the cluster", "store=\"sqlite " + db + "\""} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log has no %q:\n%s", want, logs)
		}
	}
}

// TestConfigFlagsWin: a flag given on the command line wins over the
// file's key (listen, demo, node here), while the keys no flag sets
// (cluster.nats) are taken.
func TestConfigFlagsWin(t *testing.T) {
	nats := startNATS(t)
	cfg := filepath.Join(t.TempDir(), "msimd.toml")
	writeFile(t, cfg, fmt.Sprintf(`listen = "256.0.0.1:1863"  # would not open
demo = true
[cluster]
nats = %q
node = "from-file"
`, nats), 0o644)
	_, _, logs := startConfig(t, "-config", cfg, "-listen", "127.0.0.1:0", "-demo=false", "-node", "from-flag")
	for _, want := range []string{"node=from-flag", "joined the cluster", "demo=false"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log has no %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs.String(), "from-file") {
		t.Errorf("the file's node was taken over the flag's:\n%s", logs)
	}
}

// TestConfigAddUser: adduser takes the store from the config file, and
// msimd started with the same file serves the new account.
func TestConfigAddUser(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "msimd.toml")
	writeFile(t, cfg, fmt.Sprintf("listen = \"127.0.0.1:0\"\ndata = %q\n", filepath.Join(dir, "msim.db")), 0o644)
	if out, err := cli("pw-bob\n", "-config", cfg, "adduser", "bob@example.com"); err != nil {
		t.Fatalf("adduser: %v\n%s", err, out)
	}
	addr, _, _ := startConfig(t, "-config", cfg)
	if _, m := login(t, addr, "bob@example.com", "pw-bob"); !m.Is("lc") {
		t.Errorf("bob's login: got %v, want lc 2", m)
	}
}

// TestConfigErrors: every file that is refused is a usage error naming
// the file, the line and the key: bad syntax, an unknown key or table, a
// value of the wrong type or a bad one, -account's passwords, the checks
// the flags get too, and a password in a file others may read.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		mode os.FileMode // 0: 0644
		args []string    // after -config FILE
		want string      // after "config FILE: "
	}{
		{"syntax", "listen = \"127.0.0.1:0\ndemo = true\n", 0, nil, "line 1: listen: "},
		{"unknown key", "demo = true\n\nbogus = 1\n", 0, nil, "line 3: bogus: unknown key"},
		{"unknown key in a table", "[limits]\nmax_conns = 3\nmax_con = 3\n", 0, nil, "line 3: limits.max_con: unknown key"},
		{"unknown table", "demo = true\n[bogus]\nx = 1\n", 0, nil, "line 2: bogus: unknown key"},
		{"flag-only username", "username = \"bob\"\n", 0, nil, "line 1: username: unknown key"},
		{"wrong type", "[limits]\nmax_conns = \"many\"\n", 0, nil, "line 2: limits.max_conns: incompatible types"},
		{"wrong type bool", "\ndemo = \"yes\"\n", 0, nil, "line 2: demo: incompatible types"},
		{"bad listen", "listen = \"nowhere\"\n", 0, nil, "line 1: listen: not host:port"},
		{"bad metrics listen", "[metrics]\nlisten = \"9101\"\n", 0, nil, "line 2: metrics.listen: not host:port"},
		{"public without listen", "[metrics]\npublic = true\n", 0, nil, "line 2: metrics.public: there is no metrics.listen"},
		{"metrics not loopback", "[metrics]\nlisten = \"0.0.0.0:9101\"\n", 0, nil, "line 2: metrics.listen 0.0.0.0:9101 is not a loopback address; add metrics.public = true"},
		{"bad NATS URL", "[cluster]\nnats = [\"http://n:4222\"]\n", 0, nil, "line 2: cluster.nats: not a NATS URL"},
		{"bad NATS in a string", "[cluster]\nnats = \"nats://a:4222,b\"\n", 0, nil, "line 2: cluster.nats: not a NATS URL"},
		{"NATS wrong type", "[cluster]\nnats = 4222\n", 0, nil, "line 2: cluster.nats: want a list of NATS URLs"},
		{"account", "demo = true\naccount = \"a@b.c:pw\"\n", 0, nil, "line 2: account: passwords do not belong in the config file"},
		{"node without nats", "[cluster]\n\nnode = \"a\"\n", 0, nil, "line 3: cluster.node needs cluster.nats"},
		{"key after a multi-line string", "[cluster]\nnode = '''a\nbogus = 1\n'''\nbogus = 2\n", 0, nil, "line 5: cluster.bogus: unknown key"},
		{"node without nats, flag", "demo = true\n", 0, []string{"-node", "a"}, ""}, // the flag's error: no file line
		{"postgres without key", "\ndb = \"postgres://msimd@db.example/msim\"\n", 0, nil, "line 2: db with PostgreSQL needs key PATH"},
		{"data and db", "data = \"a.db\"\ndb = \"b.db\"\n", 0, nil, "line 2: data and db both name the store"},
		{"data is postgres", "data = \"postgres://db.example/msim\"\n", 0, nil, "line 1: data is a SQLite file's path; give a PostgreSQL URL with db"},
		{"key without store", "demo = false\nkey = \"/k\"\n", 0, nil, "line 2: key needs data or db"},
		{"db password, readable", "db = \"postgres://msimd:secret@db.example/msim\"\nkey = \"/k\"\n", 0o640, nil, "line 1: db: holds a password, and group or others may read"},
		{"db password query, readable", "db = \"postgres://db.example/msim?password=secret\"\nkey = \"/k\"\n", 0o604, nil, "line 1: db: holds a password"},
		{"NATS token, readable", "[cluster]\nnats = \"nats://tok@n:4222\"\n", 0o644, nil, "line 2: cluster.nats: a URL holds credentials"},
		{"NATS password with a comma", "[cluster]\nnats = \"nats://u:se,cret@n:4222\"\n", 0o600, nil, "line 2: cluster.nats: not a NATS URL"},
		{"NATS password with a hash", "[cluster]\nnats = [\"nats://u:sec#ret@n:4222\"]\n", 0o600, nil, "line 2: cluster.nats: "},
		{"NATS password with a bad escape", "[cluster]\nnats = [\"nats://u:sec%zzret@n:4222\"]\n", 0o600, nil, "line 2: cluster.nats: not a NATS URL"},
		{"NATS password with a comma in a list", "[cluster]\nnats = [\"nats://u:se,cret@n:4222\"]\n", 0o600, nil, "line 2: cluster.nats: a NATS URL with a ','"},
		{"NATS password without a scheme", "[cluster]\nnats = [\"u:secret@n:4222\"]\n", 0o600, nil, "line 2: cluster.nats: not a NATS URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "msimd.toml")
			mode := tc.mode
			if mode == 0 {
				mode = 0o644
			}
			writeFile(t, cfg, tc.file, mode)
			out, err := cli("", append([]string{"-config", cfg}, tc.args...)...)
			if !errors.Is(err, errUsage) {
				t.Fatalf("got %v, want a usage error\n%s", err, out)
			}
			want := "config " + cfg + ": " + tc.want
			if tc.want == "" {
				want = "-node needs -nats"
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("got %q, want %q in it", err, want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "tok@") ||
				strings.Contains(err.Error(), "sec") || strings.Contains(err.Error(), "u:se") {
				t.Errorf("the error shows a secret: %q", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := cli("", "-config", filepath.Join(t.TempDir(), "none.toml"))
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "none.toml: no such file") {
			t.Errorf("got %v, want a usage error naming the missing file", err)
		}
	})
}

// TestConfigSecretsOwnerOnly: a password in db or cluster.nats is taken
// when only the file's owner may read it; a file with no password may be
// read by anyone.
func TestConfigSecretsOwnerOnly(t *testing.T) {
	for _, tc := range []struct {
		file string
		mode os.FileMode
	}{
		{"db = \"postgres://msimd:secret@db.example/msim\"\n[cluster]\nnats = \"nats://u:p@n:4222\"\n", 0o600},
		{"db = \"postgres://msimd@db.example/msim\"\n[cluster]\nnats = [\"nats://n1:4222\", \"nats://n2:4222\"]\n", 0o644},
	} {
		cfg := filepath.Join(t.TempDir(), "msimd.toml")
		writeFile(t, cfg, tc.file, tc.mode)
		c, _, _, err := loadConfig(cfg)
		if err != nil {
			t.Errorf("mode %04o: got %v, want the file taken", tc.mode, err)
			continue
		}
		if c.Cluster.NATS == "" || !strings.Contains(string(c.Cluster.NATS), "nats://") {
			t.Errorf("mode %04o: got cluster.nats %q", tc.mode, c.Cluster.NATS)
		}
	}
}

// exampleConfig is the example file beside the source.
const exampleConfig = "../../msimd.toml.example"

// TestExampleConfig: msimd.toml.example loads, shows every key (set or
// commented out), sets the limits to the server's defaults, and msimd
// serves with it (its store moved to a temporary directory by a flag).
func TestExampleConfig(t *testing.T) {
	c, md, data, err := loadConfig(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, k := range fileKeys {
		parts := strings.Split(k.key, ".")
		if md.IsDefined(parts...) {
			continue
		}
		name, table := parts[len(parts)-1], strings.Join(parts[:len(parts)-1], ".")
		if !strings.Contains(text, "# "+name+" = ") || table != "" && !strings.Contains(text, "["+table+"]") {
			t.Errorf("the example has no line for %s", k.key)
		}
	}
	if got, want := c.Limits, (limitsConfig{server.DefaultMaxConnections, server.DefaultMaxConnectionsPerAddr,
		server.DefaultOfflinePerRecipientBytes, server.DefaultOfflinePerSenderBytes}); got != want {
		t.Errorf("got the example's [limits] %+v, want the defaults %+v", got, want)
	}
	addr, _, _ := startConfig(t, "-config", exampleConfig, "-listen", "127.0.0.1:0", "-data", filepath.Join(t.TempDir(), "msim.db"), "-account", "alice@example.com:pw-alice")
	if _, m := login(t, addr, "alice@example.com", "pw-alice"); !m.Is("lc") {
		t.Errorf("alice's login: got %v, want lc 2", m)
	}
}

// TestConfigKeysCoverFlags: every flag but -config, -account and
// -username has a config key, and every key names a flag.
func TestConfigKeysCoverFlags(t *testing.T) {
	_, _, fs, _ := helpFlags(t, "-help")
	keys := map[string]bool{}
	for _, k := range fileKeys {
		if fs.Lookup(k.flag) == nil {
			t.Errorf("config key %s: no flag -%s", k.key, k.flag)
		}
		keys[k.flag] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "account", "username":
			return
		}
		if !keys[f.Name] {
			t.Errorf("flag -%s has no config key: add one to fileConfig and fileKeys", f.Name)
		}
	})
}

// TestConfigSections: the help's config file section names every key of
// fileConfig (the top-level ones in one line, each table's in the table's
// line), and lists exactly its tables.
func TestConfigSections(t *testing.T) {
	items := map[string]string{}
	for _, it := range configSections {
		items[it.Term] = it.Text
	}
	ct := reflect.TypeFor[fileConfig]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		name := f.Tag.Get("toml")
		if f.Type.Kind() != reflect.Struct {
			if name != "account" && !strings.Contains(items[configTop], name) {
				t.Errorf("the help's %q line does not name %s", configTop, name)
			}
			continue
		}
		text, ok := items["["+name+"]"]
		if !ok {
			t.Errorf("the help has no line for [%s]", name)
		}
		delete(items, "["+name+"]")
		for j := range f.Type.NumField() {
			if k := f.Type.Field(j).Tag.Get("toml"); !strings.Contains(text, k) {
				t.Errorf("the help's [%s] line does not name %s", name, k)
			}
		}
	}
	delete(items, configTop)
	if len(items) > 0 {
		t.Errorf("the help has lines for tables fileConfig does not have: %v", items)
	}
	text, _, _, _ := helpFlags(t, "-help")
	for _, it := range configSections {
		if !strings.Contains(text, "\n  "+it.Term+"\n") {
			t.Errorf("the help has no line for %s", it.Term)
		}
	}
}
