// Package keyfile reads and creates the small secret files that keep keys
// outside a database: the MSIM server's sealing key, the gateway store's
// sealing key and the demo directory's key. A key file holds exactly its
// size in random bytes, is a regular file, belongs to the user reading it
// and only they may read it (mode 0600), or belongs to root and at most
// root's group may read it (0640); anything else is refused with an error
// that says how to fix it (see checkAccess). Nothing here logs or
// returns a key in an error.
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
	if err := checkAccess(path, st); err != nil {
		return nil, err
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

// checkAccess refuses a key file others could read or change, as
// PostgreSQL does its server key. It must belong to the user reading it,
// readable by that user only (mode 0600 or 0400), or to root, readable by
// root and at most a group (0640: root:msimd, as packages install keys and
// a Kubernetes secret with an fsGroup mounts them). Another owner could
// read or replace the key, or open its mode to all, whenever they like.
// root itself reads any owner's key (it could anyway: the administrator
// running a command on a service's files). The check is of the file
// opened, so a symbolic link to the key is judged by its target.
func checkAccess(path string, st fs.FileInfo) error {
	uid := -1
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		uid = int(sys.Uid)
	}
	return access(path, st.Mode().Perm(), uid, geteuid())
}

var geteuid = os.Geteuid // a test reads as another user

// access is checkAccess for a file of mode perm owned by uid (-1: not
// known), read by euid.
func access(path string, perm fs.FileMode, uid, euid int) error {
	switch {
	case uid == 0 && perm&0o037 != 0:
		return fmt.Errorf("key file %s has mode %04o: only its owner may read it (chmod 600 %s; a key of root's may let its group read it: chmod 640)", path, perm, path)
	case uid != 0 && perm&0o077 != 0:
		return fmt.Errorf("key file %s has mode %04o: only its owner may read it (chmod 600 %s)", path, perm, path)
	case uid >= 0 && uid != 0 && uid != euid && euid != 0:
		return fmt.Errorf("key file %s is owned by user %d: only the user reading it (uid %d) or root may own it: chown it, or run as its owner", path, uid, euid)
	}
	return nil
}

var link = os.Link // a test stands in a file system without hard links

// Create writes a new random key of size bytes to path, mode 0600, failing
// if the file exists. The key is written whole under a temporary name in
// the same directory and then linked into place, so a process starting at
// the same time, or a crash, never sees a partial key file (on a file
// system without hard links it is written in place: see createInPlace).
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
		err = link(tmp, path) // fails if path exists: the first writer wins
		if noHardLinks(err) {
			err = createInPlace(path, key)
		}
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

// noHardLinks reports whether err is link's on a file system that has no
// hard links (FAT, some FUSE and network ones).
func noHardLinks(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)
}

// createInPlace writes the key straight to path, still failing if the file
// exists so the first writer wins, where no hard link can put a whole file
// into place: a process reading it meanwhile, or after a crash, may find
// it short, which Read refuses as damaged rather than use.
func createInPlace(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
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
