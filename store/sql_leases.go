package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/msimircd/msimircd/internal/sqldb"
)

// leaseChannel is the PostgreSQL notification channel of the lease notes.
// Notes are database-wide, so each carries the schema of the store that
// sent it, and a listener ignores those of other schemas.
const leaseChannel = "msimircd_leases"

// renewChunk bounds the leases renewed by one statement (two parameters
// each).
const renewChunk = 200

// noteScope is the schema the store's notes are for, read once.
type noteScope struct {
	once   sync.Once
	schema string
	err    error
}

func (s *sqlStore) scope(ctx context.Context) (string, error) {
	s.notes.once.Do(func() {
		s.notes.err = s.db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&s.notes.schema)
	})
	return s.notes.schema, s.notes.err
}

// leaseNow is the time by the leases' clock: the database's for
// PostgreSQL (shared by every instance), the process's for SQLite (one
// instance per database).
func (s *sqlStore) leaseNow(ctx context.Context) (time.Time, error) {
	if s.now != nil {
		return s.now(), nil
	}
	if s.d != sqldb.Postgres {
		return time.Now(), nil
	}
	var us int64
	err := s.db.QueryRowContext(ctx, `SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)`).Scan(&us)
	return fromMicros(us), err
}

func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("lease TTL %s: want 1ms or more", ttl)
	}
	return nil
}

func (s *sqlStore) AcquireLease(ctx context.Context, user, instance string, ttl time.Duration) (Lease, error) {
	if err := checkTTL(ttl); err != nil {
		return Lease{}, wrap("acquire lease", err)
	}
	if instance == "" {
		return Lease{}, wrap("acquire lease", errors.New("no instance named"))
	}
	for range 3 { // a release between the two statements: try again
		now, err := s.leaseNow(ctx)
		if err != nil {
			return Lease{}, wrap("acquire lease", err)
		}
		l := Lease{User: user, Instance: instance, Expires: fromMicros(micros(now.Add(ttl)))}
		err = s.queryRow(ctx, s.db, `INSERT INTO leases (name, instance, epoch, expires) VALUES (?, ?, 1, ?)
			ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, epoch = leases.epoch + 1, expires = excluded.expires
			WHERE leases.instance = '' OR leases.instance = excluded.instance OR leases.expires <= ?
			RETURNING epoch`, user, instance, micros(l.Expires), micros(now)).Scan(&l.Epoch)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Lease{}, wrap("acquire lease", err)
		}
		var holder string
		var expires int64
		err = s.queryRow(ctx, s.db, `SELECT instance, expires FROM leases WHERE name = ?`, user).Scan(&holder, &expires)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Lease{}, wrap("acquire lease", err)
		}
		if err == nil && holder != "" && expires > micros(now) {
			return Lease{}, &LeaseHeldError{User: user, Holder: holder, Left: fromMicros(expires).Sub(now)}
		}
	}
	return Lease{}, wrap("acquire lease", fmt.Errorf("the lease of %q changed hands during every try", user))
}

func (s *sqlStore) RenewLeases(ctx context.Context, instance string, ttl time.Duration, held []Lease) ([]Lease, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, wrap("renew leases", err)
	}
	if len(held) == 0 {
		return nil, nil
	}
	now, err := s.leaseNow(ctx)
	if err != nil {
		return nil, wrap("renew leases", err)
	}
	expires := fromMicros(micros(now.Add(ttl)))
	var out []Lease
	for chunk := range slices.Chunk(held, renewChunk) {
		args := []any{micros(expires), instance}
		conds := make([]string, len(chunk))
		for i, l := range chunk {
			conds[i] = "(name = ? AND epoch = ?)"
			args = append(args, l.User, l.Epoch)
		}
		// Not prepared: the list's length varies. An epoch that matches
		// proves nobody took the lease since, expired or not.
		err := s.eachRow(ctx, s.db, `UPDATE leases SET expires = ? WHERE instance = ? AND (`+strings.Join(conds, " OR ")+`) RETURNING name, epoch`, args, func(rows *sql.Rows) error {
			l := Lease{Instance: instance, Expires: expires}
			err := rows.Scan(&l.User, &l.Epoch)
			out = append(out, l)
			return err
		})
		if err != nil {
			return nil, wrap("renew leases", err)
		}
	}
	return out, nil
}

