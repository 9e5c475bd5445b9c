package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/tomlkey"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// Config is config.toml; config.toml.example documents every key.
type Config struct {
	IRC   IRCConfig   `toml:"irc"`
	MSIM  MSIMConfig  `toml:"msim"`
	Log   LogConfig   `toml:"log"`
	Store StoreConfig `toml:"store"`
	Users []UserEntry `toml:"user"`

	Metrics MetricsConfig `toml:"metrics"` // see metrics.go
	History HistoryConfig `toml:"history"` // see history.go
	Cluster ClusterConfig `toml:"cluster"` // see cluster.go
}

// IRCConfig is the [irc] table.
type IRCConfig struct {
	Listen       []string   `toml:"listen"`
	TLS          []TLSEntry `toml:"tls"`
	Password     string     `toml:"password"`
	ServerName   string     `toml:"server_name"`
	Network      string     `toml:"network"`
	MOTD         []string   `toml:"motd"`
	ServiceNick  string     `toml:"service_nick"`
	FloodRate    float64    `toml:"flood_rate"`
	FloodBurst   int        `toml:"flood_burst"`
	PingInterval Duration   `toml:"ping_interval"`
	SendQ        int        `toml:"sendq"`
	// Open IRC connections in all and from one address (an IPv6 /64):
	// 0 = ircd's default, negative = no cap.
	MaxConnections        int `toml:"max_connections"`
	MaxConnectionsPerAddr int `toml:"max_connections_per_addr"`
	// MaxClientsPerUser caps the IRC clients attached to one user at once
	// (0: 8).
	MaxClientsPerUser int `toml:"max_clients_per_user"`
	// Registration is "open" (IRC users may register their nick) or
	// "closed" (msimircd user add makes users); "" = open when every
	// listener is on loopback, else closed.
	Registration string `toml:"registration"`
}

// registration is the registration mode in effect.
func (c Config) registration() string {
	if c.IRC.Registration != "" {
		return c.IRC.Registration
	}
	if c.public() {
		return channel.RegistrationClosed
	}
	return channel.RegistrationOpen
}

// registrationWarning is the warning msimircd logs at start when the
// config itself opens registration on a listener beyond loopback (the
// default there is closed); "" when there is nothing to warn of. BitlBee's
// register is open by design when its administrator allows it, and so is
// this one: an explicit registration = "open" is that choice, kept, and
// said in the log.
//
// Beyond loopback, open registration needs irc.password (checkPasswords).
// On the embedded demo network every client gives it (WithServerPassword,
// in front of the stored users): nothing to warn of. With [[user]]s or an
// upstream server it is the password of the [[user]]s without one and of
// a nick nobody has (a newcomer), which must give it to connect and
// register; a connection to a registered nick without any password
// (unidentified) may not register another nick (channel's register), so
// whoever has irc.password may make themselves a user, and the warning
// says so.
func (c Config) registrationWarning() string {
	if c.IRC.Registration != channel.RegistrationOpen {
		return ""
	}
	addr := c.publicListener()
	if addr == "" || len(c.Users) == 0 && c.MSIM.Server == "" {
		return ""
	}
	return fmt.Sprintf("irc.registration = %q on %s, a listener beyond loopback: whoever has irc.password may connect with a nick nobody has and make themselves a user of this gateway with register; set irc.registration = %q to make users with msimircd user add only",
		channel.RegistrationOpen, addr, channel.RegistrationClosed)
}

// public reports whether an IRC listener is on a non-loopback address.
func (c Config) public() bool { return c.publicListener() != "" }

// publicListener returns the first IRC listener on a non-loopback
// address, or "".
func (c Config) publicListener() string {
	for _, a := range c.IRC.Listen {
		if !isLoopback(a) {
			return a
		}
	}
	for _, t := range c.IRC.TLS {
		if !isLoopback(t.Listen) {
			return t.Listen
		}
	}
	return ""
}

// TLSEntry is one [[irc.tls]] listener.
type TLSEntry struct {
	Listen string `toml:"listen"`
	Cert   string `toml:"cert"`
	Key    string `toml:"key"`
}

