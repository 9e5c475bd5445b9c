package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/msim"
)

// Defaults of the limits in Config.
const (
	DefaultMaxConnections           = 10000
	DefaultMaxConnectionsPerAddr    = 64
	DefaultOfflinePerRecipientBytes = 1 << 20   // all offline IMs waiting for one user
	DefaultOfflinePerSenderBytes    = 128 << 10 // what one sender may have waiting for one user
)

// DefaultAccountFailures is the per-account policy for failed logins: a
// growing delay capped at a few seconds and never a refusal, so guessing
// from elsewhere cannot lock the account's owner out.
func DefaultAccountFailures() guard.FailureConfig {
	c := guard.DefaultFailures()
	c.RefuseAfter = -1
	c.MaxDelay = 5 * time.Second
	return c
}

// ErrCodeRefused is the fatal error a connection gets when a connection cap
// refuses it, or a login from an address refused for its failed logins:
// "try again later". The protocol has no code for this; this one is
// msimircd's. Clients take it as a network error and retry.
const ErrCodeRefused = 4354

// Texts of the limits' errors.
const (
	textBadLogin     = "The e-mail address or password is incorrect."
	textLoginsLater  = "Too many failed logins from your address; try again later."
	textSenderFull   = "Message not stored: you have too much waiting for user "
	textRefusedConns = "The server refused the connection: "
)

// rescueFactor is how far past the offline caps the IMs a session closed
// at once did not write (rescueIMs) may fill their recipient's mailbox:
// up to rescueFactor times the caps on what waits for one recipient (its
// messages and, when capped, its bytes; the cap per sender does not
// apply). Each such session adds at most its send queue, but a client
// that logs in again and again and reads nothing while a sender floods
// it would add one every time; past the ceiling the IMs are refused and
// their senders told, as for an IM the caps refuse (those whose senders
// cannot be told go on to untoldFactor's ceiling).
const rescueFactor = 2

// untoldFactor is the hard ceiling on a mailbox, as a multiple of the same
// caps: an IM past rescueFactor's ceiling whose sender cannot be told of a
// refusal (not logged in here, or its session closing or full) is stored
// past that ceiling rather than lost, but only up to this one (no cap on
// bytes stays none; the one on messages always holds). A sender that
// floods without reading its own socket, at a recipient that logs in
// again and again and reads nothing, would otherwise grow the mailbox by a
// send queue each time without bound; past this ceiling such an IM is
// lost, logged and counted (lostUntold).
const untoldFactor = 4

