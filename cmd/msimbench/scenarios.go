package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// target is where a scenario runs: a fresh MSIM server and gateway we
// started, or the addresses we were given.
type target struct {
	ircAddr, msimAddr string
	gw                *gateway
	close             func()
	metrics           *stackMetrics // scraped at the start; finish at the scenario's end
}

// finishMetrics takes the stack's second metrics scrape: call it while the
// scenario's clients are still connected.
func (t *target) finishMetrics() { t.metrics.finish() }

// env is what every scenario shares.
type env struct {
	tmp        string
	gatewayBin string // "" in external mode
	// External mode: the gateway and MSIM server are already running with
	// the accounts of `msimbench -setup`.
	extIRC, extMSIM string
	extDebug        string
	extPID          int
	// External mode: the metrics listeners of the gateway and of the
	// MSIM server ("" = not scraped).
	extGWMetrics, extMSIMMetrics string
	metrics                      *metricTally // nil: no metrics scraped
	profileDir                   string
	prog                         *progress
	timeout                      time.Duration // bound on each wait for logins and NAMES
}

func (e *env) external() bool { return e.extIRC != "" }

// start brings up the system under test for accts.
func (e *env) start(name string, accts []*acct, o gwOptions) (*target, error) {
	if e.external() {
		t := &target{ircAddr: e.extIRC, msimAddr: e.extMSIM,
			gw: &gateway{ircAddr: e.extIRC, debugAddr: e.extDebug, metricsAddr: e.extGWMetrics, pid: e.extPID}}
		t.metrics = startMetrics(e.metrics, name, []metricSource{{"msimircd", e.extGWMetrics}, {"msimd", e.extMSIMMetrics}})
		t.close = t.finishMetrics
		return t, nil
	}
	ms, err := startMSIM(accts)
	if err != nil {
		return nil, fmt.Errorf("%s: MSIM server: %w", name, err)
	}
	dir := filepath.Join(e.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		ms.Close()
		return nil, err
	}
	upstream := ms.addr
	if o.proxy != nil {
		upstream = o.proxy.forward(ms.addr)
	}
	o.contention = e.profileDir != ""
	gw, err := startGateway(e.gatewayBin, dir, upstream, o, accts)
	if err != nil {
		o.proxy.close()
		ms.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t := &target{ircAddr: gw.ircAddr, msimAddr: ms.addr, gw: gw}
	t.metrics = startMetrics(e.metrics, name, []metricSource{{"msimircd", gw.metricsAddr}, {"msimd", ms.metricsAddr}})
	t.close = func() {
		t.finishMetrics()
		gw.Stop()
		o.proxy.close()
		ms.Close()
	}
	return t, nil
}

// connectAll connects an IRC client for every IRC user in accts at once
// and returns them in that order; want(a) lists the nicks that must be
// voiced in its control channel.
func connectAll(ctx context.Context, addr string, accts []*acct, want func(*acct) []string) ([]*ircClient, error) {
	return connectAllWith(ctx, addr, accts, want, nil)
}

// connectAllWith is connectAll with the dial options opts(a) (nil: none)
// for each user.
func connectAllWith(ctx context.Context, addr string, accts []*acct, want func(*acct) []string, opts func(*acct) dialOpts) ([]*ircClient, error) {
	var users []*acct
	for _, a := range accts {
		if a.ircUser {
			users = append(users, a)
		}
	}
	clients := make([]*ircClient, len(users))
	errs := make([]error, len(users))
	// The first failure (a refused or closed connection, say) ends the wait
	// of the others at once: their buddies may never come.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		firstOnce sync.Once
		first     error
	)
	failed := func(i int, err error) {
		errs[i] = err
		firstOnce.Do(func() { first = err; cancel() })
	}
	var wg sync.WaitGroup
	for i, a := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o dialOpts
			if opts != nil {
				o = opts(a)
			}
			c, err := dialIRCWith(ctx, addr, a.name, a.name+":"+benchPassword, a.channel(), want(a), o)
			if err != nil {
				failed(i, err)
				return
			}
			clients[i] = c
			if err := c.waitFor(ctx, c.joined, "the control channel with every online buddy voiced"); err != nil {
				failed(i, fmt.Errorf("%w; %d of %d buddies missing", err, c.missingAfter(), len(c.want)))
			}
		}()
	}
	wg.Wait()
	if first != nil {
		closeAll(clients)
		n := 0
		for _, err := range errs {
			if err != nil {
				n++
			}
		}
		if n == 1 {
			return nil, first
		}
		return nil, fmt.Errorf("%d of %d clients failed or were stopped; first: %w", n, len(users), first)
	}
	return clients, nil
}

