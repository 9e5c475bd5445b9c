package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
)

// A reload (SIGHUP) reads the config file again, as at start, and applies
// what changed of the keys that can change live: the [[user]]s and their
// accounts, irc.password (with [[user]]s), irc.motd, irc.flood_rate,
// irc.flood_burst, log.level and log.format; and it reads every TLS
// listener's certificate and key files again. Every other key needs a
// restart: a reload names those that changed and leaves them. A config
// that does not load is refused as a whole, and the running one stays.

// serveReloading is serve with reloads: every signal on hup reloads the
// config file at path (none: the reload is refused). file is that file's
// config as read at start, cfg the config in effect (file with the command
// line's overrides).
func serveReloading(ctx context.Context, cfg, file Config, path string, log *logrus.Entry, ready chan<- listening, hup <-chan os.Signal) error {
	g, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.close() // last: the reloads have ended
	r := newReloader(g, path, file, cfg)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-rctx.Done():
				return
			case <-hup:
				_ = r.reload()
			}
		}
	}()
	err = g.run(ctx, ready)
	cancel()
	wg.Wait()
	return err
}

// clashCheckWait bounds a reload's look at the stored users' names and
// accounts (see checkNameClashes, checkAccountClashes); past it the file
// is refused.
const clashCheckWait = time.Minute

// reloader reloads a running gateway's config file.
type reloader struct {
	g    *gateway
	path string
	log  *logrus.Entry

	mu      sync.Mutex // one reload at a time
	started Config     // the file as at start: what the restart-only keys are
	last    Config     // the file as last applied: what the live keys were
	running Config     // in effect: the file with the command line's overrides
}

func newReloader(g *gateway, path string, file, running Config) *reloader {
	return &reloader{g: g, path: path, log: g.log.WithField("part", "reload"), started: file, last: file, running: running}
}

// reload reads the config file and applies it (see the comment at the top
// of this file). Its error, also logged, is why the file was refused.
func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.path == "" {
		err := fmt.Errorf("reload: msimircd runs without a config file (-config): nothing to reload")
		r.log.Warn(err.Error())
		return err
	}
	r.log.WithField("config", r.path).Info("reloading the config file")
	next, err := LoadConfig(r.path)
	if listener := r.running.publicListener(); err == nil && listener != "" {
		// The listeners in effect, not the file's (-listen may have
		// moved them off loopback), decide whether passwords are needed,
		// and so does the registration in effect, which changes only at
		// a restart (while irc.password applies at once): open in
		// either, the file needs an irc.password.
		reg := r.running.registration()
		if next.IRC.Registration == channel.RegistrationOpen {
			reg = channel.RegistrationOpen
		}
		err = next.checkPasswords(listener, reg)
		if err != nil && next.IRC.Registration != channel.RegistrationOpen && next.checkPasswords(listener, channel.RegistrationClosed) == nil {
			// Refused only for the registration in effect: the file
			// cannot close it until a restart.
			err = errKey(fmt.Sprintf("irc.registration is %q until a restart (a reload does not change it) on %s, a listener beyond loopback, so irc.password is needed until then: keep it in the file, and restart for the file's registration to apply",
				channel.RegistrationOpen, listener), "password", pathStep{"irc", -1})
		}
		err = locateKey(r.path, err)
	}
	if err != nil {
		r.log.WithError(err).Error("reload refused: the config stays as it was")
		return err
	}
	d := diffConfig(r.started, r.last, next)
	users := slices.Contains(d.live, "user") || slices.Contains(d.live, "irc.password")
	if users && r.g.st != nil && len(next.Users) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), clashCheckWait)
		err := checkClashes(ctx, r.g.st, next.Users)
		cancel()
		if err != nil {
			err = locateKey(r.path, err)
			r.log.WithError(err).Error("reload refused: the config stays as it was")
			return err
		}
	}
	if users && r.g.emb != nil {
		// As at start, the users' accounts are made on the embedded
		// network; one there with another password refuses the file.
		if err := seedUserAccounts(r.g.emb.srv, next.Users, r.log); err != nil {
			err = locateKey(r.path, err)
			r.log.WithError(err).Error("reload refused: the config stays as it was")
			return err
		}
	}
	for _, k := range d.restart {
		r.log.WithField("key", k).Warn("reload: this setting changed in the config file; it takes effect only when msimircd restarts")
	}
	r.applyLog(next, d)
	if slices.Contains(d.live, "irc.motd") {
		r.g.irc.SetMOTD(motdOf(next))
		r.running.IRC.MOTD = next.IRC.MOTD
	}
	if slices.Contains(d.live, "irc.flood_rate") || slices.Contains(d.live, "irc.flood_burst") {
		r.g.irc.SetFlood(next.IRC.FloodRate, next.IRC.FloodBurst)
		r.running.IRC.FloodRate, r.running.IRC.FloodBurst = next.IRC.FloodRate, next.IRC.FloodBurst
	}
	r.reloadCertificates(next)
	if testHookBeforeUsers != nil {
		testHookBeforeUsers()
	}
	if users && !r.reloadUsers(next) {
		// Not applied: the next reload tries them again.
		next.Users, next.IRC.Password = r.last.Users, r.last.IRC.Password
	} else if users && r.g.st != nil && len(next.Users) > 0 {
		r.recheckAccounts(next)
	}
	r.last = next
	r.log.WithField("applied", strings.Join(d.live, " ")).Info("config reloaded")
	return nil
}