// capOf resolves a cap of Config: 0 takes def, a negative value is no cap
// (0 for guard and the Store).
func capOf[T int | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// initLimits builds the limiters of cfg (with its defaults applied).
func (s *Server) initLimits() {
	cfg := &s.cfg
	s.logins = guard.NewFailureLimiter(cfg.LoginFailures)
	acct := cfg.AccountFailures
	if acct.RefuseAfter == 0 {
		acct.RefuseAfter = -1
	}
	if acct.MaxDelay <= 0 {
		acct.MaxDelay = DefaultAccountFailures().MaxDelay
	}
	s.accounts = guard.NewFailureLimiter(acct)
	s.connCap = guard.NewConnLimiter(capOf(cfg.MaxConnections, DefaultMaxConnections),
		capOf(cfg.MaxConnectionsPerAddr, DefaultMaxConnectionsPerAddr))
	s.connLog = guard.NewQuota(1, time.Minute, cfg.LoginFailures.Clock)
	s.offlineLimits = OfflineLimits{
		Messages:    maxOffline,
		Bytes:       capOf(cfg.OfflinePerRecipientBytes, DefaultOfflinePerRecipientBytes),
		SenderBytes: capOf(cfg.OfflinePerSenderBytes, DefaultOfflinePerSenderBytes),
	}
	s.rescueLimits = OfflineLimits{
		Messages: rescueFactor * s.offlineLimits.Messages,
		Bytes:    rescueFactor * s.offlineLimits.Bytes, // no cap stays no cap
	}
	s.untoldLimits = OfflineLimits{
		Messages: untoldFactor * s.offlineLimits.Messages,
		Bytes:    untoldFactor * s.offlineLimits.Bytes,
	}
	s.sleep, s.inflowWait, s.now = sleep, sleep, time.Now
	_, _ = rand.Read(s.decoy[:])
}

// sleep waits d, or until done is closed (false then).
func sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// trusted reports whether a's connections are exempt from the per-address
// limits (Config.TrustedNets).
func (s *Server) trusted(a net.Addr) bool {
	if len(s.cfg.TrustedNets) == 0 {
		return false
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrKey is the limiters' key for a remote address, "" when it is trusted.
func (s *Server) addrKey(a net.Addr) string {
	if s.trusted(a) {
		return ""
	}
	return guard.AddrKey(a)
}

// maxKeyEmail is the longest e-mail address an account's failure key
// holds as it is: the longest a mail path allows (RFC 5321).
const maxKeyEmail = 254

// accountKey is the account limiter's key for the e-mail address a login
// names: the address itself, case folded, or for one longer than
// maxKeyEmail its SHA-256 digest, so that a key's size is bounded
// whatever the login sends (a message may be as large as MaxMessage), in
// the limiter's table and in a shared store of failures alike.
func accountKey(email string) string {
	e := fold(email)
	if len(e) <= maxKeyEmail {
		return "account:" + e
	}
	sum := sha256.Sum256([]byte(e))
	return "account-sha256:" + hex.EncodeToString(sum[:])
}

// loggedEmail is the e-mail address a login names as the log shows it:
// whole up to maxKeyEmail bytes (the longest a mail path allows), else its start,
// cut on a character's boundary, and its length, so a stranger's long
// names do not grow the log by a message's size at each try.
func loggedEmail(email string) string {
	if len(email) <= maxKeyEmail {
		return email
	}
	cut := maxKeyEmail
	for cut > 0 && !utf8.RuneStart(email[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", email[:cut], len(email))
}

// admit counts a new connection against the caps; a trusted address counts
// toward the total only.
func (s *Server) admit(nc net.Conn, id uint64) (release func(), err error) {
	key := s.addrKey(nc.RemoteAddr())
	if key == "" {
		key = "trusted:" + msim.UID(id).String() // a key of its own: only the total applies
	}
	return s.connCap.Acquire(key)
}

// refuseConn tells a connection over a cap why it is refused, and closes
// it. The first refusal per address per minute is logged as a warning, the
// rest at debug level, so a flood of connections is not a flood of lines.
func (s *Server) refuseConn(nc net.Conn, err error) {
	log := s.log.WithFields(logrus.Fields{"remote": nc.RemoteAddr().String()}).WithError(err)
	if s.connLog.Allow(guard.AddrKey(nc.RemoteAddr())) {
		log.Warn("connection refused: over a connection cap")
	} else {
		log.Debug("connection refused: over a connection cap")
	}
	var le *guard.ConnLimitError
	text := "too many connections"
	if errors.As(err, &le) {
		text = le.Error()
	}
	// The message is small and the socket new: it fits the send buffer, so
	// the write does not hold up the accept loop.
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	s.metrics.protocolError(ErrCodeRefused)
	_, _ = nc.Write(msim.Encode(msim.ErrorMessage(ErrCodeRefused, true, textRefusedConns+text+"; try again later.")))
	nc.Close()
}

// loginWait asks the failed-login limiters about an attempt: the delay to
// wait before verifying it, or guard.ErrRefused.
func (s *Server) loginWait(addrKey, acctKey string) (time.Duration, error) {
	var wait time.Duration
	if addrKey != "" {
		w, err := s.logins.Check(addrKey)
		if err != nil {
			return 0, err
		}
		wait = w
	}
	w, err := s.accounts.Check(acctKey)
	if err != nil {
		return 0, err
	}
	return max(wait, w), nil
}

// loginFailed records a failed login and logs one line for each key whose
// burst begins (slowed, then refused).
func (s *Server) loginFailed(log *logrus.Entry, addrKey, acctKey string) {
	var out []guard.Outcome
	if addrKey != "" {
		out = s.logins.Fail(addrKey)
	}
	out = append(out, s.accounts.Fail(acctKey)...)
	for _, o := range out {
		l := log.WithFields(logrus.Fields{"key": o.Key, "failures": o.Failures})
		if o.Refused {
			l.Warn("repeated failed logins: refusing logins from this address for a while")
		} else {
			l.Warn("repeated failed logins: slowing down logins")
		}
	}
}

// loginSucceeded forgets the account's failures. The address's are kept:
// someone guessing must not be able to clear them by logging in to an
// account of their own in between.
func (s *Server) loginSucceeded(acctKey string) {
	s.accounts.Succeed(acctKey)
}