// firstErrs summarises many errors: the first one and how many there were.
func firstErrs(errs []error) error {
	n := 0
	var first error
	for _, e := range errs {
		if e != nil {
			if first == nil {
				first = e
			}
			n++
		}
	}
	if n <= 1 {
		return first
	}
	return fmt.Errorf("%d clients failed; first: %w", n, first)
}

func closeAll(cs []*ircClient) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Close()
			}()
		}
	}
	wg.Wait()
}

// missingAfter counts wanted nicks not voiced, once the reader is done or
// joined (otherwise it reports -1 rather than race with the reader).
func (c *ircClient) missingAfter() int {
	select {
	case <-c.joined:
		return 0
	case <-c.closed:
		return c.missing()
	default:
		return -1
	}
}

// ---- bridged IM ----

func pairAccounts(prefix string, n int) []*acct {
	accts := make([]*acct, n)
	for i := range accts {
		accts[i] = &acct{name: fmt.Sprintf("%s%04d", prefix, i), ircUser: true}
	}
	for i, a := range accts {
		a.buddies = []string{accts[i^1].name}
	}
	return accts
}

// runBridged runs the load through a fresh stack called name; gwo are its
// config choices (the default sendq: a large one only makes the GC scan
// empty queues).
func runBridged(ctx context.Context, e *env, name string, clientsN int, o loadOptions, gwo gwOptions) (loadResult, error) {
	accts := pairAccounts("im", clientsN)
	t, err := e.start(name, accts, gwo)
	if err != nil {
		return loadResult{}, err
	}
	defer t.close()
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	clients, err := connectAll(cctx, t.ircAddr, accts, func(a *acct) []string { return a.buddies })
	if err != nil {
		return loadResult{}, fmt.Errorf("bridged IM: %w", err)
	}
	defer closeAll(clients)
	nicks := make([]string, len(accts))
	for i, a := range accts {
		nicks[i] = a.name
	}
	// The loads measure the steady state: the gateway's memory release
	// after the burst of logins (collections) must not fall into them.
	t.gw.settle(settleAfterLogins)
	secs := int((o.rateDuration + o.warmup + o.duration).Seconds() + 0.999)
	waitProfiles := t.gw.profiles(e.profileDir, name, secs)
	if o.rate > 0 && o.rateDuration > 0 {
		waitTrace := t.gw.trace(e.profileDir, name+"-rate", min(o.rateDuration, 5*time.Second))
		defer waitTrace()
	}
	l := newLoad(clients, nicks, o.window)
	l.server = func() cpuSample { return sampleCPU(t.gw) }
	cpu0, cpuErr := t.gw.cpuTicks()
	res := l.run(ctx, o, e.prog, "bridged IM")
	if cpu1, err := t.gw.cpuTicks(); err == nil && cpuErr == nil && res.Delivered > 0 {
		res.GatewayCPUPerIM = float64(cpu1-cpu0) * 1e6 / clockTicks / float64(res.Delivered)
	}
	t.finishMetrics()
	waitProfiles()
	if err := t.gw.alive(); err != nil {
		return res, err
	}
	return res, nil
}

// ---- memory per idle account and the login storm ----

// memResult is one memory/login-storm run.
type memResult struct {
	Accounts      int     `json:"accounts"`
	Buddies       int     `json:"buddies"`
	OnlineBuddies int     `json:"online_buddies_per_account"` // average
	LoginStormMs  float64 `json:"login_storm_ms"`
	// StormCPU is the CPU the storm took, from its start until the last
	// client saw its buddies (zero when not measured).
	StormCPU       stormCPU  `json:"storm_cpu"`
	Base           memSample `json:"baseline"`
	After          memSample `json:"after"`
	RSSPerAccount  float64   `json:"rss_per_account"`
	HeapPerAccount float64   `json:"heap_per_account"` // (HeapInuse+StackInuse) delta / N
	// GoroutinesPerAccount is the growth of the gateway's goroutine count
	// divided by N.
	GoroutinesPerAccount float64 `json:"goroutines_per_account"`
	// AllocPerAccount and ObjectsPerAccount are what the gateway allocated
	// from the baseline to the settled state (the storm and what follows
	// it), divided by N; StormGCs the collections it ran meanwhile.
	AllocPerAccount   float64 `json:"alloc_per_account"`
	ObjectsPerAccount float64 `json:"objects_per_account"`
	StormGCs          uint32  `json:"storm_gcs"`
	SettleMs          float64 `json:"settle_ms"`
	MemoryMeasured    bool    `json:"memory_measured"`
	MemoryNotMeasur   string  `json:"memory_skipped,omitempty"`
}