// MSIMConfig is the [msim] table.
type MSIMConfig struct {
	Server       string   `toml:"server"`          // upstream host:port; "" = the embedded network
	EmbeddedAddr string   `toml:"embedded_listen"` // where the embedded MSIM server listens
	DataFile     string   `toml:"data"`            // embedded network's durable store; "" = STATE/msim.db
	QueueLimit   int      `toml:"queue_limit"`
	ReconnectMin Duration `toml:"reconnect_min"`
	ReconnectMax Duration `toml:"reconnect_max"`
	Timeout      Duration `toml:"timeout"`
	Accounts     []string `toml:"accounts"`      // "EMAIL:PASSWORD" made on the embedded network
	AccountsFile string   `toml:"accounts_file"` // lines "EMAIL:PASSWORD", made on the embedded network
	// AlwaysOn keeps a user's MSIM accounts online while no IRC client is
	// attached, and logs them in at start (accounts with autoconnect).
	AlwaysOn bool `toml:"always_on"`
	// Accounts the demo directory may create per client address per hour;
	// 0 = no limit.
	AccountCreationPerHour int `toml:"account_creation_per_hour"`

	// The embedded MSIM server's limits (what they matter for is MSIM
	// clients let in through embedded_listen): 0 = the server's default,
	// negative = no cap.
	MaxConnections           int   `toml:"max_connections"`
	MaxConnectionsPerAddr    int   `toml:"max_connections_per_addr"`
	OfflineBytesPerRecipient int64 `toml:"offline_bytes_per_recipient"`
	OfflineBytesPerSender    int64 `toml:"offline_bytes_per_sender"`

	fileAccounts []string // read from AccountsFile by Validate
}

// allAccounts are the accounts to make on the embedded network.
func (m *MSIMConfig) allAccounts() []string {
	return append(append([]string(nil), m.Accounts...), m.fileAccounts...)
}

// LogConfig is the [log] table.
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"` // text or json
}

// UserEntry is one [[user]].
type UserEntry struct {
	Name     string         `toml:"name"`
	Password string         `toml:"password"`
	Accounts []AccountEntry `toml:"account"`
}

