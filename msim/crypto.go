package msim

import (
	"bytes"
	"crypto/rand"
	"crypto/rc4"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"unicode/utf16"
)

// NonceSize is the length of the login challenge's nc field.
const NonceSize = 64

// PasswordHash is H1 of the login crypto: SHA-1 of the UTF-16LE encoding of
// the password's first ten characters, lower-cased. It is all a server needs
// to check a login, so it is what a server stores instead of the password.
type PasswordHash [sha1.Size]byte

// HashPassword computes the PasswordHash of a password.
func HashPassword(password string) PasswordHash {
	runes := []rune(password)
	if len(runes) > 10 {
		runes = runes[:10]
	}
	lower := []rune(strings.ToLower(string(runes)))
	u16 := utf16.Encode(lower)
	b := make([]byte, 2*len(u16))
	for i, c := range u16 {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return PasswordHash(sha1.Sum(b))
}

// NewNonce returns 64 cryptographically random bytes for a login challenge.
func NewNonce() ([]byte, error) {
	b := make([]byte, NonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ErrBadNonce reports a challenge nc that is not 64 bytes long.
var ErrBadNonce = errors.New("msim: challenge nonce is not 64 bytes")

func rc4Key(h PasswordHash, nonce []byte) []byte {
	s := sha1.New()
	s.Write(h[:])
	s.Write(nonce[32:64])
	return s.Sum(nil)[:16]
}

// LoginPlaintext builds the plaintext of the login response: nonce1, the
// e-mail address, a NUL, 0xFB padding to a multiple of four, then the count
// of IPv4 addresses and the addresses.
func LoginPlaintext(nonce []byte, email string, ips []netip.Addr) []byte {
	p := make([]byte, 0, 32+len(email)+8+4*len(ips))
	p = append(p, nonce[:32]...)
	p = append(p, email...)
	p = append(p, 0)
	for len(p)%4 != 0 {
		p = append(p, 0xFB)
	}
	var v4 []netip.Addr
	for _, a := range ips {
		if a.Is4() || a.Is4In6() {
			v4 = append(v4, a.Unmap())
		}
	}
	p = binary.BigEndian.AppendUint32(p, uint32(len(v4)))
	for _, a := range v4 {
		b := a.As4()
		p = append(p, b[:]...)
	}
	return p
}

// LoginResponse computes the login2 response for a challenge nonce, e-mail
// address and password hash, listing the given IPv4 addresses (none is
// usual).
func LoginResponse(nonce []byte, email string, h PasswordHash, ips []netip.Addr) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, ErrBadNonce
	}
	c, err := rc4.NewCipher(rc4Key(h, nonce))
	if err != nil {
		return nil, err
	}
	p := LoginPlaintext(nonce, email, ips)
	c.XORKeyStream(p, p)
	return p, nil
}

// VerifyLogin checks a login2 response against the challenge nonce and the
// account's password hash: the decrypted response must start with nonce1
// followed by the NUL-terminated e-mail address (compared case-insensitively
// with email). It reports the IPv4 addresses the client listed, if any.
func VerifyLogin(nonce []byte, h PasswordHash, email string, response []byte) (ok bool, ips []netip.Addr) {
	if len(nonce) != NonceSize || len(response) < 32+1+4 {
		return false, nil
	}
	c, err := rc4.NewCipher(rc4Key(h, nonce))
	if err != nil {
		return false, nil
	}
	p := make([]byte, len(response))
	c.XORKeyStream(p, response)
	if subtle.ConstantTimeCompare(p[:32], nonce[:32]) != 1 {
		return false, nil
	}
	rest := p[32:]
	nul := bytes.IndexByte(rest, 0)
	if nul < 0 || !strings.EqualFold(string(rest[:nul]), email) {
		return false, nil
	}
	// The address list is informational; read what is well-formed.
	off := 32 + nul + 1
	for off%4 != 0 && off < len(p) && p[off] == 0xFB {
		off++
	}
	if off+4 <= len(p) {
		n := int(binary.BigEndian.Uint32(p[off:]))
		off += 4
		for i := 0; i < n && off+4 <= len(p); i++ {
			ips = append(ips, netip.AddrFrom4([4]byte(p[off:off+4])))
			off += 4
		}
	}
	return true, ips
}