// testHookBeforeUsers, if set, runs in reload between its checks and the
// users' apply.
var testHookBeforeUsers func()

// recheckAccounts looks again, once the users of next are in effect, for
// an MSIM account that one of them shares with a user kept in the store:
// an account add between the reload's check and the apply is refused by
// neither (the command saw the old users). The start refuses such a
// config; a reload logs it now, naming the key and both users, so the
// operator hears of it before then.
func (r *reloader) recheckAccounts(next Config) {
	ctx, cancel := context.WithTimeout(context.Background(), clashCheckWait)
	defer cancel()
	if err := checkAccountClashes(ctx, r.g.st, next.Users); err != nil {
		r.log.WithError(locateKey(r.path, err)).Error("reload: applied, but a user kept in the store took an MSIM account of the config's users meanwhile; both log it in, each logging the other out, and the next start refuses this config")
	}
}

// applyLog sets the log level and format, unless the command line set
// them (-debug).
func (r *reloader) applyLog(next Config, d configDiff) {
	l := r.g.log.Logger
	if slices.Contains(d.live, "log.level") {
		if !strings.EqualFold(r.running.Log.Level, r.last.Log.Level) {
			r.log.WithField("key", "log.level").Info("reload: the command line (-debug) sets the log level; it stays")
		} else if lvl, err := logrus.ParseLevel(next.Log.Level); err == nil {
			l.SetLevel(lvl)
			r.running.Log.Level = next.Log.Level
		}
	}
	if slices.Contains(d.live, "log.format") {
		if strings.EqualFold(next.Log.Format, "json") {
			l.SetFormatter(&logrus.JSONFormatter{})
		} else {
			l.SetFormatter(&logrus.TextFormatter{})
		}
		r.running.Log.Format = next.Log.Format
	}
}

// reloadCertificates reads the certificate and key of every TLS listener
// again, from the files the config now names for its address; one that
// does not load leaves the listener its certificate.
func (r *reloader) reloadCertificates(next Config) {
	var tlsLns []*ircd.TLSListener
	for _, ln := range r.g.ircLns {
		if tl, ok := ln.(*ircd.TLSListener); ok {
			tlsLns = append(tlsLns, tl)
		}
	}
	for i, tl := range tlsLns {
		if i >= len(r.started.IRC.TLS) {
			break
		}
		listen := r.started.IRC.TLS[i].Listen
		j := slices.IndexFunc(next.IRC.TLS, func(t TLSEntry) bool { return t.Listen == listen })
		if j < 0 {
			continue // removed: a restart closes it (the diff says so)
		}
		t := next.IRC.TLS[j]
		log := r.log.WithFields(logrus.Fields{"listen": listen, "key": fmt.Sprintf("irc.tls[%d].cert", j+1)})
		if err := tl.Reload(t.Cert, t.Key); err != nil {
			log.WithError(err).Error("reload: the TLS certificate does not load; the listener keeps the one it has")
			continue
		}
		if leaf := tl.Certificate().Leaf; leaf != nil {
			log = log.WithFields(logrus.Fields{"subject": leaf.Subject.String(), "serial": leaf.SerialNumber.String(), "not_after": leaf.NotAfter})
		}
		log.Info("reload: TLS certificate loaded; new connections get it")
	}
}