// AccountEntry is one [[user.account]].
type AccountEntry struct {
	Email        string `toml:"email"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	Channel      string `toml:"channel"`
	AutoConnect  *bool  `toml:"autoconnect"`
	// fromFile: Validate read Password from PasswordFile (so a second
	// Validate reads the file again rather than taking both as set).
	fromFile bool
}

// Duration is a TOML string such as "30s" or "5m".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler (errors carry the line).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (like \"30s\", \"5m\" or \"90d\"): %q", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.Duration = v
	return nil
}

// parseDuration is time.ParseDuration, plus whole days ("90d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("bad number of days %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// Defaults returns the configuration used without a file.
func Defaults() Config {
	return Config{
		IRC: IRCConfig{Listen: []string{"127.0.0.1:6667"}, ServerName: "msimircd", Network: "msimircd",
			ServiceNick: "root", FloodRate: 10, FloodBurst: 40},
		MSIM:    MSIMConfig{AccountCreationPerHour: 10, AlwaysOn: true},
		Log:     LogConfig{Level: "info", Format: "text"},
		Store:   StoreConfig{Driver: "sqlite"},
		History: HistoryConfig{Enabled: true, Retention: Duration{defaultRetention}},
	}
}

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return decodeConfig(path, data)
}

// decodeConfig decodes and validates the text of the config file at path;
// its errors name the file and, where they can, the line and the key.
func decodeConfig(path string, data []byte) (Config, error) {
	cfg := Defaults()
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("config %s: line %d: key %q: %s", path, pe.Position.Line, pe.LastKey, pe.Message)
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		k := extra[0].String()
		return Config{}, fmt.Errorf("config %s: line %d: unknown key %q", path, keyLine(data, extra[0]), k)
	}
	if err := cfg.Validate(); err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			return Config{}, fmt.Errorf("config %s: line %d: %w", path, ke.line(data), err)
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// locateKey adds the config file and line to an error that names a key
// (one found after the config loaded, e.g. at start).
func locateKey(path string, err error) error {
	var ke *keyError
	if path == "" || !errors.As(err, &ke) {
		return err
	}
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return fmt.Errorf("config %s: line %d: %w", path, ke.line(data), err)
}

// keyError names the offending key; table and index locate it in the file.
type keyError struct {
	key   string // as shown to the user, e.g. user[2].account[1].email
	field string // the key's last part
	path  []pathStep
	msg   string
}

type pathStep struct {
	table string // "irc", "user", "user.account"
	index int    // for arrays of tables; -1 for plain tables
}

func (e *keyError) Error() string { return fmt.Sprintf("%s: %s", e.key, e.msg) }

// line finds the line of the key (or of its table) in the file.
func (e *keyError) line(data []byte) int {
	lines := tomlkey.Code(data)
	start, end := 0, len(lines)
	for _, st := range e.path {
		header := "[" + st.table + "]"
		if st.index >= 0 {
			header = "[[" + st.table + "]]"
		}
		n, found := -1, -1
		for i := start; i < end; i++ {
			if tomlkey.Header(lines[i]) == header {
				n++
				if n == max(st.index, 0) {
					found = i
					break
				}
			}
		}
		if found < 0 {
			return 0
		}
		start = found
		// The table ends at the next header of the same or an outer array.
		for i := found + 1; i < end; i++ {
			t := tomlkey.Header(lines[i])
			if t == header || (t != "" && !strings.HasPrefix(t, "[["+st.table+".") && !strings.HasPrefix(t, "["+st.table+".")) {
				end = i
				break
			}
		}
	}
	for i := start; i < end; i++ {
		if i > start && tomlkey.Header(lines[i]) != "" {
			break // a sub-table: the key was not set in this table
		}
		if tomlkey.Key(lines[i]) == e.field {
			return i + 1
		}
	}
	return start + 1
}

// keyLine finds the line that sets key k (see tomlkey.Line).
func keyLine(data []byte, k toml.Key) int {
	return tomlkey.Line(data, k...)
}

func errKey(msg string, field string, path ...pathStep) error {
	var b strings.Builder
	for i, p := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		name := p.table
		if i > 0 {
			name = name[strings.LastIndexByte(name, '.')+1:]
		}
		b.WriteString(name)
		if p.index >= 0 {
			fmt.Fprintf(&b, "[%d]", p.index+1)
		}
	}
	key := field
	if b.Len() > 0 {
		key = b.String() + "." + field
	}
	return &keyError{key: key, field: field, path: path, msg: msg}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port: %q", addr)
	}
	_ = host
	if port == "" {
		return fmt.Errorf("no port in %q", addr)
	}
	return nil
}

// maxServerName is the longest server name, as RFC 2812 has it.
const maxServerName = 63

// Validate checks the configuration and reads password files. Its errors
// name the offending key.
func (c *Config) Validate() error {
	irc := pathStep{"irc", -1}
	if len(c.IRC.Listen) == 0 && len(c.IRC.TLS) == 0 {
		return errKey("no listener: set irc.listen or add an [[irc.tls]]", "listen", irc)
	}
	for _, a := range c.IRC.Listen {
		if err := checkAddr(a); err != nil {
			return errKey(err.Error(), "listen", irc)
		}
	}
	for i, t := range c.IRC.TLS {
		p := pathStep{"irc.tls", i}
		if err := checkAddr(t.Listen); err != nil {
			return errKey(err.Error(), "listen", irc, p)
		}
		if t.Cert == "" || t.Key == "" {
			return errKey("a TLS listener needs cert and key", "cert", irc, p)
		}
	}
	if n := c.IRC.ServerName; n == "" || strings.ContainsAny(n, " ,!@*?:\x00\r\n\t") {
		return errKey(fmt.Sprintf("not a server name (like irc.example.net: no spaces, no ,!@*?:): %q", n), "server_name", irc)
	} else if len(n) > maxServerName {
		// Every line the server sends names it, some twice (PONG): a
		// longer one leaves a PONG's token no room in a line.
		return errKey(fmt.Sprintf("%d bytes long: a server name is at most %d (RFC 2812)", len(n), maxServerName), "server_name", irc)
	}
	if n := c.IRC.ServiceNick; n == "" {
		return errKey("must not be empty", "service_nick", irc)
	} else if len(n) > channel.NickLen || !ircd.Nick(n).Valid() {
		// The bridge refuses it at start, without naming the key.
		return errKey(fmt.Sprintf("not a valid nick (letters, digits and []\\`_^{|}-, not starting with a digit or -, at most %d): %q", channel.NickLen, n), "service_nick", irc)
	}
	if r := c.IRC.Registration; r != "" && r != channel.RegistrationOpen && r != channel.RegistrationClosed {
		return errKey(fmt.Sprintf("must be %q or %q, not %q", channel.RegistrationOpen, channel.RegistrationClosed, r), "registration", irc)
	}
	for _, n := range []struct {
		key string
		neg bool
	}{
		{"flood_rate", c.IRC.FloodRate < 0},
		{"flood_burst", c.IRC.FloodBurst < 0},
		{"sendq", c.IRC.SendQ < 0},
		{"max_clients_per_user", c.IRC.MaxClientsPerUser < 0},
	} {
		if n.neg {
			return errKey("must not be negative", n.key, irc)
		}
	}
	if c.MSIM.Server != "" {
		if err := checkAddr(c.MSIM.Server); err != nil {
			return errKey(err.Error(), "server", pathStep{"msim", -1})
		}
	}
	for _, spec := range c.MSIM.Accounts {
		if c.MSIM.Server != "" {
			return errKey("accounts are made on the embedded network only (msim.server is set)", "accounts", pathStep{"msim", -1})
		}
		if email, pw, ok := strings.Cut(spec, ":"); !ok || !strings.Contains(email, "@") || pw == "" {
			return errKey(fmt.Sprintf("want \"EMAIL:PASSWORD\", got %q", email), "accounts", pathStep{"msim", -1})
		}
	}
	c.MSIM.fileAccounts = nil
	if c.MSIM.AccountsFile != "" {
		if c.MSIM.Server != "" {
			return errKey("accounts are made on the embedded network only (msim.server is set)", "accounts_file", pathStep{"msim", -1})
		}
		specs, err := readAccountsFile(c.MSIM.AccountsFile)
		if err != nil {
			return errKey(err.Error(), "accounts_file", pathStep{"msim", -1})
		}
		c.MSIM.fileAccounts = specs
	}
	if err := c.MSIM.validateLimits(); err != nil {
		return err
	}
	if c.MSIM.QueueLimit < 0 {
		return errKey("must not be negative (0 = the default, 100)", "queue_limit", pathStep{"msim", -1})
	}
	if c.MSIM.AccountCreationPerHour < 0 {
		return errKey("must not be negative (0 = no limit)", "account_creation_per_hour", pathStep{"msim", -1})
	}
	if c.MSIM.EmbeddedAddr != "" {
		if c.MSIM.Server != "" {
			return errKey("the embedded network runs only when msim.server is empty", "embedded_listen", pathStep{"msim", -1})
		}
		if err := checkAddr(c.MSIM.EmbeddedAddr); err != nil {
			return errKey(err.Error(), "embedded_listen", pathStep{"msim", -1})
		}
	}
	if err := c.Store.validate(); err != nil {
		return err
	}
	if err := c.Metrics.validate(); err != nil {
		return err
	}
	if err := c.History.validate(); err != nil {
		return err
	}
	if err := c.Cluster.validate(c); err != nil {
		return err
	}
	switch strings.ToLower(c.Log.Level) {
	case "trace", "debug", "info", "warn", "warning", "error":
	default:
		return errKey(fmt.Sprintf("unknown level %q (debug, info, warn, error)", c.Log.Level), "level", pathStep{"log", -1})
	}
	if f := strings.ToLower(c.Log.Format); f != "text" && f != "json" {
		return errKey(fmt.Sprintf("unknown format %q (text or json)", c.Log.Format), "format", pathStep{"log", -1})
	}
	names := map[string]bool{}
	// An MSIM account logs in once: a second login of it, by another
	// user's session or by the same one, logs the first out, and each
	// takes it back from the other.
	accounts := map[string]string{} // foldEmail: where it is listed
	for i := range c.Users {
		u := &c.Users[i]
		p := pathStep{"user", i}
		if u.Name == "" {
			return errKey("every [[user]] needs a name", "name", p)
		}
		if len(u.Name) > ircd.NickLen {
			// As a nick: SASL names no longer user (NICKLEN).
			return errKey(fmt.Sprintf("user %q: a name longer than %d bytes (NICKLEN) cannot log in", u.Name, ircd.NickLen), "name", p)
		}
		if channel.DemoNamespace(u.Name) {
			// The store keeps the demo network's nicks under such names.
			return errKey(fmt.Sprintf("user %q: names starting with \"demo/\" are the embedded network's own", u.Name), "name", p)
		}
		if strings.Contains(u.Name, "/") {
			// SASL PLAIN and PASS name:password take what follows the
			// first '/' for the client's name, so no login reaches
			// such a user; and the bridge names its own users so
			// (demo/…, newcomer/…, unidentified/…).
			return errKey(fmt.Sprintf("user %q: a name with \"/\" names no user: a client names itself after a \"/\" (alice/phone is alice's client phone), and the gateway names its own users so", u.Name), "name", p)
		}
		if !utf8.ValidString(u.Name) || strings.ContainsFunc(u.Name, unicode.IsControl) {
			// SASL PLAIN refuses such an account name, and IRC lines
			// (RPL_LOGGEDIN, the log) would carry it.
			return errKey(fmt.Sprintf("user %q: a name with a control character (or not UTF-8) cannot log in", u.Name), "name", p)
		}
		// Names compare as nicks do (the directory finds users so).
		if names[ircd.AccountKey(u.Name)] {
			return errKey(fmt.Sprintf("duplicate user %q (names that are the same nick are one user)", u.Name), "name", p)
		}
		names[ircd.AccountKey(u.Name)] = true
		if len(u.Accounts) == 0 {
			return errKey(fmt.Sprintf("user %q has no [[user.account]]", u.Name), "name", p)
		}
		if len(u.Accounts) > store.MaxAccounts {
			// As a registered user adds at most (account add): each is
			// a control channel, an MSIM login and room for held IMs.
			return errKey(fmt.Sprintf("user %q has %d [[user.account]]s: a user has at most %d MSIM accounts, as many as a registered user may add", u.Name, len(u.Accounts), store.MaxAccounts), "account", p)
		}
		for j := range u.Accounts {
			a := &u.Accounts[j]
			ap := pathStep{"user.account", j}
			if !strings.Contains(a.Email, "@") {
				return errKey(fmt.Sprintf("not an e-mail address: %q", a.Email), "email", p, ap)
			}
			// E-mails compare as the bridge compares them.
			k := foldEmail(a.Email)
			if at, ok := accounts[k]; ok {
				return errKey(fmt.Sprintf("the MSIM account %q is %s already (an account logs in for one user, once)", a.Email, at), "email", p, ap)
			}
			accounts[k] = fmt.Sprintf("user[%d].account[%d]", i+1, j+1)
			if a.fromFile {
				a.Password, a.fromFile = "", false // validated again: read the file again
			}
			if (a.Password == "") == (a.PasswordFile == "") {
				return errKey("set exactly one of password and password_file", "password", p, ap)
			}
			if a.PasswordFile != "" {
				pw, err := readPasswordFile(a.PasswordFile)
				if err != nil {
					return errKey(err.Error(), "password_file", p, ap)
				}
				a.Password, a.fromFile = pw, true
			}
			if a.Channel != "" && (a.Channel[0] != '&' && a.Channel[0] != '#' || strings.ContainsAny(a.Channel, " ,\x07")) {
				return errKey(fmt.Sprintf("not a channel name (start with & or #, no spaces or commas): %q", a.Channel), "channel", p, ap)
			}
		}
	}
	return c.checkPasswords(c.publicListener(), c.registration())
}

