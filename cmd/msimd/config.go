package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/msimircd/msimircd/internal/tomlkey"
)

// fileConfig is msimd's config file (-config FILE), TOML: its keys mirror
// the flags; msimd.toml.example documents every one.
type fileConfig struct {
	Listen      string `toml:"listen"`
	Data        string `toml:"data"`
	DB          string `toml:"db"`
	Key         string `toml:"key"`
	Demo        bool   `toml:"demo"`
	Debug       bool   `toml:"debug"`
	AccountFile string `toml:"account_file"`
	// Account is decoded only to be refused: passwords stay out of the
	// file (account_file holds them, mode 0600).
	Account any `toml:"account"`

	Limits  limitsConfig  `toml:"limits"`
	Metrics metricsConfig `toml:"metrics"`
	Cluster clusterConfig `toml:"cluster"`
}

// limitsConfig is the [limits] table.
type limitsConfig struct {
	MaxConns           int   `toml:"max_conns"`
	MaxConnsPerAddr    int   `toml:"max_conns_per_addr"`
	OfflineBytes       int64 `toml:"offline_bytes"`
	OfflineSenderBytes int64 `toml:"offline_sender_bytes"`
}

// metricsConfig is the [metrics] table.
type metricsConfig struct {
	Listen string `toml:"listen"`
	Public bool   `toml:"public"`
}

// clusterConfig is the [cluster] table.
type clusterConfig struct {
	NATS natsURLs `toml:"nats"`
	Node string   `toml:"node"`
}

// natsURLs is cluster.nats: a list of URLs, or one string of
// comma-separated URLs as -nats takes; held comma-joined.
type natsURLs string

// UnmarshalTOML implements toml.Unmarshaler.
func (n *natsURLs) UnmarshalTOML(v any) error {
	var urls []string
	switch v := v.(type) {
	case string:
		if v != "" {
			urls = strings.Split(v, ",")
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("want NATS URL strings, got %T %v", e, e)
			}
			if strings.Contains(s, ",") {
				// The URLs are joined by commas (as -nats takes them):
				// one with a comma of its own (in a password) would be
				// split there.
				return errors.New("a NATS URL with a ',' (not shown: a ',' in credentials must be percent-encoded, as %2C)")
			}
			urls = append(urls, s)
		}
	default:
		return fmt.Errorf("want a list of NATS URLs, or one string of them separated by commas, not %T", v)
	}
	// A value with '@' holds credentials somewhere: a part of it is never
	// shown (a ',' in a password splits the string form anywhere in it).
	secret := slices.ContainsFunc(urls, func(u string) bool { return strings.Contains(u, "@") })
	for i, u := range urls {
		u = strings.TrimSpace(u)
		if err := checkNATSURL(u, secret); err != nil {
			return err
		}
		urls[i] = u
	}
	*n = natsURLs(strings.Join(urls, ","))
	return nil
}

