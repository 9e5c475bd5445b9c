package server

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// Errors of the account API and the Store.
var (
	ErrAccountExists = errors.New("msim/server: account exists")
	ErrNoSuchAccount = errors.New("msim/server: no such account")
	ErrUserNameTaken = errors.New("msim/server: user name taken")
	ErrWrongPassword = errors.New("msim/server: wrong password")
)

// FirstUID is the uid the first account created without an explicit uid gets.
const FirstUID msim.UID = 1000000

// maxOffline bounds the stored offline messages per recipient.
const maxOffline = 1000

// OfflineLimits bound what AddOffline stores for one recipient; a field <= 0
// is no cap. Sizes are the bytes of the messages' bodies.
type OfflineLimits struct {
	Messages    int   // messages waiting for the recipient
	Bytes       int64 // their bytes, from everyone
	SenderBytes int64 // their bytes from one sender
}

// check reports whether one more message of size bytes fits, given what
// waits already: n messages of total bytes, fromSender of them from its
// sender.
func (l OfflineLimits) check(n int, total, fromSender, size int64) error {
	switch {
	case l.Messages > 0 && n >= l.Messages, l.Bytes > 0 && total+size > l.Bytes:
		return errOfflineFull
	case l.SenderBytes > 0 && fromSender+size > l.SenderBytes:
		return errOfflineSenderFull
	}
	return nil
}

// Group is one contact-list group (persist 2/6 record).
type Group struct {
	ID       int
	Name     string
	Position int
	Flag     int
}

// Account is one user of the network. Only the login hash of the password is
// kept. Profile holds the free-form MySpace profile fields (Headline,
// ImageURL, BandName, SongName, Age, Gender, Location, RealName…); Prefs the
// IM preferences last put with persist 514/1/10.
type Account struct {
	UID         msim.UID
	Email       string
	UserName    string // "" until set; shown as the uid then
	DisplayName string
	Hash        msim.PasswordHash
	Profile     msim.Dict
	Prefs       msim.Dict
	Groups      []Group

	// Privacy, from \blocklist\ (and Visibility=2 contact records).
	Block          []msim.UID
	Allow          []msim.UID
	ShowOnlyToList bool // w1: only my list sees my presence
	OnlyListMayIM  bool // c1: only my list may message me

	LastLogin time.Time
}

func (a *Account) clone() *Account {
	c := *a
	c.Profile = slices.Clone(a.Profile)
	c.Prefs = slices.Clone(a.Prefs)
	c.Groups = slices.Clone(a.Groups)
	c.Block = slices.Clone(a.Block)
	c.Allow = slices.Clone(a.Allow)
	return &c
}

// Contact is one entry of an account's contact list (spec §6.1).
type Contact struct {
	UID        msim.UID
	GroupName  string
	Position   int
	Visibility int // 1 normal, 2 blocked
	NickName   string
	NameSelect int
}

// Blocked reports whether the record is a block-list entry.
func (c Contact) Blocked() bool { return c.Visibility == 2 }

// OfflineMessage is a bm 1 stored for a recipient who was offline.
type OfflineMessage struct {
	From msim.UID
	Time time.Time
	CV   int    // sender's client build, 0 if unknown
	Body string // msg, unescaped markup
}

// Store keeps accounts, contact lists and offline messages. Implementations
// are safe for concurrent use; every method returns copies.
type Store interface {
	// CreateAccount stores a new account. A zero a.UID is replaced by the
	// next free uid (FirstUID and up). It fails with ErrAccountExists when the
	// e-mail address or uid is taken, ErrUserNameTaken when the user name is.
	CreateAccount(a *Account) error
	Account(uid msim.UID) (*Account, error)                    // ErrNoSuchAccount
	AccountByEmail(email string) (*Account, error)             // case-insensitive
	AccountByUserName(name string) (*Account, error)           // case-insensitive
	UpdateAccount(uid msim.UID, fn func(*Account) error) error // atomic; ErrUserNameTaken
	Contacts(owner msim.UID) ([]Contact, error)                // ordered by uid
	PutContact(owner msim.UID, c Contact) error
	DeleteContact(owner, contact msim.UID) error
	// AddOffline stores m for to unless lim refuses it (errOfflineFull,
	// errOfflineSenderFull).
	AddOffline(to msim.UID, m OfflineMessage, lim OfflineLimits) error
	// TakeOffline returns to's messages, oldest first, and removes them;
	// when it fails it removes none.
	TakeOffline(to msim.UID) ([]OfflineMessage, error)
	Close() error
}

func fold(s string) string { return strings.ToLower(s) }

// memStore is the in-memory Store.
type memStore struct {
	mu       sync.RWMutex
	accounts map[msim.UID]*Account
	byEmail  map[string]msim.UID
	byName   map[string]msim.UID
	contacts map[msim.UID][]Contact // each ordered by uid
	offline  map[msim.UID][]OfflineMessage
	next     msim.UID
}

