// Package keyfile reads and creates the small secret files that keep keys
// outside a database: the MSIM server's sealing key, the gateway store's
// sealing key and the demo directory's key. A key file holds exactly its
// size in random bytes, is a regular file, and only its owner may read it
// (mode 0600); anything else is refused with an error that says how to
// fix it. Nothing here logs or returns a key in an error.
package keyfile

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Read loads the key of size bytes at path. A missing file is an error
// that errors.Is fs.ErrNotExist.
func Read(path string, size int) ([]byte, error) {
	// Without blocking: opening a named pipe would wait for a writer
	// before the checks below could refuse it. A regular file reads the
	// same either way.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: only its owner may read it (chmod 600 %s)", path, perm, path)
	}
	key, err := io.ReadAll(io.LimitReader(f, int64(size)+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(key) != size {
		return nil, fmt.Errorf("key file %s is damaged: want exactly %d bytes, found %d or more", path, size, len(key))
	}
	return key, nil
}

// Create writes a new random key of size bytes to path, mode 0600, failing
// if the file exists. The key is written whole under a temporary name in
// the same directory and then linked into place, so a process starting at
// the same time, or a crash, never sees a partial key file.
func Create(path string, size int) ([]byte, error) {
	key := make([]byte, size)
	_, _ = rand.Read(key) // crypto/rand never fails
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*")
	if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(key)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path) // fails if path exists: the first writer wins
	}
	if err != nil {
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the new name survives a crash
		d.Close()
	}
	return key, nil
}

// LoadOrCreate reads the key at path, or creates it when there is no file.
// created tells which.
func LoadOrCreate(path string, size int) (key []byte, created bool, err error) {
	key, err = Read(path, size)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = Create(path, size)
		if errors.Is(err, fs.ErrExist) { // another process made it first
			key, err = Read(path, size)
			return key, false, err
		}
		return key, err == nil, err
	}
	return key, false, err
}
