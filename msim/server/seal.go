package server

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/msimircd/msimircd/internal/keyfile"
	"github.com/msimircd/msimircd/msim"
)

// The login hash of a password is all a client needs to log in (spec §3),
// so the store keeps it sealed (XChaCha20-Poly1305) under a key that
// lives in a file of its own: a copy of the database alone lets nobody log
// in.

// KeySize is the size of a key file: 32 random bytes.
const KeySize = chacha20poly1305.KeySize

// ErrWrongKey reports a key file that does not open the database's sealed
// password hashes.
var ErrWrongKey = errors.New("msim/server: the key file does not open this database's sealed password hashes")

// sealer seals and opens password hashes under one key.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (sealer, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return sealer{}, err
	}
	return sealer{aead: aead}, nil
}

// sealAD binds a sealed hash to its account: moved to another record, it
// does not open.
func sealAD(uid msim.UID) []byte { return append([]byte("msimd password hash "), uidKey(uid)...) }

func uidKey(u msim.UID) []byte { return binary.BigEndian.AppendUint64(nil, uint64(u)) }

func (s sealer) seal(uid msim.UID, h msim.PasswordHash) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(h)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, h[:], sealAD(uid))
}

func (s sealer) open(uid msim.UID, b []byte) (msim.PasswordHash, error) {
	var h msim.PasswordHash
	if len(b) < chacha20poly1305.NonceSizeX {
		return h, ErrWrongKey
	}
	p, err := s.aead.Open(nil, b[:chacha20poly1305.NonceSizeX], b[chacha20poly1305.NonceSizeX:], sealAD(uid))
	if err != nil || len(p) != len(h) {
		return h, ErrWrongKey
	}
	copy(h[:], p)
	return h, nil
}

// keyCheckUID is the uid the key check value is sealed for (no account has
// it: uids are positive).
const keyCheckUID msim.UID = 0

// loadKey returns the key of path, creating it when the database has
// nothing sealed yet (sealed false); a sealed database without its key
// file is an error, never a new key.
func loadKey(path string, sealed bool) (key []byte, created bool, err error) {
	key, err = keyfile.Read(path, KeySize)
	switch {
	case err == nil:
		return key, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	case sealed:
		return nil, false, fmt.Errorf("key file %s is missing, and the database's password hashes are sealed under it", path)
	}
	if key, err = keyfile.Create(path, KeySize); err != nil {
		return nil, false, err
	}
	return key, true, nil
}
