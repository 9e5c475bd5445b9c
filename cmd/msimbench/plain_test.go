package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNoInstallByDefault: msimbench never installs a package unless asked.
func TestNoInstallByDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-quick"}, false},
		{[]string{"-install-ngircd"}, true},
		{[]string{"-quick", "-install-ngircd"}, true},
	}
	for _, tc := range tests {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("parseFlags(%q): %v", tc.args, err)
		}
		if o.installNgircd != tc.want {
			t.Errorf("parseFlags(%q): got installNgircd %v, want %v", tc.args, o.installNgircd, tc.want)
		}
	}
}

// TestSkipWithoutNgircd: without ngircd and without -install-ngircd the
// plain mode is skipped with a reason naming the package and the flags.
func TestSkipWithoutNgircd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ngircd"); err == nil {
		t.Skip("ngircd is installed here")
	}
	if _, err := os.Stat("/usr/sbin/ngircd"); err == nil {
		t.Skip("ngircd is installed here")
	}
	_, _, _, _, skip := plainTarget(&env{tmp: t.TempDir()}, "", false)
	if skip != skipNoNgircd {
		t.Fatalf("skip: got %q, want %q", skip, skipNoNgircd)
	}
	for _, w := range []string{"apt-get install ngircd", "-install-ngircd", "-plain-irc"} {
		if !strings.Contains(skip, w) {
			t.Errorf("skip reason %q: want it to mention %q", skip, w)
		}
	}
}
