package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrWrongPassword: CheckPassword was given a password that does not match.
var ErrWrongPassword = errors.New("store: wrong password")

// argon2id parameters for new hashes (the OWASP recommendation for
// argon2id: 19 MiB, two passes, one lane). A hash records its own
// parameters, so changing these leaves existing hashes valid.
const (
	hashMemory  = 19 * 1024 // KiB
	hashTime    = 2
	hashThreads = 1
	hashSaltLen = 16
	hashKeyLen  = 32
)

// Bounds on the parameters CheckPassword accepts, so a forged hash cannot
// make one check take unbounded memory or time.
const (
	maxHashMemory  = 1 << 20 // KiB
	maxHashTime    = 64
	maxHashThreads = 64
)

var b64 = base64.RawStdEncoding

// argon2Slots bounds how many argon2id computations run at once, in
// HashPassword and CheckPassword alike: each holds hashMemory KiB (19 MiB)
// for its duration, and a user who knows their password can log in on
// many connections at once, none of which a limit on failed guesses
// stops. Unbounded, memory grows with concurrent logins (4096 at once:
// ~76 GiB). One slot per GOMAXPROCS (read once, at start): argon2id with
// one lane is CPU-bound in one goroutine, so more at once than there are
// processors to run them adds memory (GOMAXPROCS × 19 MiB at most here)
// but no throughput. The others wait, blocked in their caller's goroutine
// (the functions take no context); no goroutine is started to wait.
var argon2Slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// idKey is argon2.IDKey; a test replaces it to count calls in flight.
var idKey = argon2.IDKey

// boundedIDKey is idKey holding one of argon2Slots, waiting for one if
// all are taken.
func boundedIDKey(password, salt []byte, passes, memory uint32, threads uint8, keyLen uint32) []byte {
	argon2Slots <- struct{}{}
	defer func() { <-argon2Slots }()
	return idKey(password, salt, passes, memory, threads, keyLen)
}

// HashPassword hashes a password with argon2id under a random salt and
// returns it in the PHC string format:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash> (unpadded base64).
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("store: empty password")
	}
	salt := make([]byte, hashSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("store: password salt: %w", err)
	}
	key := boundedIDKey([]byte(password), salt, hashTime, hashMemory, hashThreads, hashKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, hashMemory, hashTime, hashThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// UnusablePasswordHash returns a well-formed hash that no password is
// known to match: a random salt and a key of zeros (no password is known
// to hash to them), with no hashing done (so it costs nothing). It is the
// password of a user whose password another part checks (a configured
// user, the demo network's), or who has none yet. UnusablePassword
// recognises it.
func UnusablePasswordHash() string {
	salt := make([]byte, hashSaltLen)
	_, _ = rand.Read(salt) // crypto/rand never fails
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, hashMemory, hashTime, hashThreads, b64.EncodeToString(salt), b64.EncodeToString(make([]byte, hashKeyLen)))
}

// UnusablePassword reports whether hash is one of UnusablePasswordHash's,
// whose key is zeros. Those it made before (a random key) are not
// recognised, nor is any hash that HashPassword made.
func UnusablePassword(hash string) bool {
	p, err := parseHash(hash)
	if err != nil {
		return false
	}
	for _, b := range p.key {
		if b != 0 {
			return false
		}
	}
	return true
}

// CheckPassword returns nil if password matches a hash from HashPassword,
// ErrWrongPassword if it does not, and another error if the hash is not one
// it can read. The comparison takes the same time wherever they differ.
func CheckPassword(hash, password string) error {
	p, err := parseHash(hash)
	if err != nil {
		return err
	}
	key := boundedIDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	if subtle.ConstantTimeCompare(key, p.key) != 1 {
		return ErrWrongPassword
	}
	return nil
}

type hashParams struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parseHash(s string) (hashParams, error) {
	var p hashParams
	bad := func(why string) (hashParams, error) {
		return hashParams{}, fmt.Errorf("store: password hash is not an argon2id PHC string: %s", why)
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return bad("want $argon2id$v=…$m=…,t=…,p=…$salt$hash")
	}
	if f[1] != "argon2id" {
		return bad(fmt.Sprintf("algorithm %q", f[1]))
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad(fmt.Sprintf("version %q", f[2]))
	}
	params := strings.Split(f[3], ",")
	if len(params) != 3 {
		return bad(fmt.Sprintf("parameters %q", f[3]))
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return bad(fmt.Sprintf("parameters %q", f[3]))
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return bad(fmt.Sprintf("parameter %s=%q", name, v))
		}
		switch name {
		case "m":
			if n > maxHashMemory {
				return bad(fmt.Sprintf("memory %d KiB is above %d", n, maxHashMemory))
			}
			p.memory = uint32(n)
		case "t":
			if n > maxHashTime {
				return bad(fmt.Sprintf("passes %d are above %d", n, maxHashTime))
			}
			p.time = uint32(n)
		case "p":
			if n > maxHashThreads {
				return bad(fmt.Sprintf("lanes %d are above %d", n, maxHashThreads))
			}
			p.threads = uint8(n)
		}
	}
	var err error
	if p.salt, err = b64.DecodeString(f[4]); err != nil || len(p.salt) < 8 {
		return bad("salt")
	}
	if p.key, err = b64.DecodeString(f[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return bad("hash")
	}
	return p, nil
}