// checkNATSURL accepts nats://host:port and the other schemes NATS
// clients take, with credentials only before the host's '@'. The message
// shows the URL unless secret (the value holds credentials): then it
// shows nothing of it.
func checkNATSURL(s string, secret bool) error {
	shown := fmt.Sprintf(": %q", s)
	if secret {
		shown = " (not shown: the value holds credentials; a ',', '#', '/', '?' or '%' in them must be percent-encoded)"
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || strings.Contains(s, "@") && u.User == nil {
		return fmt.Errorf("not a NATS URL (like nats://host:4222)%s", shown)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
		return nil
	}
	return fmt.Errorf("not a NATS URL (nats://, tls://, ws:// or wss://)%s", shown)
}

// fileKey ties a config key to the flag it mirrors.
type fileKey struct {
	key  string // as written in the file: "listen", "cluster.nats"
	flag string // the flag's name: "listen", "nats"
	set  func(o *options, c *fileConfig)
}

// fileKeys are the config file's keys. Every flag has one except -config,
// -account (passwords stay out of the file) and -username (adduser's).
var fileKeys = []fileKey{
	{"listen", "listen", func(o *options, c *fileConfig) { o.listen = c.Listen }},
	{"data", "data", func(o *options, c *fileConfig) { o.data = c.Data }},
	{"db", "db", func(o *options, c *fileConfig) { o.db = c.DB }},
	{"key", "key", func(o *options, c *fileConfig) { o.key = c.Key }},
	{"demo", "demo", func(o *options, c *fileConfig) { o.demo = c.Demo }},
	{"debug", "debug", func(o *options, c *fileConfig) { o.debug = c.Debug }},
	{"account_file", "account-file", func(o *options, c *fileConfig) { o.accountFile = c.AccountFile }},
	{"limits.max_conns", "max-conns", func(o *options, c *fileConfig) { o.limits.MaxConnections = c.Limits.MaxConns }},
	{"limits.max_conns_per_addr", "max-conns-per-addr", func(o *options, c *fileConfig) { o.limits.MaxConnectionsPerAddr = c.Limits.MaxConnsPerAddr }},
	{"limits.offline_bytes", "offline-bytes", func(o *options, c *fileConfig) { o.limits.OfflinePerRecipientBytes = c.Limits.OfflineBytes }},
	{"limits.offline_sender_bytes", "offline-sender-bytes", func(o *options, c *fileConfig) { o.limits.OfflinePerSenderBytes = c.Limits.OfflineSenderBytes }},
	{"metrics.listen", "metrics-listen", func(o *options, c *fileConfig) { o.metricsListen = c.Metrics.Listen }},
	{"metrics.public", "metrics-public", func(o *options, c *fileConfig) { o.metricsPublic = c.Metrics.Public }},
	{"cluster.nats", "nats", func(o *options, c *fileConfig) { o.nats = string(c.Cluster.NATS) }},
	{"cluster.node", "node", func(o *options, c *fileConfig) { o.node = c.Cluster.Node }},
}

// fromFile records where a setting came from in the config file.
type fromFile struct {
	key  string
	line int
}

// applyConfig reads o.config and takes from it every setting whose flag
// was not given on the command line (fs has been parsed). Its errors are
// usage errors naming the file, the line and the key.
func applyConfig(o *options, fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	c, md, data, err := loadConfig(o.config)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	o.from = map[string]fromFile{}
	for _, k := range fileKeys {
		key := strings.Split(k.key, ".")
		if given[k.flag] || !md.IsDefined(key...) {
			continue
		}
		k.set(o, c)
		o.from[k.flag] = fromFile{key: k.key, line: tomlkey.Line(data, key...)}
	}
	return nil
}

// loadConfig reads and checks the config file at path: its syntax, its
// keys, each value on its own, and that a file others may read holds no
// password. What depends on several settings (flags included) is left
// to run's checks.
func loadConfig(path string) (*fileConfig, toml.MetaData, []byte, error) {
	var c fileConfig
	fail := func(line int, key, format string, args ...any) (*fileConfig, toml.MetaData, []byte, error) {
		return nil, toml.MetaData{}, nil, fmt.Errorf("config %s: line %d: %s: %s", path, line, key, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, toml.MetaData{}, nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, toml.MetaData{}, nil, fmt.Errorf("config: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, toml.MetaData{}, nil, fmt.Errorf("config %s: %w", path, err)
	}
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fail(pe.Position.Line, pe.LastKey, "%s", pe.Message)
		}
		// A value of the wrong type: "toml: line N (last key "k"): …".
		if m := decodeErr.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return fail(n, m[2], "%s", m[3])
		}
		return nil, toml.MetaData{}, nil, fmt.Errorf("config %s: %w", path, err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		k := extra[0]
		return fail(tomlkey.Line(data, k...), k.String(), "unknown key")
	}
	if md.IsDefined("account") {
		return fail(tomlkey.Line(data, "account"), "account", "passwords do not belong in the config file: name a file of EMAIL:PASSWORD lines (mode 0600) with account_file")
	}
	if c.Listen != "" || md.IsDefined("listen") {
		if err := checkAddr(c.Listen); err != nil {
			return fail(tomlkey.Line(data, "listen"), "listen", "%v", err)
		}
	}
	if c.Metrics.Listen != "" {
		if err := checkAddr(c.Metrics.Listen); err != nil {
			return fail(tomlkey.Line(data, "metrics", "listen"), "metrics.listen", "%v", err)
		}
	}
	if c.Metrics.Public && c.Metrics.Listen == "" {
		return fail(tomlkey.Line(data, "metrics", "public"), "metrics.public", "there is no metrics.listen to make public")
	}
	// The file may be read by others: then it must not hold a secret.
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		hint := fmt.Sprintf("group or others may read %s (mode %04o): chmod 600 it (and give it to msimd's user)", path, perm)
		if hasPassword(c.DB) {
			return fail(tomlkey.Line(data, "db"), "db", "holds a password, and %s, or put the password in PGPASSFILE", hint)
		}
		if natsHasCredentials(string(c.Cluster.NATS)) {
			return fail(tomlkey.Line(data, "cluster", "nats"), "cluster.nats", "a URL holds credentials (user:password@ or a token@), and %s", hint)
		}
	}
	return &c, md, data, nil
}

// decodeErr matches the toml package's error for a value of the wrong
// type.
var decodeErr = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// hasPassword reports whether a PostgreSQL URL holds a password.
func hasPassword(dsn string) bool {
	u, err := url.Parse(dsn)
	if err != nil {
		return strings.Contains(dsn, "@") // unparsable: assume the worst
	}
	_, pw := u.User.Password()
	return pw || u.Query().Has("password")
}

// natsHasCredentials reports whether one of comma-separated NATS URLs
// holds credentials: user:password@, or a token@.
func natsHasCredentials(urls string) bool {
	for _, u := range strings.Split(urls, ",") {
		if strings.Contains(u, "@") {
			return true
		}
	}
	return false
}

func checkAddr(addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("not host:port: %q", addr)
	}
	return nil
}