// checkPasswords refuses, when an IRC listener is not on loopback
// (listener, its address; "" when every one is on loopback) and there is
// no irc.password: a user without a password, the demo network, and
// registration open (in front of [[user]]s or an upstream server), in
// which a nick nobody has would connect with no password at all and
// register. (With an upstream server and no [[user]], the users are those
// of the store, each with a password.) A reload checks the file with the
// listeners and the registration in effect, which the command line
// (-listen) may have moved and which only a restart changes.
func (c *Config) checkPasswords(listener, registration string) error {
	if listener == "" || c.IRC.Password != "" {
		return nil
	}
	for i, u := range c.Users {
		if u.Password == "" {
			return errKey("an IRC listener is not on loopback, so every user needs a password (or set irc.password)", "password", pathStep{"user", i})
		}
	}
	if len(c.Users) == 0 && c.MSIM.Server == "" {
		return errKey("an IRC listener is not on loopback: set irc.password (the embedded demo network is open to anyone who can connect)", "password", pathStep{"irc", -1})
	}
	if registration == channel.RegistrationOpen {
		return errKey(fmt.Sprintf("%q with %s, a listener beyond loopback, needs irc.password: without it anyone who can reach the listener connects with a nick nobody has, with no password, and makes themselves a user of this gateway with register; set irc.password (which such a nick must then give with PASS), or irc.registration = %q (users are then the [[user]]s and those made with msimircd user add)",
			channel.RegistrationOpen, listener, channel.RegistrationClosed), "registration", pathStep{"irc", -1})
	}
	return nil
}

