package store

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	check(t, "HashPassword", err)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash: got %q, want a PHC argon2id string with the default parameters", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Errorf("hash holds the password: %q", h)
	}
	if err := CheckPassword(h, "correct horse"); err != nil {
		t.Errorf("CheckPassword(right): got %v, want nil", err)
	}
	for _, wrong := range []string{"", "correct hors", "correct horse ", "Correct horse"} {
		if err := CheckPassword(h, wrong); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("CheckPassword(%q): got %v, want ErrWrongPassword", wrong, err)
		}
	}
	h2, _ := HashPassword("correct horse")
	if h2 == h {
		t.Error("two hashes of one password are equal, want different salts")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("HashPassword(\"\"): got no error")
	}
}

// TestCheckPasswordParameters: a hash records its parameters, and one
// made with other parameters than HashPassword's still checks.
func TestCheckPasswordParameters(t *testing.T) {
	key := argon2.IDKey([]byte("pw"), []byte("saltsalt"), 1, 64, 1, 16)
	h := "$argon2id$v=19$m=64,t=1,p=1$" + b64.EncodeToString([]byte("saltsalt")) + "$" + b64.EncodeToString(key)
	if err := CheckPassword(h, "pw"); err != nil {
		t.Errorf("CheckPassword with m=64,t=1: got %v, want nil", err)
	}
	if err := CheckPassword(h, "px"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("CheckPassword(wrong) with m=64,t=1: got %v, want ErrWrongPassword", err)
	}
}

func TestCheckPasswordMalformed(t *testing.T) {
	good, _ := HashPassword("pw")
	f := strings.Split(good, "$")
	for _, c := range []struct{ name, hash string }{
		{"empty", ""},
		{"plain password", "pw"},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuu"},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1)},
		{"old version", strings.Replace(good, "v=19", "v=16", 1)},
		{"missing parameter", strings.Join([]string{"", f[1], f[2], "m=19456,t=2", f[4], f[5]}, "$")},
		{"parameters out of order", strings.Join([]string{"", f[1], f[2], "t=2,m=19456,p=1", f[4], f[5]}, "$")},
		{"memory too large", strings.Join([]string{"", f[1], f[2], "m=99999999,t=2,p=1", f[4], f[5]}, "$")},
		{"too many passes", strings.Join([]string{"", f[1], f[2], "m=19456,t=1000,p=1", f[4], f[5]}, "$")},
		{"zero lanes", strings.Join([]string{"", f[1], f[2], "m=19456,t=2,p=0", f[4], f[5]}, "$")},
		{"too many lanes", strings.Join([]string{"", f[1], f[2], "m=19456,t=2,p=255", f[4], f[5]}, "$")},
		{"bad salt", strings.Join([]string{"", f[1], f[2], f[3], "!!", f[5]}, "$")},
		{"short salt", strings.Join([]string{"", f[1], f[2], f[3], "c2FsdA", f[5]}, "$")},
		{"bad hash", strings.Join([]string{"", f[1], f[2], f[3], f[4], "%%"}, "$")},
		{"short hash", strings.Join([]string{"", f[1], f[2], f[3], f[4], "c2FsdA"}, "$")},
		{"extra field", good + "$x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckPassword(c.hash, "pw")
			if err == nil || errors.Is(err, ErrWrongPassword) {
				t.Errorf("CheckPassword(%q): got %v, want a malformed-hash error", c.hash, err)
			}
		})
	}
}

func TestUnusablePasswordHash(t *testing.T) {
	h := UnusablePasswordHash()
	if _, err := parseHash(h); err != nil {
		t.Fatalf("UnusablePasswordHash() = %q does not parse: %v", h, err)
	}
	for _, pw := range []string{"", "x", "password"} {
		if err := CheckPassword(h, pw); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("CheckPassword(unusable, %q): got %v, want ErrWrongPassword", pw, err)
		}
	}
	if UnusablePasswordHash() == h {
		t.Error("two unusable hashes are equal")
	}
	if !UnusablePassword(h) {
		t.Errorf("UnusablePassword(%q): got false, want true", h)
	}
	real, err := HashPassword("password")
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{real, "", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$"} {
		if UnusablePassword(other) {
			t.Errorf("UnusablePassword(%q): got true, want false", other)
		}
	}
}
