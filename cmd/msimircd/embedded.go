package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/msim/server"
)

// embedded is the embedded MSIM network: its store, its server and the
// listener the server is to serve (the bridge dials it there).
type embedded struct {
	store  server.Store
	srv    *server.Server
	ln     net.Listener
	seeded []channel.Account // the operator's accounts that nicks may log in to
	log    *logrus.Entry
}

// openEmbedded opens the embedded network's store, makes its server and
// accounts, and listens where the bridge is to reach it; it does not serve
// yet. Its caller closes it once everything using it has ended.
func openEmbedded(cfg Config, log *logrus.Entry) (_ *embedded, err error) {
	e := &embedded{store: server.NewMemStore(), log: log}
	if cfg.MSIM.DataFile != "" {
		if e.store, err = openEmbeddedStore(cfg.MSIM.DataFile, log); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.srv, err = server.New(embeddedConfig(cfg.MSIM), e.store, log.WithField("part", "msim-server")); err != nil {
		return nil, err
	}
	if e.seeded, err = seedAccounts(e.srv, cfg.MSIM.allAccounts(), log); err != nil {
		return nil, err
	}
	if err := seedUserAccounts(e.srv, cfg.Users, log); err != nil {
		return nil, err
	}
	addr := cfg.MSIM.EmbeddedAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	} else if !isLoopback(addr) {
		log.Warnf("the embedded MSIM network listens on %s, not on loopback: anyone who can reach it may try to log in", addr)
	}
	if e.ln, err = net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("embedded MSIM server: %w", err)
	}
	if cfg.MSIM.EmbeddedAddr != "" {
		log.Infof("embedded MSIM network: MSIM clients can log in at %s", e.addr())
	}
	return e, nil
}

// openEmbeddedStore opens the embedded network's SQLite database at path.
// An earlier msimircd's data file (bbolt) found there is imported first,
// under the same key file, and kept as path + ".bolt-imported", so its
// accounts, lists and offline IMs carry over on their own.
func openEmbeddedStore(path string, log *logrus.Entry) (server.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	st, upgraded, err := server.UpgradeBoltFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("embedded MSIM network: %s is an earlier msimircd's data file, and importing it failed (it is unchanged): %w", path, err)
	}
	if upgraded {
		f := logrus.Fields{"data": path, "kept": path + ".bolt-imported"}
		if st != (server.ImportStats{}) { // zero when an import stopped midway was finished
			f["accounts"], f["contacts"], f["offline_ims"] = st.Accounts, st.Contacts, st.Offline
		}
		log.WithFields(f).Info("the embedded MSIM network's data file was an earlier msimircd's: imported into SQLite; the old file is kept")
	}
	return server.OpenStore(ctx, path, server.StoreOptions{})
}

// addr is where the embedded server listens.
func (e *embedded) addr() string { return e.ln.Addr().String() }

// close closes the listener (if not served) and the store; nil is fine.
func (e *embedded) close() {
	if e == nil {
		return
	}
	if e.ln != nil {
		_ = e.ln.Close() // already closed once it has been served
	}
	if err := e.store.Close(); err != nil {
		e.log.WithError(err).Error("closing the embedded MSIM network's store")
	}
}

// demoDirectory is the directory of the embedded network without [[user]]s:
// every nick gets an account (see channel.DemoDirectory).
func (e *embedded) demoDirectory(cfg Config, log *logrus.Entry) (channel.Directory, error) {
	key, keyPath, err := demoKey(cfg.MSIM.DataFile)
	if err != nil {
		return nil, err
	}
	if keyPath != "" {
		log.WithField("key_file", keyPath).Debug("demo accounts' MSIM passwords derive from the key file")
	}
	return &channel.DemoDirectory{
		CreateAccount: e.srv.AddAccount,
		Exists:        func(err error) bool { return errors.Is(err, server.ErrAccountExists) },
		CheckPassword: e.srv.CheckPassword,
		UserNameOwner: userNameOwner(e.store),
		Retire:        retireAccount(e.store),
		Key:           key,
		Seeded:        e.seeded,
		Creations:     guard.NewQuota(cfg.MSIM.AccountCreationPerHour, time.Hour, nil),
		Log:           log.WithField("part", "directory"),
	}, nil
}

