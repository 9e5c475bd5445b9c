// Package ptytest opens pseudo-terminals for the tests of the commands
// that read a password from their terminal (cmd/msimd, cmd/msimircd). It
// is the tests' only: nothing else imports it.
package ptytest
