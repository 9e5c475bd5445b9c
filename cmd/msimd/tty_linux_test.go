package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msimircd/msimircd/internal/ptytest"
)

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestAddUserPromptsWithoutEcho: on a terminal, adduser prompts for the
// password twice with echo off, and refuses two that differ.
func TestAddUserPromptsWithoutEcho(t *testing.T) {
	cases := []struct {
		name    string
		typed   [2]string
		wantErr string
	}{
		{"same twice", [2]string{"Secret9", "Secret9"}, ""},
		{"a typo", [2]string{"Secret9", "Secret8"}, "differ"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			master, tty := ptytest.Open(t)
			data := filepath.Join(t.TempDir(), "msim.db")
			var out syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- run(context.Background(), []string{"-data", data, "adduser", "ann@example.com"}, env{stdin: tty, stderr: &out})
			}()
			echoOff := func() bool {
				tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
				return err == nil && tio.Lflag&unix.ECHO == 0
			}
			for i, prompt := range []string{"Password for ann@example.com: ", "Again: "} {
				waitFor(t, fmt.Sprintf("prompt %q", prompt), func() bool { return strings.Contains(out.String(), prompt) })
				waitFor(t, "echo off", echoOff)
				if _, err := master.WriteString(tc.typed[i] + "\n"); err != nil {
					t.Fatal(err)
				}
			}
			err := <-done
			_ = master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			buf := make([]byte, 4096)
			n, _ := master.Read(buf)
			if strings.Contains(string(buf[:n]), "Secret") || strings.Contains(out.String(), "Secret") {
				t.Errorf("the password was echoed: terminal %q, output %q", buf[:n], out.String())
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("adduser: %v\n%s", err, out.String())
			}
			addr, _ := start(t, "-data", data)
			if _, m := login(t, addr, "ann@example.com", tc.typed[0]); !m.Is("lc") {
				t.Errorf("login: got %v, want lc 2", m)
			}
		})
	}
}
