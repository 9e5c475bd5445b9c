package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// TomUID is the demo user Tom's uid, as in the 2007 capture.
const TomUID msim.UID = 6221

// tomPresence is Tom's presence, byte for byte the capture's
// \bm\100\f\6221\msg\|s|1|ss|:-)|ls||ip|0|p|0\final\.
var tomPresence = msim.Presence{Status: msim.StatusOnline, Text: ":-)"}

// tom is the demo user: always online, he greets whoever writes to him
// first and then echoes what they say. He has no connection; his replies
// are routed like anyone's bm 1.
type tom struct {
	srv     *Server
	mu      sync.Mutex
	greeted map[msim.UID]bool
}

// newTom makes sure Tom's account exists. His password is random and never
// kept, so nobody can log in as him.
func newTom(srv *Server) (*tom, error) {
	pw := make([]byte, 18)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	a := &Account{
		UID:         TomUID,
		Email:       "tom@msimircd.invalid",
		UserName:    "tom",
		DisplayName: "Tom",
		Hash:        msim.HashPassword(base64.StdEncoding.EncodeToString(pw)),
		Profile:     tomProfile(),
		Groups:      defaultGroups(),
	}
	err := srv.store.CreateAccount(a)
	if err != nil && !errors.Is(err, ErrAccountExists) {
		return nil, fmt.Errorf("msim/server: create demo user Tom: %w", err)
	}
	if errors.Is(err, ErrAccountExists) {
		if _, err := srv.store.Account(TomUID); err != nil {
			return nil, fmt.Errorf("msim/server: demo user Tom: uid %d or his e-mail address is taken: %w", TomUID, err)
		}
	}
	err = srv.store.UpdateAccount(TomUID, func(a *Account) error {
		a.LastLogin = time.Now().UTC()
		a.Profile = tomProfile() // a data file may hold an older one
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("msim/server: demo user Tom: %w", err)
	}
	return &tom{srv: srv, greeted: map[msim.UID]bool{}}, nil
}

// tomProfile is Tom's profile. It names no picture (clients then show the
// protocol's "no picture" value) and no other host: a demo must not send
// clients anywhere.
func tomProfile() msim.Dict {
	return msim.Dict{
		{Key: "Headline", Value: ":-)"},
		{Key: "BandName", Value: "Sherwood"},
		{Key: "SongName", Value: "The Only Song"},
	}
}

// tomGreeting is what Tom says to someone the first time.
const tomGreeting = "Hi! I'm Tom, your first friend on this network :-) " +
	"Say anything and I will say it back."

// receive handles a buddy message sent to Tom: a reply to every IM.
func (t *tom) receive(from msim.UID, typ int, body string) {
	if typ != msim.BMIM && !(typ == msim.BMAction && isIMBody(body)) || markup.Classify(body) != markup.KindText {
		return
	}
	t.mu.Lock()
	first := !t.greeted[from]
	t.greeted[from] = true
	t.mu.Unlock()
	text := tomGreeting
	if !first {
		text = "You said: " + markup.ToPlain(body)
	}
	out := msim.NewInt("bm", msim.BMIM).AddInt("f", int(TomUID)).AddInt("cv", msim.ClientVersion).
		Add("msg", markup.FromPlain(text))
	if err := t.srv.route(TomUID, from, msim.BMIM, msim.Encode(out), out); err != nil {
		t.srv.log.WithError(err).WithField("to", from).Debug("Tom could not answer")
	}
}

// isIMBody reports whether a bm 121 body is text rather than a control
// string (typing, zap, group-chat control): the MySpace web client sent
// real IMs as 121.
func isIMBody(body string) bool {
	return body != "" && !strings.HasPrefix(body, "!!!") && markup.Classify(body) == markup.KindText
}
