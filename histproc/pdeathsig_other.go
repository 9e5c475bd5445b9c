//go:build !linux

package histproc

import "os/exec"

// dieWithParent does nothing where msimircd asks for no parent-death
// signal: the child ends when its stdin does, which a dead gateway
// closes, once its current batch is done.
func dieWithParent(*exec.Cmd) {}
