package store

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/msimircd/msimircd/internal/pgtest"
)

// pgCounter relays a store's connections to PostgreSQL and counts the
// statements they run, by the query each runs: a Bind of a statement
// parsed on that connection, or a simple query. It reads the client's
// side of the protocol only, so the DSN it gives asks for no TLS.
type pgCounter struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	runs map[string]int // by query text
	wg   sync.WaitGroup
}

// countPostgres starts a relay to the database db names and returns the
// relay and db with its DSN pointed at the relay.
func countPostgres(t *testing.T, db testDB) (*pgCounter, testDB) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgCounter{ln: ln, target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), runs: map[string]int{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, kv := range [][2]string{{"host", host}, {"port", port}, {"sslmode", "disable"}} {
		db.dsn = pgtest.WithParam(t, db.dsn, kv[0], kv[1])
	}
	return p, db
}

func (p *pgCounter) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { // the server's side, as it comes
			defer p.wg.Done()
			_, _ = io.Copy(c, s)
			c.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.relay(s, c)
			s.Close()
		}()
	}
}

// relay copies the client's messages to the server, counting the
// statements run, until either side ends.
func (p *pgCounter) relay(dst io.Writer, src io.Reader) {
	r := bufio.NewReader(src)
	head := make([]byte, 5)
	parsed := map[string]string{} // statement name → query
	// Untyped first: requests for TLS or GSS encryption, then the startup
	// message.
	for {
		if _, err := io.ReadFull(r, head[:4]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head[:4])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if _, err := dst.Write(append(head[:4:4], body...)); err != nil {
			return
		}
		if len(body) >= 4 && binary.BigEndian.Uint32(body) == 3<<16 { // protocol 3.0: the startup message
			break
		}
	}
	for {
		if _, err := io.ReadFull(r, head); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		fields := strings.Split(string(body), "\x00")
		switch head[0] {
		case 'P': // Parse: statement name, query, ...
			if len(fields) >= 2 {
				parsed[fields[0]] = fields[1]
			}
		case 'B': // Bind: portal, statement name, ...
			if len(fields) >= 2 {
				p.count(parsed[fields[1]])
			}
		case 'Q': // a simple query
			p.count(fields[0])
		}
		if _, err := dst.Write(append(head[:5:5], body...)); err != nil {
			return
		}
	}
}

func (p *pgCounter) count(query string) {
	p.mu.Lock()
	p.runs[query]++
	p.mu.Unlock()
}

// take returns the statements run since the last call whose query holds
// word, one entry per run.
func (p *pgCounter) take(word string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for q, n := range p.runs {
		if strings.Contains(q, word) {
			for range n {
				out = append(out, strings.Join(strings.Fields(q), " "))
			}
		}
	}
	clear(p.runs)
	return out
}