// validateLimits refuses the embedded server's limits when there is no
// embedded server (msim.server is set): they would do nothing. A value
// meaning the default (0 or the default itself) is allowed, so the example
// config's keys may stay as they are.
func (m *MSIMConfig) validateLimits() error {
	if m.Server == "" {
		return nil
	}
	for _, l := range []struct {
		key      string
		val, def int64
	}{
		{"max_connections", int64(m.MaxConnections), server.DefaultMaxConnections},
		{"max_connections_per_addr", int64(m.MaxConnectionsPerAddr), server.DefaultMaxConnectionsPerAddr},
		{"offline_bytes_per_recipient", m.OfflineBytesPerRecipient, server.DefaultOfflinePerRecipientBytes},
		{"offline_bytes_per_sender", m.OfflineBytesPerSender, server.DefaultOfflinePerSenderBytes},
	} {
		if l.val != 0 && l.val != l.def {
			return errKey("a limit of the embedded MSIM network, which does not run when msim.server is set", l.key, pathStep{"msim", -1})
		}
	}
	return nil
}

// maxPasswordLine bounds what is read of a password file. Its first line
// is the password, so a file named by mistake (a log, a device that never
// ends) is refused after that many bytes rather than read whole.
const maxPasswordLine = 4 << 10

// readPasswordFile returns the first line of the password file at path,
// without its line end. It reads no further than that line's end (and
// never more than maxPasswordLine bytes), so a pipe whose writer stays open
// after the line serves too. Its errors never show what the file holds.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read it: %v", err)
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(io.LimitReader(f, maxPasswordLine+1), 512).ReadString('\n')
	switch {
	case err == io.EOF && len(line) > maxPasswordLine:
		return "", fmt.Errorf("its first line is over %d bytes: the password is the file's first line", maxPasswordLine)
	case err != nil && err != io.EOF:
		return "", fmt.Errorf("cannot read it: %v", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if pw == "" {
		return "", errors.New("its first line (the password) is empty")
	}
	return pw, nil
}

// foldEmail is e-mail as a key under which addresses strings.EqualFold
// finds equal are one (the bridge compares e-mails so): each rune is the
// least of its case-folding orbit.
func foldEmail(email string) string {
	return strings.Map(func(r rune) rune {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		return m
	}, email)
}
