package store

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseHash: a password hash read from the database, whatever it
// holds, parses to parameters within the bounds CheckPassword accepts or
// gives the error that says it is not one; nothing panics.
func FuzzParseHash(f *testing.F) {
	h, err := HashPassword("correct horse")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h)
	f.Add(UnusablePasswordHash())
	f.Add("$argon2id$v=19$m=1048577,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseHash(s)
		if err != nil {
			if p.salt != nil || p.key != nil {
				t.Fatalf("an error with parameters: %+v", p)
			}
			if !strings.HasPrefix(err.Error(), "store: password hash is not an argon2id PHC string: ") {
				t.Fatalf("error %q does not say what is wrong", err)
			}
			return
		}
		if p.memory == 0 || p.memory > maxHashMemory || p.time == 0 || p.time > maxHashTime || p.threads == 0 || p.threads > maxHashThreads {
			t.Fatalf("parameters out of bounds: m=%d t=%d p=%d", p.memory, p.time, p.threads)
		}
		if len(p.salt) < 8 || len(p.key) < 16 || len(p.key) > 64 {
			t.Fatalf("salt of %d bytes, key of %d", len(p.salt), len(p.key))
		}
	})
}

// FuzzOpenSealed: a sealed value read from the database, whatever it
// holds, opens only if seal made it under this key for that row (each
// fuzzing worker seals its own copy of the seed, under a nonce of its
// own); anything else is an error, and nothing panics.
func FuzzOpenSealed(f *testing.F) {
	s, err := newSealer(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	good, err := s.seal([]byte("Secret1"), passwordAD("alice", "alice@example.com"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "alice@example.com")
	f.Add(good[:len(good)-1], "alice@example.com")
	f.Add([]byte{sealFormat}, "alice@example.com")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, sealed []byte, email string) {
		plain, err := s.open(sealed, passwordAD("alice", email))
		if err != nil {
			if plain != nil {
				t.Fatalf("an error with plain text %q", plain)
			}
			return
		}
		if email != "alice@example.com" || string(plain) != "Secret1" {
			t.Fatalf("%x for %q opened to %q", sealed, email, plain)
		}
	})
}
