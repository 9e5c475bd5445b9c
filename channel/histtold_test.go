package channel

import (
	"errors"
	"testing"
)

// Identify and register make the session another user's: that user is
// told their own history leaves entries out (the store is behind, or
// failed), once, though the user the session left was told already.
func TestHistoryToldOncePerUserAcrossASwitch(t *testing.T) {
	r := newRig(t, nil)
	leftOut := func() { // two entries of each kind, as the writer reports them
		for range 2 {
			r.s.historyFailure()(ErrHistoryFull)
			r.s.historyFailure()(errors.New("disk full"))
			r.step() // the failure posted to the session
		}
	}
	leftOut()
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
	leftOut()
	for _, text := range []string{"too busy to keep your history", "Your history could not be saved"} {
		if got := r.irc.said(text); len(got) != 2 {
			t.Errorf("told %q %d times; want twice, once for alice and once for carol", text, len(got))
		}
	}
}
