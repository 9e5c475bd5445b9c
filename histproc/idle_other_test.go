//go:build !linux

package histproc

import "testing"

// requireLeaveIdle skips: there are no priorities to test.
func requireLeaveIdle(t *testing.T) {
	t.Helper()
	t.Skip("no CPU priorities here")
}
