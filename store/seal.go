package store

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/msimircd/msimircd/internal/keyfile"
)

// KeySize is the size of the key that seals MSIM passwords.
const KeySize = chacha20poly1305.KeySize

// LoadOrCreateKey returns the key in the file at path, creating the file
// with a new random key and mode 0600 if it does not exist. It refuses a
// key file that group or others may read, that is not a regular file, or
// that does not hold exactly KeySize bytes. The directory must exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, _, err := keyfile.LoadOrCreate(path, KeySize)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
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