func (s *sqlStore) ReleaseLease(ctx context.Context, l Lease) (bool, error) {
	var released bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.Rebind(`UPDATE leases SET instance = '', expires = 0 WHERE name = ? AND instance = ? AND epoch = ?`), l.User, l.Instance, l.Epoch)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		released = true
		if s.d != sqldb.Postgres {
			return nil
		}
		return s.notify(ctx, tx, LeaseNote{Kind: LeaseReleased, User: l.User, From: l.Instance}, "")
	})
	if err != nil {
		return false, wrap("release lease", err)
	}
	return released, nil
}

func (s *sqlStore) Lease(ctx context.Context, user string) (Lease, error) {
	now, err := s.leaseNow(ctx)
	if err != nil {
		return Lease{}, wrap("lease", err)
	}
	l := Lease{User: user}
	var expires int64
	err = s.queryRow(ctx, s.db, `SELECT instance, epoch, expires FROM leases WHERE name = ?`, user).Scan(&l.Instance, &l.Epoch, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, wrap("lease", fmt.Errorf("lease of %q: %w", user, ErrNotFound))
	}
	if err != nil {
		return Lease{}, wrap("lease", err)
	}
	if expires <= micros(now) {
		l.Instance = ""
	} else {
		l.Expires = fromMicros(expires)
	}
	return l, nil
}

// notePayload is a LeaseNote on the wire.
type notePayload struct {
	Schema string        `json:"s"`
	Kind   LeaseNoteKind `json:"k"`
	User   string        `json:"u"`
	To     string        `json:"to,omitempty"`
	From   string        `json:"from"`
}

// notify sends a note (to: the instance it is for; "" for all) on q, a
// transaction's notes going out when it commits.
func (s *sqlStore) notify(ctx context.Context, q querier, n LeaseNote, to string) error {
	schema, err := s.scope(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(notePayload{Schema: schema, Kind: n.Kind, User: n.User, To: to, From: n.From})
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, s.d.Rebind(`SELECT pg_notify('`+leaseChannel+`', ?)`), string(b))
	return err
}

func (s *sqlStore) AskLease(ctx context.Context, user, holder, from string) error {
	if s.d != sqldb.Postgres {
		return wrap("ask lease", ErrNoNotify)
	}
	return wrap("ask lease", s.notify(ctx, s.db, LeaseNote{Kind: LeaseAsked, User: user, From: from}, holder))
}

func (s *sqlStore) ListenLeases(ctx context.Context, instance string, f func(LeaseNote)) error {
	if s.d != sqldb.Postgres {
		return wrap("listen leases", ErrNoNotify)
	}
	schema, err := s.scope(ctx)
	if err != nil {
		return wrap("listen leases", err)
	}
	conn, err := s.db.Conn(ctx) // the pool's, held while listening
	if err != nil {
		return wrap("listen leases", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("driver connection %T is not pgx's", dc)
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, `LISTEN `+leaseChannel); err != nil {
			return err
		}
		defer func() {
			if pc.IsClosed() {
				return
			}
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = pc.Exec(uctx, `UNLISTEN `+leaseChannel) // the connection goes back to the pool
		}()
		f(LeaseNote{Kind: LeaseListening})
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				if pc.IsClosed() {
					return errors.Join(err, driver.ErrBadConn) // not given back to the pool
				}
				return err
			}
			var p notePayload
			if json.Unmarshal([]byte(n.Payload), &p) != nil || p.Schema != schema {
				continue // not ours
			}
			switch {
			case p.Kind == LeaseAsked && p.To == instance, p.Kind == LeaseReleased:
				f(LeaseNote{Kind: p.Kind, User: p.User, From: p.From})
			}
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return wrap("listen leases", err)
}
