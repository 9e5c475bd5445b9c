package main

import (
	"regexp"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msimircd/msimircd/internal/ptytest"
)

// TestBinaryHangupWhileAskingForAPassword: msimircd -msim-account EMAIL
// on a terminal asks for the password, and a kill -HUP while it waits
// for it does not end the process: once the password is typed msimircd
// starts, and the hangup reloads (here, without a config file, the reload
// is refused, as any reload without one is).
func TestBinaryHangupWhileAskingForAPassword(t *testing.T) {
	bin := binary(t, ".")
	master, tty := ptytest.Open(t)
	p := startProcIn(t, "msimircd", nil, tty, bin, "-state", t.TempDir(), "-listen", "127.0.0.1:0", "-msim-account", "ann@example.com")
	// The password is read with echo off: once it is off, msimircd waits
	// on the terminal.
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err == nil && tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("msimircd never asked for the password")
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := master.WriteString("Secret12\n"); err != nil {
		t.Fatal(err)
	}
	// The gateway's start and the reload log in either order.
	either := regexp.MustCompile(`(IRC on 127\.0\.0\.1)|(without a config file.*nothing to reload)`)
	var started, reloaded bool
	for !started || !reloaded {
		m := p.waitLog(either)
		started, reloaded = started || m[1] != "", reloaded || m[2] != ""
	}
}
