package channel

import "github.com/msimircd/msimircd/msim"

// Hold stores an IM for a user's account as if it had arrived after their
// IRC client left (tests only).
func (b *Bridge) Hold(user, email string, ev msim.IMEvent) {
	b.mu.Lock()
	mem := b.memory[user]
	if mem == nil {
		mem = newUserMemory()
		b.memory[user] = mem
	}
	b.mu.Unlock()
	mem.hold(email, ev)
}
