//go:build !linux

package histproc

import "os/exec"

// dieWithParent does nothing where msimircd asks for no parent-death
// signal: the child still checks at start that its parent is the gateway
// that started it (checkParent), and ends when its stdin does.
func dieWithParent(*exec.Cmd) {}
