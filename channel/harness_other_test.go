//go:build !linux

package channel_test

import "net"

// unread is how many bytes c's socket has received that nobody has read
// yet; -1 here, where that cannot be told.
func unread(net.Conn) int { return -1 }
