package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// nopConn is a connection that reads nothing and swallows writes.
type nopConn struct{}

func (nopConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1863} }
func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzHandle feeds arbitrary bytes to a session's request handling, both
// before login and logged in (with the capture's session key, so that
// requests from the seeds get past the key check). Nothing may panic.
func FuzzHandle(f *testing.F) {
	for _, cm := range loadCapture(f) {
		if cm.Dir == "client" {
			f.Add([]byte(cm.Wire))
		}
	}
	f.Add([]byte("\\status\\5\\sesskey\\267577152\\statstring\\a/1b|c\\locstring\\\\final\\"))
	f.Add([]byte("\\blocklist\\\\sesskey\\267577152\\idlist\\w1|c1|b+|*|a+|1000000|b-|x|\\final\\"))
	f.Add([]byte("\\persist\\1\\sesskey\\267577152\\cmd\\514\\dsn\\0\\lid\\9\\rid\\1\\body\\ContactID=1000001\x1cVisibility=2\\final\\"))
	f.Add([]byte("\\setinfo\\\\sesskey\\267577152\\info\\UserName=x\x1cDisplayName=y\\final\\garbage\\\\"))
	f.Add([]byte("\\bm\\1\\sesskey\\267577152\\t\\6221\\msg\\hi\\final\\"))

	l := logrus.New()
	l.SetOutput(io.Discard)
	srv, err := New(Config{Demo: true, SendQ: 64}, NewMemStore(), logrus.NewEntry(l))
	if err != nil {
		f.Fatal(err)
	}
	// Failed logins are slowed (limits.go), and every input of a worker
	// fails its logins against this one server: the waits would add up
	// until the fuzzing engine took the worker for hung. The delays are
	// limits_test.go's; here they pass at once.
	srv.sleep = func(time.Duration, <-chan struct{}) bool { return true }
	uid, err := srv.AddAccount("alice@example.com", "Secret1", "alice")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := srv.AddAccount("bob@example.com", "hunter2", "bob"); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		for _, loggedIn := range []bool{false, true} {
			s := newSession(srv, nopConn{}, 1)
			if !s.challenge() {
				t.Fatal("no challenge")
			}
			if loggedIn {
				s.uid, s.key, s.loggedIn = uid, 267577152, true
				s.rt.contacts = map[msim.UID]struct{}{TomUID: {}}
				srv.reg.login(s, func(*session, [][]byte) {})
			}
			dec := msim.NewDecoder(bytes.NewReader(b))
			dec.MaxSize = 4096
			for i := 0; i < 64; i++ {
				m, err := dec.Decode()
				if err != nil {
					if s.decodeError(err) {
						continue
					}
					break
				}
				if !s.handle(m) {
					break
				}
			}
			s.finish()
			if srv.reg.count() != 0 {
				t.Fatalf("%d sessions left registered", srv.reg.count())
			}
		}
	})
}

// FuzzRescuedIM: whatever follows an unwritten IM's \bm\1\ (the seeds
// are the rest of IMs), rescuedIM does not panic, what it would store
// names its sender, and that is the sender it was queued from if known.
func FuzzRescuedIM(f *testing.F) {
	f.Add([]byte(`f\1000000\cv\673\msg\hi\final\`))
	f.Add([]byte(`f\1000000\msg\cut short`))
	f.Add([]byte(`f\1000000\msg\a/2b\final\x`))
	f.Add([]byte(`msg\no sender\final\`))
	f.Fuzz(func(t *testing.T, rest []byte) {
		b := append([]byte(`\bm\1\`), rest...)
		om, _, text := rescuedIM(b, 0)
		if text && om.From <= 0 {
			t.Fatalf("rescuedIM(%q, 0) stores an IM from %d", b, om.From)
		}
		if om, _, text := rescuedIM(b, 7); text && om.From != 7 {
			t.Fatalf("rescuedIM(%q, 7) stores an IM from %d", b, om.From)
		}
	})
}
