package store

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of the key that seals MSIM passwords.
const KeySize = chacha20poly1305.KeySize

// LoadOrCreateKey returns the key in the file at path, creating the file
// with a new random key and mode 0600 if it does not exist. It refuses a
// key file that group or others may read or write, or that does not hold
// exactly KeySize bytes. The directory must exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	// Written whole under a temporary name, then linked into place: a
	// crash leaves either no key file or a complete one, and two starts
	// racing end up with the same key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path) // another start made it first
		}
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the new name survives a crash
		d.Close()
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("store: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("store: key file %s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	if st.Size() != KeySize {
		return nil, fmt.Errorf("store: key file %s holds %d bytes, want %d (not a key file of msimircd?)", path, st.Size(), KeySize)
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	return key, nil
}

// sealer seals and opens MSIM passwords with XChaCha20-Poly1305. A sealed
// value is a format byte, a random nonce and the ciphertext with its tag;
// the additional data names the row it belongs to, so a sealed value moved
// to another account does not open.
type sealer struct{ aead cipher.AEAD }

const sealFormat = 1

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: key of %d bytes, want %d", len(key), KeySize)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("store: key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain []byte, ad string) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealFormat
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("store: seal: %w", err)
	}
	return s.aead.Seal(out, out[1:], plain, []byte(ad)), nil
}

func (s *sealer) open(sealed []byte, ad string) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealFormat {
		return nil, errors.New("store: a sealed value is malformed")
	}
	plain, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(ad))
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}

// passwordAD is the additional data of an account's sealed MSIM password.
func passwordAD(user, email string) string {
	return "msimircd account password\x00" + user + "\x00" + email
}

// keyCheckAD is the additional data of the value Open seals once per
// database to tell at start whether it was given the right key.
const keyCheckAD = "msimircd key check"