// reloadUsers gives the bridge the users of next; false if it failed
// (the error is logged).
func (r *reloader) reloadUsers(next Config) bool {
	ch, err := r.g.bridge.ReloadUsers(staticUsers(next.Users), next.IRC.Password)
	if err != nil {
		r.log.WithError(err).Error("reload: the users were not changed; the next reload tries again")
		return false
	}
	r.running.Users, r.running.IRC.Password = next.Users, next.IRC.Password
	if !ch.Empty() {
		r.log.WithFields(logrus.Fields{"added": ch.Added, "removed": ch.Removed, "changed": ch.Changed}).Info("reload: users changed")
	}
	return true
}

// motdOf is the MOTD of cfg: its irc.motd, else a line about msimircd.
func motdOf(cfg Config) []string {
	if len(cfg.IRC.MOTD) > 0 {
		return cfg.IRC.MOTD
	}
	return []string{"msimircd " + version + ": MySpaceIM on IRC.", "Your MSIM accounts are control channels; type help in one."}
}

// configDiff is what changed in a config file, by key (as config errors
// name them: irc.tls[1].cert; every [[user]] key is "user").
type configDiff struct {
	live    []string // changed since the last reload, applied now
	restart []string // changed since the start, applied at a restart
}

// liveKeys change while msimircd runs; irc.tls[N].cert and .key too, and,
// with [[user]]s before and after, user and irc.password.
var liveKeys = []string{"irc.motd", "irc.flood_rate", "irc.flood_burst", "log.level", "log.format"}

// diffConfig compares the config file next with the file as at start
// (keys that need a restart) and as last applied (live keys).
func diffConfig(started, last, next Config) configDiff {
	live := func(k string) bool {
		switch {
		case slices.Contains(liveKeys, k):
			return true
		case k == "user", k == "irc.password":
			// The demo network's users (no [[user]]s) are another
			// directory: a switch between them needs a restart.
			return configuredUsers(started) && configuredUsers(next)
		case strings.HasPrefix(k, "irc.tls["):
			return strings.HasSuffix(k, "].cert") || strings.HasSuffix(k, "].key")
		}
		return false
	}
	var d configDiff
	for _, k := range changedKeys(last, next) {
		if live(k) {
			d.live = append(d.live, k)
		}
	}
	for _, k := range changedKeys(started, next) {
		if !live(k) {
			d.restart = append(d.restart, k)
		}
	}
	return d
}

// configuredUsers reports whether cfg's users are its [[user]]s (not the
// embedded demo network's nicks).
func configuredUsers(cfg Config) bool { return cfg.MSIM.Server != "" || len(cfg.Users) > 0 }

// changedKeys lists the keys whose values differ between a and b, in the
// order of Config's fields; every [[user]] key is reported as "user".
func changedKeys(a, b Config) []string {
	var keys []string
	add := func(k string) {
		if strings.HasPrefix(k, "user[") {
			k = "user"
		}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	diffValues("", reflect.ValueOf(a), reflect.ValueOf(b), add)
	if !slices.Equal(a.MSIM.fileAccounts, b.MSIM.fileAccounts) {
		add("msim.accounts_file") // the file's content
	}
	return keys
}

var durationType = reflect.TypeFor[Duration]()

// diffValues calls add with the key of every TOML value that differs
// between a and b (of one type). An array of tables that changed length is
// one key.
func diffValues(key string, a, b reflect.Value, add func(string)) {
	switch {
	case a.Kind() == reflect.Struct && a.Type() != durationType:
		for i := range a.NumField() {
			f := a.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if !f.IsExported() || name == "" {
				continue
			}
			if key != "" {
				name = key + "." + name
			}
			diffValues(name, a.Field(i), b.Field(i), add)
		}
	case a.Kind() == reflect.Slice && a.Type().Elem().Kind() == reflect.Struct:
		if a.Len() != b.Len() {
			add(key)
			return
		}
		for i := range a.Len() {
			diffValues(fmt.Sprintf("%s[%d]", key, i+1), a.Index(i), b.Index(i), add)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			add(key)
		}
	}
}