// ringAccounts makes n IRC users plus buddies extra MSIM-only accounts on a
// ring; each lists the buddies nearest ones (half on each side), so most
// buddies of most users are other bench users, online.
func ringAccounts(prefix string, n, buddies int) []*acct {
	p := n + buddies
	accts := make([]*acct, p)
	for i := range accts {
		accts[i] = &acct{name: fmt.Sprintf("%s%05d", prefix, i), ircUser: i < n}
	}
	for i, a := range accts {
		for d := 1; len(a.buddies) < buddies; d++ {
			a.buddies = append(a.buddies, accts[(i+d)%p].name)
			if len(a.buddies) < buddies {
				a.buddies = append(a.buddies, accts[(i-d+p)%p].name)
			}
		}
	}
	return accts
}

func runMemory(ctx context.Context, e *env, n, buddies int, gwo gwOptions) (memResult, error) {
	res := memResult{Accounts: n, Buddies: buddies}
	accts := ringAccounts(fmt.Sprintf("k%d_", n), n, buddies)
	online := map[string]bool{}
	for _, a := range accts {
		online[a.name] = a.ircUser
	}
	want := func(a *acct) []string {
		var w []string
		for _, b := range a.buddies {
			if online[b] {
				w = append(w, b)
			}
		}
		return w
	}
	total := 0
	for _, a := range accts[:n] {
		total += len(want(a))
	}
	res.OnlineBuddies = total / n
	t, err := e.start(fmt.Sprintf("mem%d", n), accts, gwo)
	if err != nil {
		return res, err
	}
	defer t.close()
	canMeasure := t.gw.debugAddr != ""
	if canMeasure {
		t.gw.settle(3 * time.Second)
		if res.Base, err = t.gw.memory(); err != nil {
			return res, fmt.Errorf("baseline memory: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	// The storm's profiles cover the logins and the settling after them;
	// they are waited for before the gateway stops.
	waitProfiles := t.gw.profiles(e.profileDir, fmt.Sprintf("storm%d", n), 5)
	defer waitProfiles()
	if e.profileDir != "" {
		time.Sleep(50 * time.Millisecond) // let the profiles start
	}
	stopProg := e.prog.every(fmt.Sprintf("login storm (%d accounts)", n), func() string { return "logging in" })
	cpu0 := sampleCPU(t.gw)
	start := time.Now()
	clients, err := connectAll(cctx, t.ircAddr, accts, want)
	res.StormCPU = sampleCPU(t.gw).since(cpu0)
	stopProg()
	if err != nil {
		return res, fmt.Errorf("login storm of %d: %w", n, err)
	}
	defer closeAll(clients)
	var last time.Time
	for _, c := range clients {
		if c.doneAt.After(last) {
			last = c.doneAt
		}
	}
	res.LoginStormMs = ms(last.Sub(start))
	if !canMeasure {
		t.finishMetrics()
		res.MemoryNotMeasur = "no -gateway-debug address"
		return res, nil
	}
	res.SettleMs = ms(t.gw.settle(60 * time.Second))
	t.finishMetrics()
	if res.After, err = t.gw.memory(); err != nil {
		return res, fmt.Errorf("memory: %w", err)
	}
	if e.profileDir != "" {
		_ = t.gw.heapProfile(filepath.Join(e.profileDir, fmt.Sprintf("mem%d-heap.pprof", n)))
	}
	waitProfiles()
	res.MemoryMeasured = true
	res.HeapPerAccount = (float64(res.After.goMem()) - float64(res.Base.goMem())) / float64(n)
	res.GoroutinesPerAccount = float64(res.After.Goroutines-res.Base.Goroutines) / float64(n)
	res.AllocPerAccount = float64(res.After.TotalAlloc-res.Base.TotalAlloc) / float64(n)
	res.ObjectsPerAccount = float64(res.After.Mallocs-res.Base.Mallocs) / float64(n)
	res.StormGCs = res.After.NumGC - res.Base.NumGC
	if res.After.RSS > 0 {
		res.RSSPerAccount = (float64(res.After.RSS) - float64(res.Base.RSS)) / float64(n)
	}
	return res, t.gw.alive()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---- one account with a large contact list ----

type namesResult struct {
	Buddies    int     `json:"buddies"`
	NamesMs    float64 `json:"names_ms"`       // registration sent → every buddy voiced in the channel
	WelcomeMs  float64 `json:"welcome_ms"`     // → 001
	FirstEndMs float64 `json:"first_names_ms"` // → the first 366 of the channel
	InNames    int     `json:"in_first_names"` // buddies voiced in the first NAMES
}

// namesAccounts makes the IRC user with a large list and its buddies
// (MSIM-only accounts; the first of accts is the user).
func namesAccounts(buddies int) (*acct, []*acct) {
	big := &acct{name: "bigl" + strconv.Itoa(buddies), ircUser: true}
	accts := []*acct{big}
	for i := range buddies {
		b := &acct{name: fmt.Sprintf("nb%d_%04d", buddies, i)}
		big.buddies = append(big.buddies, b.name)
		accts = append(accts, b)
	}
	return big, accts
}

func runNames(ctx context.Context, e *env, buddies int, gwo gwOptions) (namesResult, error) {
	res := namesResult{Buddies: buddies}
	big, accts := namesAccounts(buddies)
	t, err := e.start(fmt.Sprintf("names%d", buddies), accts, gwo)
	if err != nil {
		return res, err
	}
	defer t.close()
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	// Every buddy online, logged in straight to the MSIM server.
	stopProg := e.prog.every(fmt.Sprintf("logging in %d buddies to MSIM", buddies), func() string { return "" })
	cls, err := dialMSIM(cctx, t.msimAddr, accts[1:])
	stopProg()
	defer func() {
		for _, c := range cls {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	if err != nil {
		return res, err
	}
	start := time.Now()
	c, err := dialIRC(cctx, t.ircAddr, big.name, big.name+":"+benchPassword, big.channel(), big.buddies)
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.waitFor(cctx, c.joined, fmt.Sprintf("NAMES with all %d buddies voiced", buddies)); err != nil {
		return res, err
	}
	res.NamesMs = ms(c.doneAt.Sub(start))
	if !c.namesAt.IsZero() {
		res.FirstEndMs = ms(c.namesAt.Sub(start))
	}
	if !c.welcomeAt.IsZero() {
		res.WelcomeMs = ms(c.welcomeAt.Sub(start))
	}
	res.InNames = c.inFirstNames
	t.finishMetrics()
	return res, t.gw.alive()
}

// dialMSIM logs accts in to the MSIM server, 32 at a time.
func dialMSIM(ctx context.Context, addr string, accts []*acct) ([]*msim.Client, error) {
	cls := make([]*msim.Client, len(accts))
	errs := make([]error, len(accts))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, a := range accts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cl, err := msim.Dial(ctx, msim.ClientConfig{Addr: addr, Email: a.email(), Password: benchPassword, Log: quietLog()})
			if err != nil {
				errs[i] = err
				return
			}
			cls[i] = cl
			go func() {
				for range cl.Events() {
				}
			}()
		}()
	}
	wg.Wait()
	return cls, firstErrs(errs)
}

// ---- plain IRC server ----

// Why the plain mode is skipped when ngircd is missing: the package to
// install and the flags that help.
const (
	skipNoNgircd = "ngircd is not installed: install the Debian package ngircd (apt-get install ngircd), " +
		"or run with -install-ngircd as root to have msimbench install it, or name a running IRC server with -plain-irc ADDR"
	skipNoNgircdNoRoot = "ngircd is not installed and -install-ngircd needs root: install the Debian package ngircd " +
		"(apt-get install ngircd) or name a running IRC server with -plain-irc ADDR"
)

// plainTarget finds or starts an ordinary IRC server: addr if given, else
// ngircd (installed with apt-get when allowed), with the pid of the one it
// started (0 for a given one). It returns "" and a reason when the mode
// must be skipped.
func plainTarget(e *env, addr string, install bool) (ircAddr, name string, pid int, stop func(), skip string) {
	if addr != "" {
		return addr, "given by -plain-irc", 0, func() {}, ""
	}
	bin, err := exec.LookPath("ngircd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/ngircd"); serr == nil {
			bin = "/usr/sbin/ngircd"
		}
	}
	if bin == "" {
		if !install {
			return "", "", 0, nil, skipNoNgircd
		}
		if os.Geteuid() != 0 {
			return "", "", 0, nil, skipNoNgircdNoRoot
		}
		e.prog.say("installing ngircd with apt-get")
		cmd := exec.Command("apt-get", "install", "-y", "-q", "ngircd")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", 0, nil, fmt.Sprintf("apt-get install ngircd failed: %v: %s", err, lastLine(out))
		}
		if bin, err = exec.LookPath("ngircd"); err != nil {
			bin = "/usr/sbin/ngircd"
		}
	}
	port, err := freePort()
	if err != nil {
		return "", "", 0, nil, err.Error()
	}
	_, p, _ := strings.Cut(port, ":")
	dir := filepath.Join(e.tmp, "ngircd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", 0, nil, err.Error()
	}
	conf := fmt.Sprintf(`[Global]
	Name = bench.ngircd.local
	Info = msimbench comparison server
	Listen = 127.0.0.1
	Ports = %s
	PidFile = %s
	MotdPhrase = "bench"
[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 20
	MaxPenaltyTime = 0
	PingTimeout = 600
	PongTimeout = 600
[Options]
	DNS = no
	Ident = no
	PAM = no
	DefaultUserModes = F
`, p, filepath.Join(dir, "ngircd.pid"))
	cfg := filepath.Join(dir, "ngircd.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return "", "", 0, nil, err.Error()
	}
	logf, _ := os.Create(filepath.Join(dir, "ngircd.log"))
	cmd := exec.Command(bin, "-n", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", "", 0, nil, fmt.Sprintf("start ngircd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if logf != nil {
			logf.Close()
		}
	}
	ver := "ngircd"
	if out, err := exec.Command(bin, "--version").Output(); err == nil {
		ver = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		if i := strings.IndexByte(ver, '-'); i > 0 {
			ver = ver[:i]
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if nc, err := net.DialTimeout("tcp", port, time.Second); err == nil {
			nc.Close()
			return port, ver, cmd.Process.Pid, stop, ""
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(filepath.Join(dir, "ngircd.log"))
			return "", "", 0, nil, "ngircd did not start: " + lastLine(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// runPlain runs the same load between clients of an ordinary IRC server.
func runPlain(ctx context.Context, e *env, addr string, pid int, n int, o loadOptions) (loadResult, error) {
	clients, nicks, err := dialPlain(ctx, e, addr, "pl", n)
	if err != nil {
		return loadResult{}, err
	}
	defer closeAll(clients)
	return plainLoad(clients, nicks, pid, o.window).run(ctx, o, e.prog, "plain IRC"), nil
}

// dialPlain connects n clients to the plain IRC server at addr, their nicks
// prefix and a number, and waits for their registration.
func dialPlain(ctx context.Context, e *env, addr, prefix string, n int) ([]*ircClient, []string, error) {
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	clients := make([]*ircClient, n)
	nicks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range clients {
		nicks[i] = fmt.Sprintf("%s%04d", prefix, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialIRC(cctx, addr, nicks[i], "", "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			clients[i] = c
			errs[i] = c.waitFor(cctx, c.registered, "registration (001)")
		}()
	}
	wg.Wait()
	if err := firstErrs(errs); err != nil {
		closeAll(clients)
		return nil, nil, fmt.Errorf("plain IRC: %w", err)
	}
	return clients, nicks, nil
}

// plainLoad is the load between the plain IRC server's clients; pid, when
// known, is the server's process, whose CPU it samples.
func plainLoad(clients []*ircClient, nicks []string, pid, window int) *load {
	l := newLoad(clients, nicks, window)
	if pid != 0 {
		l.server = func() cpuSample { return samplePID(pid) }
	}
	return l
}
