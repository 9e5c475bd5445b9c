package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFlagsWarn: a password (or a NATS token) in -db or -nats is
// on the command line, where other local users read it (ps, /proc): msimd
// says so, as it does for -account, and points to where it belongs; the
// secret itself is in none of its output. The same setting from a config
// file only its owner may read draws no warning.
func TestSecretFlagsWarn(t *testing.T) {
	const secret = "s3cret"
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  []string // in the output; nil: no warning at all
	}{
		{"db", "", []string{"-db", "postgres://u:" + secret + "@127.0.0.1:1/x", "-key", key},
			[]string{"-db holds a password", "PGPASSFILE", "0600"}},
		{"db password parameter", "", []string{"-db", "postgres://u@127.0.0.1:1/x?password=" + secret, "-key", key},
			[]string{"-db holds a password", "PGPASSFILE"}},
		{"db adduser", "pw\n", []string{"-db", "postgres://u:" + secret + "@127.0.0.1:1/x", "-key", key, "adduser", "bob@example.com"},
			[]string{"-db holds a password", "PGPASSFILE"}},
		{"nats password", "", []string{"-nats", "nats://user:" + secret + "@127.0.0.1:1"},
			[]string{"-nats holds credentials", "cluster.nats", "0600"}},
		{"nats token", "", []string{"-nats", "nats://127.0.0.1:2,nats://" + secret + "@127.0.0.1:1"},
			[]string{"-nats holds credentials", "cluster.nats"}},
		{"no password", "", []string{"-db", "postgres://u@127.0.0.1:1/x", "-key", key, "-nats", "nats://127.0.0.1:1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cli(tc.stdin, tc.args...)
			if err == nil {
				t.Fatalf("msimd started against nothing listening; output:\n%s", out)
			}
			all := out + "\n" + err.Error()
			if strings.Contains(all, secret) {
				t.Errorf("the output shows the secret %q:\n%s", secret, all)
			}
			if tc.want == nil {
				if strings.Contains(out, "holds a password") || strings.Contains(out, "holds credentials") {
					t.Errorf("a warning about a secret with none given:\n%s", out)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output does not say %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("config file 0600", func(t *testing.T) {
		cfg := filepath.Join(dir, "msimd.toml")
		writeFile(t, cfg, fmt.Sprintf("db = %q\nkey = %q\n[cluster]\nnats = [%q]\n",
			"postgres://u:"+secret+"@127.0.0.1:1/x", key, "nats://user:"+secret+"@127.0.0.1:1"), 0o600)
		out, err := cli("", "-config", cfg)
		if err == nil {
			t.Fatalf("msimd started against nothing listening; output:\n%s", out)
		}
		if all := out + "\n" + err.Error(); strings.Contains(all, secret) {
			t.Errorf("the output shows the secret %q:\n%s", secret, all)
		}
		if strings.Contains(out, "holds a password") || strings.Contains(out, "holds credentials") {
			t.Errorf("a warning about the command line for secrets from a 0600 config file:\n%s", out)
		}
	})
}

// TestMalformedAccountFlag: a malformed -account value is refused without
// being repeated (the flag package's own error would quote it, and it may
// be a password).
func TestMalformedAccountFlag(t *testing.T) {
	const secret = "s3cret"
	for _, v := range []string{":" + secret, secret} {
		out, err := cli("", "-account", "alice@example.com:pw", "-account", v)
		if err == nil {
			t.Fatalf("-account %q: got no error", v)
		}
		all := out + "\n" + err.Error()
		if strings.Contains(all, secret) {
			t.Errorf("-account %q: the output shows it:\n%s", v, all)
		}
		if !strings.Contains(all, "the 2nd -account") || !strings.Contains(all, "EMAIL:PASSWORD") {
			t.Errorf("-account %q: got %q, want it to say which -account, and what it wants", v, all)
		}
	}
}
