package server

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// errMalformedIM is why an IM a closed session did not write is refused
// when it does not parse and its text cannot be read from it (rescueIMs):
// its sender is told it was not stored.
var errMalformedIM = errors.New("msim/server: an IM that does not parse, with no text to store")

// rescuedIM is what rescueIMs makes of an IM the session did not write
// (isStoredIM), queued from `from` (0 if not known): the offline message
// to store, and whether b is malformed (it does not parse, or names no
// sender). om.From is from when known, else the sender b names, 0 if
// none. text says whether there is an IM to store: a malformed one may
// have lost its text, and one from nobody known has nobody to store it
// from.
func rescuedIM(b []byte, from msim.UID) (om OfflineMessage, malformed, text bool) {
	om.Time = time.Now().UTC()
	if m, err := msim.ParseMessage(b); err == nil {
		if f, err := m.Int("f"); err == nil && f > 0 {
			om.From = msim.UID(f)
		} else {
			malformed = true
		}
		if from != 0 {
			om.From = from
		}
		if om.From == 0 {
			return OfflineMessage{}, true, false
		}
		om.CV, _ = m.Int("cv")
		if d, err := m.Int("date"); err == nil {
			om.Time = time.Unix(int64(d), 0).UTC()
		}
		om.Body = m.StrOr("msg", "")
		return om, malformed, true
	}
	// It does not parse (cut short, or bytes after its end): its fields
	// are read up to its end or as far as it goes. Values are escaped,
	// so a backslash always separates a key from its value.
	toks := strings.Split(string(b[1:]), `\`)
	seen := map[string]bool{}
	for i := 0; i+1 < len(toks) && toks[i] != "final"; i += 2 {
		k, v := toks[i], toks[i+1]
		if seen[k] {
			continue
		}
		seen[k] = true
		switch k {
		case "f":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				om.From = msim.UID(n)
			}
		case "cv":
			om.CV, _ = strconv.Atoi(v)
		case "date":
			if d, err := strconv.ParseInt(v, 10, 64); err == nil {
				om.Time = time.Unix(d, 0).UTC()
			}
		case "msg":
			om.Body, text = msim.Unescape(v), v != ""
		}
	}
	if from != 0 {
		om.From = from
	}
	return om, true, text && om.From != 0
}

// heldIMs is what a mailbox has out of the store while a restore waits
// (Server.held): how many IMs, and their bytes as the caps count them, in
// all and by sender.
type heldIMs struct {
	n        int
	bytes    int64
	bySender map[msim.UID]int64
}

// hold counts msgs as out of to's mailbox (sign 1) or back in it (sign
// −1). The caller holds offlineMu.
func (srv *Server) hold(to msim.UID, msgs []OfflineMessage, sign int) {
	t := srv.held[to]
	t.n += sign * len(msgs)
	for _, om := range msgs {
		b := int64(sign * len(om.Body))
		t.bytes += b
		if t.bySender == nil {
			t.bySender = map[msim.UID]int64{}
		}
		if t.bySender[om.From] += b; t.bySender[om.From] == 0 {
			delete(t.bySender, om.From)
		}
	}
	if t.n == 0 {
		delete(srv.held, to)
		return
	}
	if srv.held == nil {
		srv.held = map[msim.UID]heldIMs{}
	}
	srv.held[to] = t
}

// addOffline is store.AddOffline for a caller holding offlineMu, whose
// caps on a mailbox (lim's messages and bytes, and the sender's bytes)
// count the IMs a restore holds out of it (held) as though stored: they
// are stored again once the rescue it waits for is done, whatever the
// caps. Only this node's restores are counted: in a cluster, another
// node's store to the same mailbox meanwhile does not see them, and the
// mailbox can end past its caps by what that node stored.
func (srv *Server) addOffline(to msim.UID, om OfflineMessage, lim OfflineLimits) error {
	if h, ok := srv.held[to]; ok {
		if lim.Messages > 0 {
			// A cap of 0 or less would be no cap: the room is gone.
			if lim.Messages -= h.n; lim.Messages <= 0 {
				return errOfflineFull
			}
		}
		if lim.Bytes > 0 {
			if lim.Bytes -= h.bytes; lim.Bytes <= 0 {
				return errOfflineFull
			}
		}
		if lim.SenderBytes > 0 {
			if lim.SenderBytes -= h.bySender[om.From]; lim.SenderBytes <= 0 {
				return errOfflineSenderFull
			}
		}
	}
	return srv.store.AddOffline(to, om, lim)
}