// embeddedConfig is the embedded MSIM server's configuration. The bridge
// logs every IRC user in from this host: its addresses are not limited per
// address (the total cap and the per-account delays still apply).
func embeddedConfig(m MSIMConfig) server.Config {
	return server.Config{
		Demo: true, TrustedNets: bridgeNets(m.EmbeddedAddr),
		MaxConnections: m.MaxConnections, MaxConnectionsPerAddr: m.MaxConnectionsPerAddr,
		OfflinePerRecipientBytes: m.OfflineBytesPerRecipient, OfflinePerSenderBytes: m.OfflineBytesPerSender,
	}
}

// bridgeNets are the addresses the bridge's MSIM connections come from
// when it dials the embedded server listening at addr: loopback, or the
// listener's own address when it is a specific one.
func bridgeNets(addr string) []netip.Prefix {
	nets := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nets
	}
	if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		nets = append(nets, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return nets
}

// seedAccounts makes the operator's accounts (-msim-account, msim.accounts,
// msim.accounts_file) on the embedded network and returns those whose
// nicks may log in to them: one that exists with another password is kept
// as it is, with a warning, and left out.
func seedAccounts(srv *server.Server, specs []string, log *logrus.Entry) ([]channel.Account, error) {
	var seeded []channel.Account
	for _, spec := range specs {
		email, pw, _ := strings.Cut(spec, ":")
		uid, created, err := srv.SeedAccount(spec)
		if err != nil {
			return nil, err
		}
		if created {
			log.WithFields(logrus.Fields{"email": email, "uid": uid}).Info("embedded MSIM account created")
		} else if srv.CheckPassword(email, pw) != nil {
			log.WithField("email", email).Warn("an account to create on the embedded MSIM network exists with another password: it is kept as it is, and its IRC nick cannot log in to it with the password given")
			continue
		}
		seeded = append(seeded, channel.Account{Email: email, Password: pw})
	}
	return seeded, nil
}

// seedUserAccounts makes the [[user.account]]s on the embedded network, as
// the config gives them; one that exists with another password stops the
// start (or the reload), naming the key to edit. All are checked before
// any is made, so a refused file leaves no accounts of its own behind
// (but see checkUserAccounts).
func seedUserAccounts(msrv *server.Server, users []UserEntry, log *logrus.Entry) error {
	if err := checkUserAccounts(msrv, users); err != nil {
		return err
	}
	for _, u := range users {
		for _, a := range u.Accounts {
			uid, created, err := msrv.SeedAccount(a.Email + ":" + a.Password)
			if err != nil {
				return err
			}
			if created {
				log.WithFields(logrus.Fields{"email": a.Email, "uid": uid}).Info("embedded MSIM account created")
			}
		}
	}
	return checkUserAccounts(msrv, users) // one made meanwhile (an IRC user's account add)
}

// checkUserAccounts refuses a [[user.account]] that exists on the embedded
// network with another password, or whose account the network cannot
// read. (One an IRC user adds between the two checks seedUserAccounts
// makes is refused by the second, after the others were made.)
func checkUserAccounts(msrv *server.Server, users []UserEntry) error {
	for i, u := range users {
		for j, a := range u.Accounts {
			err := msrv.CheckPassword(a.Email, a.Password)
			if err == nil || errors.Is(err, server.ErrNoSuchAccount) {
				continue
			}
			field := "password"
			if a.PasswordFile != "" {
				field = "password_file"
			}
			msg := fmt.Sprintf("the embedded MSIM network has the account %s with another password: give its password here, or set msim.server to use another MSIM network", a.Email)
			if !errors.Is(err, server.ErrWrongPassword) {
				msg = fmt.Sprintf("the embedded MSIM network's account %s could not be checked: %v", a.Email, err)
			}
			return errKey(msg, field, pathStep{"user", i}, pathStep{"user.account", j})
		}
	}
	return nil
}