// NewMemStore returns an empty in-memory Store.
func NewMemStore() Store {
	return &memStore{
		accounts: map[msim.UID]*Account{},
		byEmail:  map[string]msim.UID{},
		byName:   map[string]msim.UID{},
		contacts: map[msim.UID][]Contact{},
		offline:  map[msim.UID][]OfflineMessage{},
		next:     FirstUID,
	}
}

func (s *memStore) CreateAccount(a *Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byEmail[fold(a.Email)]; ok {
		return ErrAccountExists
	}
	if a.UserName != "" {
		if _, ok := s.byName[fold(a.UserName)]; ok {
			return ErrUserNameTaken
		}
	}
	if a.UID == 0 {
		for s.accounts[s.next] != nil {
			s.next++
		}
		a.UID = s.next
		s.next++
	} else if s.accounts[a.UID] != nil {
		return ErrAccountExists
	}
	s.accounts[a.UID] = a.clone()
	s.byEmail[fold(a.Email)] = a.UID
	if a.UserName != "" {
		s.byName[fold(a.UserName)] = a.UID
	}
	return nil
}

func (s *memStore) Account(uid msim.UID) (*Account, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := s.accounts[uid]
	if a == nil {
		return nil, ErrNoSuchAccount
	}
	return a.clone(), nil
}

// viewContactAccounts implements contactAccountViewer.
func (s *memStore) viewContactAccounts(_ msim.UID, uids []msim.UID, fn func(i int, a *Account)) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, u := range uids {
		fn(i, s.accounts[u])
	}
	return nil
}

func (s *memStore) lookup(idx map[string]msim.UID, key string) (*Account, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	uid, ok := idx[fold(key)]
	if !ok {
		return nil, ErrNoSuchAccount
	}
	return s.accounts[uid].clone(), nil
}

func (s *memStore) AccountByEmail(email string) (*Account, error) {
	return s.lookup(s.byEmail, email)
}

func (s *memStore) AccountByUserName(name string) (*Account, error) {
	return s.lookup(s.byName, name)
}

func (s *memStore) UpdateAccount(uid msim.UID, fn func(*Account) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.accounts[uid]
	if old == nil {
		return ErrNoSuchAccount
	}
	a := old.clone()
	if err := fn(a); err != nil {
		return err
	}
	a.UID, a.Email = old.UID, old.Email
	if fold(a.UserName) != fold(old.UserName) {
		if a.UserName != "" {
			if _, ok := s.byName[fold(a.UserName)]; ok {
				return ErrUserNameTaken
			}
			s.byName[fold(a.UserName)] = uid
		}
		delete(s.byName, fold(old.UserName))
	}
	s.accounts[uid] = a
	return nil
}

func (s *memStore) Contacts(owner msim.UID) ([]Contact, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cs := s.contacts[owner]
	return append(make([]Contact, 0, len(cs)), cs...), nil
}

// contactCount implements contactCounter.
func (s *memStore) contactCount(owner msim.UID) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.contacts[owner]), nil
}

// contactAt finds uid in the sorted list cs: its index, or where it goes.
func contactAt(cs []Contact, uid msim.UID) (int, bool) {
	return slices.BinarySearchFunc(cs, uid, func(c Contact, u msim.UID) int { return cmp.Compare(c.UID, u) })
}

func (s *memStore) PutContact(owner msim.UID, c Contact) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[owner] == nil {
		return ErrNoSuchAccount
	}
	cs := s.contacts[owner]
	if i, ok := contactAt(cs, c.UID); ok {
		cs[i] = c
	} else {
		s.contacts[owner] = slices.Insert(cs, i, c)
	}
	return nil
}

func (s *memStore) DeleteContact(owner, contact msim.UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.contacts[owner]
	if i, ok := contactAt(cs, contact); ok {
		cs = slices.Delete(cs, i, i+1)
		if len(cs) == 0 {
			cs = nil
		}
		s.contacts[owner] = cs
	}
	return nil
}

func (s *memStore) AddOffline(to msim.UID, m OfflineMessage, lim OfflineLimits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[to] == nil {
		return ErrNoSuchAccount
	}
	q := s.offline[to]
	var total, fromSender int64
	for _, o := range q {
		total += int64(len(o.Body))
		if o.From == m.From {
			fromSender += int64(len(o.Body))
		}
	}
	if err := lim.check(len(q), total, fromSender, int64(len(m.Body))); err != nil {
		return err
	}
	s.offline[to] = append(q, m)
	return nil
}

func (s *memStore) TakeOffline(to msim.UID) ([]OfflineMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.offline[to]
	delete(s.offline, to)
	return q, nil
}

func (s *memStore) Close() error { return nil }

// Refusals of AddOffline.
var (
	errOfflineFull       = errors.New("msim/server: offline mailbox full")
	errOfflineSenderFull = errors.New("msim/server: too much offline mail from one sender")
)
