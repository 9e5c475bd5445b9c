package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// linkProxy carries the gateway's MSIM connections to the MSIM server, and
// can cut them and refuse new ones, as a network failure would.
type linkProxy struct {
	ln       net.Listener
	upstream string
	refused  atomic.Int64 // connections closed at once while refusing
	wg       sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	refusing bool
	closed   bool
}

// newLinkProxy listens on a loopback port; forward starts it.
func newLinkProxy() (*linkProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &linkProxy{ln: ln, conns: map[net.Conn]bool{}}, nil
}

// forward starts carrying connections to upstream and returns the address
// to dial instead.
func (p *linkProxy) forward(upstream string) string {
	p.upstream = upstream
	p.wg.Add(1)
	go p.accept()
	return p.ln.Addr().String()
}

func (p *linkProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refusing || p.closed
		p.mu.Unlock()
		if refuse {
			p.refused.Add(1)
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// track registers a pair of connections; false (both closed) once the
// proxy is closed.
func (p *linkProxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		a.Close()
		b.Close()
		return false
	}
	p.conns[a], p.conns[b] = true, true
	return true
}

// pipe copies src to dst; when either side ends, both are closed.
func (p *linkProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every connection carried now; with refuse, new ones are
// closed as they come until pass.
func (p *linkProxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = refuse
	for c := range p.conns {
		c.Close()
	}
}

// pass carries new connections again.
func (p *linkProxy) pass() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = false
}

// close stops the proxy and closes every connection; a nil proxy does
// nothing.
func (p *linkProxy) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.cut(false)
	p.wg.Wait()
}
