package main

import (
	"bytes"
	"context"
	"crypto/rand"
	be "encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	bolt "go.etcd.io/bbolt"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// writeOldMSIMData writes the embedded network's data file as earlier
// msimircd versions did (bbolt, hashes in clear as before they were
// sealed): alice and bob, and an offline IM from alice to bob. With
// sealed, it holds a key check value that needs a key file not at hand.
func writeOldMSIMData(t *testing.T, path string, sealed bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(tx *bolt.Tx, bucket string, k []byte, v any) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		buf, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return b.Put(k, buf)
	}
	uid := func(u msim.UID) []byte { return be.BigEndian.AppendUint64(nil, uint64(u)) }
	alice, bob := server.FirstUID, server.FirstUID+1
	err = db.Update(func(tx *bolt.Tx) error {
		for _, a := range []server.Account{
			{UID: alice, Email: "alice@example.com", UserName: "alice", Hash: msim.HashPassword("Secret1")},
			{UID: bob, Email: "bob@example.com", UserName: "bob", Hash: msim.HashPassword("hunter2")},
		} {
			if err := put(tx, "accounts", uid(a.UID), a); err != nil {
				return err
			}
		}
		m := server.OfflineMessage{From: alice, Time: time.Now(), Body: "from before the upgrade"}
		if err := put(tx, "offline", be.BigEndian.AppendUint64(uid(bob), 1), m); err != nil {
			return err
		}
		if !sealed {
			return nil
		}
		meta, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		check := make([]byte, 72)
		_, _ = rand.Read(check)
		return meta.Put([]byte("keycheck"), check)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startState builds msimircd on the state directory dir and returns it
// and its log.
func startState(t *testing.T, dir string) (*gateway, *logtest.Hook, error) {
	t.Helper()
	cfg := Defaults()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.Store.StateDir = dir
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	g, err := build(context.Background(), cfg, logrus.NewEntry(l))
	return g, hook, err
}

func logged(hook *logtest.Hook, text string) bool {
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// TestEmbeddedImportsOldDataFile: an earlier msimircd's msim.db (bbolt)
// in the state directory is imported at the start: its accounts log in,
// the offline IM waits, msim.db is SQLite now and the old file is kept as
// msim.db.bolt-imported. The next start imports nothing.
func TestEmbeddedImportsOldDataFile(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "msim.db")
	writeOldMSIMData(t, data, false)
	old, _ := os.ReadFile(data)
	g, hook, err := startState(t, dir)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if !logged(hook, "imported into SQLite") {
		t.Error("no log line about the import")
	}
	if err := g.emb.srv.CheckPassword("alice@example.com", "Secret1"); err != nil {
		t.Errorf("alice after the import: %v", err)
	}
	if got, err := g.emb.store.TakeOffline(server.FirstUID + 1); err != nil || len(got) != 1 || got[0].Body != "from before the upgrade" {
		t.Errorf("bob's offline IMs: got %+v, %v", got, err)
	}
	g.close()
	if kept, _ := os.ReadFile(data + ".bolt-imported"); !bytes.Equal(kept, old) {
		t.Error("the old file is not kept as msim.db.bolt-imported")
	}
	if server.IsBoltFile(data) {
		t.Error("msim.db is still a bbolt file")
	}
	if st, err := os.Stat(data + ".key"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: got %v, %v; want mode 0600", st, err)
	}

	g, hook, err = startState(t, dir)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	defer g.close()
	if logged(hook, "imported") {
		t.Error("the second start imported again")
	}
	if err := g.emb.srv.CheckPassword("bob@example.com", "hunter2"); err != nil {
		t.Errorf("bob at the second start: %v", err)
	}
}

// TestEmbeddedOldDataFileRefused: an old data file that cannot be
// imported (its key file is missing) stops the start with an error naming
// it, and is left as it was; no key file is made for it.
func TestEmbeddedOldDataFileRefused(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "msim.db")
	writeOldMSIMData(t, data, true)
	old, _ := os.ReadFile(data)
	g, _, err := startState(t, dir)
	if err == nil {
		g.close()
		t.Fatal("started; want the start refused")
	}
	if !strings.Contains(err.Error(), data) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("got %v, want an error naming %s and saying its key file is missing", err, data)
	}
	if now, _ := os.ReadFile(data); !bytes.Equal(now, old) {
		t.Error("the old file changed")
	}
	for _, f := range []string{data + ".key", data + ".bolt-imported", data + ".importing"} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v)", filepath.Base(f), err)
		}
	}
}
