package histproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/msimircd/msimircd/store"
)

// openWait bounds the child's store.Open.
const openWait = 30 * time.Second

// Serve is the history writer process: it lowers its own CPU priority to
// idle, reads Params from in, opens the store and appends each batch it
// reads, answering on out, until in ends (then it closes the store and
// returns 0). Errors that end it go to errw, one line each, without the
// parameters; the exit status is then 1. msimircd's main calls it when
// started with Arg.
func Serve(in io.Reader, out io.Writer, errw io.Writer) int {
	// The gateway ends it by closing its stdin, after its last batch: a
	// signal meant for the gateway (Ctrl-C in a terminal, systemd
	// stopping the service's processes) must not end it first.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := idle(); err != nil {
		fmt.Fprintf(errw, "%sruns at normal CPU priority: %v\n", notePrefix, err)
	}
	if err := serve(in, out, errw); err != nil {
		fmt.Fprintf(errw, "history writer: %v\n", err)
		return 1
	}
	return 0
}

func serve(in io.Reader, out, errw io.Writer) error {
	br, bw := bufio.NewReader(in), bufio.NewWriter(out)
	var rbuf, wbuf []byte
	send := func(r *reply) error { return answer(bw, &wbuf, r) }
	rbuf, err := readFrame(br, rbuf)
	if err != nil {
		return fmt.Errorf("reading the store's parameters: %w", err)
	}
	p, err := decodeParams(rbuf)
	clear(rbuf)
	rbuf = kept(rbuf, keptFrame)
	if err != nil {
		if errors.Is(err, errOtherBuild) {
			send(&reply{Err: err.Error()})
		}
		return fmt.Errorf("reading the store's parameters: %w", err)
	}
	st, err := openStore(p)
	clear(p.Key)
	if err != nil {
		send(&reply{Err: err.Error()})
		return err
	}
	defer st.Close()
	if err := send(&reply{}); err != nil {
		return err
	}
	var retries retryReport
	for {
		req, err := readRequest(br, &rbuf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the gateway closed the pipe: done
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		rep := appendBatch(st, &req)
		retries.check(st, errw, time.Now())
		// The gateway raises the child when it waits for the database
		// during a batch (Store.boost: the child holds the write lock);
		// the next batch is back at idle priority. (A raise that ended
		// after this check shows at the next batch's.)
		if !isIdle() {
			idle()
		}
		if err := send(rep); err != nil {
			return err
		}
	}
}

// readRequest reads and decodes a request, reading its frame into *rbuf,
// which keeps at most keptFrame after it (the request holds none of it).
func readRequest(br *bufio.Reader, rbuf *[]byte) (request, error) {
	b, err := readFrame(br, *rbuf)
	*rbuf = kept(b, keptFrame)
	if err != nil {
		return request{}, err
	}
	return decodeRequest(b)
}

// answer sends r, encoded in *wbuf, which keeps at most keptFrame after
// it.
func answer(bw *bufio.Writer, wbuf *[]byte, r *reply) error {
	b := appendReply((*wbuf)[:0], r)
	err := writeFrame(bw, b)
	*wbuf = kept(b, keptFrame)
	if err != nil {
		return fmt.Errorf("answering: %w", err)
	}
	return nil
}

func openStore(p Params) (store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), openWait)
	defer cancel()
	opts := []store.Option{store.WithSQLiteCache(childCacheKiB)}
	if p.MaxHistory > 0 {
		opts = append(opts, store.WithMaxHistoryPerUser(p.MaxHistory))
	}
	return store.Open(ctx, p.Driver, p.DSN, p.Key, opts...)
}

// notePrefix starts the child's lines on stderr that are news, not the
// reason it ends: the gateway logs them, but does not give them as the
// cause when the child has failed.
const notePrefix = "history writer: note: "

// retryReport tells the gateway (a line on stderr, which it logs) of the
// batches the store appended again one entry at a time after their
// transaction failed: nothing is lost by that, but the cause wants
// looking at. At most one line per retryReportEvery, with the number
// since the last.
type retryReport struct {
	told int64     // batches reported so far
	at   time.Time // when last reported
}

const retryReportEvery = 10 * time.Second

// batchRetrier is what the SQL store tells of its retried batches.
type batchRetrier interface {
	HistoryBatchRetries() (int64, error)
}

func (r *retryReport) check(st any, w io.Writer, now time.Time) {
	br, ok := st.(batchRetrier)
	if !ok {
		return
	}
	n, err := br.HistoryBatchRetries()
	if n <= r.told || now.Sub(r.at) < retryReportEvery {
		return
	}
	fmt.Fprintf(w, "%s%d batches appended again one entry at a time, their transaction having failed (the last time: %s)\n", notePrefix, n-r.told, noteErr(err))
	r.told, r.at = n, now
}

// maxNoteErr bounds what a note tells of an error.
const maxNoteErr = 300

// noteErr is err as a note tells it: without what it quotes ("...",
// '...' or `...`, each left as "…"), for a driver's error may quote the
// value it could not take, an entry's text, which the child never writes
// on stderr; and cut to maxNoteErr bytes.
func noteErr(err error) string {
	if err == nil {
		return "none"
	}
	s := err.Error()
	var b strings.Builder
	for len(s) > 0 && b.Len() < maxNoteErr {
		i := strings.IndexAny(s, "\"'`")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		q := s[i]
		s = s[i+1:]
		end := len(s) // unterminated: the rest is the value
		for j := 0; j < len(s); j++ {
			if s[j] == '\\' {
				j++
				continue
			}
			if s[j] == q {
				end = j
				break
			}
		}
		b.WriteString(string(q) + "…")
		if end < len(s) {
			b.WriteByte(q)
			s = s[end+1:]
		} else {
			s = ""
		}
	}
	out := b.String()
	if len(out) > maxNoteErr {
		i := maxNoteErr
		for i > 0 && !utf8.RuneStart(out[i]) {
			i--
		}
		out = out[:i] + "…"
	}
	return out
}

// childCacheKiB is the child's SQLite page cache: room for the last pages
// of many users' and conversations' indexes, where appends go. The
// default (2,000 KiB) had it read about one page in ten from the file again.
const childCacheKiB = 32 * 1024

// txEntries bounds the entries appended in one transaction (the bridge's
// batches are no longer). The child holds the database's write lock for
// the whole of one, and the gateway's own writes (an IM held for a user
// away) wait for it: on a machine whose cores are all busy, the idle
// child may take seconds over one. Smaller transactions would cost more
// CPU per entry (store's BenchmarkAppendHistoryBatch: most of what a
// transaction writes are the index pages of its users, however few
// entries each has in it).
const txEntries = 4096

func appendBatch(st store.HistoryStore, req *request) *reply {
	ctx := context.Background() // the gateway kills the child rather than wait longer
	res := make([]store.HistoryResult, 0, len(req.Batch))
	for b := range slices.Chunk(req.Batch, txEntries) {
		res = append(res, st.AppendHistoryBatch(ctx, b, nil)...)
	}
	rep := &reply{Seq: req.Seq, Results: make([]result, len(res))}
	for i, r := range res {
		rr := &rep.Results[i]
		if r.Err != nil {
			rr.Err, rr.Is = r.Err.Error(), kindOf(r.Err)
			continue
		}
		rr.ID, rr.Time = r.Entry.ID, r.Entry.Time
	}
	return rep
}
