// Package sqlrow decodes rows of the SQL stores (internal/store/sqlite and
// internal/store/postgres) into store types, and encodes times the way both
// store them, so the two cannot drift apart. It also holds the read side
// (Querier, One, All) that the shared SQL of both stores runs on.
//
// Times are TEXT in TimeLayout: a fixed width (always nine fraction digits,
// always "Z"), so stored times sort lexically in time order and parse back
// to the same instant. Only years 0 to 9999 fit it; others are refused.
package sqlrow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// Scanner is a row of database/sql or pgx.
type Scanner interface{ Scan(dest ...any) error }

// Layouts of stored times and UTC days.
const (
	TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"
	DayLayout  = "2006-01-02"
)

// Product decodes a products row, its columns in the order the stores select them.
func Product(s Scanner) (store.Product, error) {
	var p store.Product
	var hw, created string
	if err := s.Scan(&p.Name, &p.Model, &hw, &created); err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(hw), &p.Hardware); err != nil {
		return p, fmt.Errorf("product %s: hardware: %v", p.Name, err)
	}
	var err error
	p.Created, err = DecodeTime(created)
	return p, err
}

// Release decodes a releases row, its columns in the order the stores select them.
func Release(s Scanner) (store.Release, error) {
	var r store.Release
	var sv int64
	var created string
	if err := s.Scan(&r.Product, &r.Version, &sv, &r.Kind, &r.Target, &r.Length, &r.SHA256, &r.Manifest, &created); err != nil {
		return r, err
	}
	r.SecurityVersion = uint64(sv) // CHECK (security_version >= 0)
	var err error
	r.Created, err = DecodeTime(created)
	return r, err
}

// Rollout decodes a rollouts row, its columns in the order the stores select them.
func Rollout(s Scanner) (store.Rollout, error) {
	var r store.Rollout
	var start, updated string
	if err := s.Scan(&r.Product, &r.Version, &r.Percent, &r.Halted, &start, &updated); err != nil {
		return r, err
	}
	var err1, err2 error
	r.Start, err1 = DecodeTime(start)
	r.Updated, err2 = DecodeTime(updated)
	return r, errors.Join(err1, err2)
}

// Metadata decodes a metadata row, its columns in the order the stores select them.
func Metadata(s Scanner) (store.Metadata, error) {
	var m store.Metadata
	var expires string
	if err := s.Scan(&m.Repo, &m.Role, &m.Version, &m.Body, &expires); err != nil {
		return m, err
	}
	var err error
	m.Expires, err = DecodeTime(expires)
	return m, err
}

// ReportCount decodes a report_counts row, its columns in the order the stores select them.
func ReportCount(s Scanner) (store.ReportCount, error) {
	var c store.ReportCount
	var day string
	if err := s.Scan(&day, &c.Product, &c.Version, &c.Outcome, &c.ErrorClass, &c.Count); err != nil {
		return c, err
	}
	var err error
	c.Day, err = DecodeDay(day)
	return c, err
}

// Completion decodes a rollout_completions row, its columns in the order the stores select them.
func Completion(s Scanner) (store.RolloutCompletion, error) {
	var c store.RolloutCompletion
	var reached string
	if err := s.Scan(&c.Product, &c.Version, &reached); err != nil {
		return c, err
	}
	var err error
	c.Reached, err = DecodeTime(reached)
	return c, err
}

// Attestation decodes an attestations row, its columns in the order the stores select them.
func Attestation(s Scanner) (store.Attestation, error) {
	var a store.Attestation
	var at, withdrawn string
	if err := s.Scan(&a.Product, &a.Item, &a.URL, &a.Note, &a.By, &at, &withdrawn); err != nil {
		return a, err
	}
	var err error
	if a.Time, err = DecodeTime(at); err != nil {
		return a, err
	}
	if withdrawn != "" {
		a.Withdrawn, err = DecodeTime(withdrawn)
	}
	return a, err
}

// Market decodes a markets row, its columns in the order the stores select them.
func Market(s Scanner) (store.Market, error) {
	var m store.Market
	var placed, recorded string
	if err := s.Scan(&m.Product, &placed, &m.ExpectedUseMonths, &m.Justification, &recorded); err != nil {
		return m, err
	}
	var err1, err2 error
	m.PlacedOn, err1 = DecodeDay(placed)
	m.Recorded, err2 = DecodeTime(recorded)
	return m, errors.Join(err1, err2)
}

// Setting decodes a settings row: name, value, updated.
func Setting(s Scanner) (store.Setting, error) {
	var st store.Setting
	var updated string
	if err := s.Scan(&st.Name, &st.Value, &updated); err != nil {
		return st, err
	}
	var err error
	st.Updated, err = DecodeTime(updated)
	return st, err
}

// Token decodes a tokens row, its columns in the order the stores select them.
func Token(s Scanner) (store.Token, error) {
	var t store.Token
	var created, expires, revoked, lastUsed string
	if err := s.Scan(&t.ID, &t.Name, &t.Role, &t.SecretHash, &created, &expires, &revoked, &lastUsed); err != nil {
		return t, err
	}
	var err error
	if t.Created, err = DecodeTime(created); err != nil {
		return t, err
	}
	if t.Expires, err = DecodeTime(expires); err != nil {
		return t, err
	}
	if revoked != "" {
		if t.Revoked, err = DecodeTime(revoked); err != nil {
			return t, err
		}
	}
	if lastUsed != "" {
		if t.LastUsed, err = DecodeDay(lastUsed); err != nil {
			return t, err
		}
	}
	return t, nil
}

// Audit decodes an audit row, its columns in the order the stores select them.
func Audit(s Scanner) (store.AuditEntry, error) {
	var e store.AuditEntry
	var at string
	if err := s.Scan(&e.Seq, &at, &e.Actor, &e.Role, &e.Action, &e.Object, &e.Detail, &e.Outcome, &e.RequestID, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	var err error
	e.Time, err = DecodeTime(at)
	return e, err
}

// EncodeTime formats t for storage; a year outside 0 to 9999 is refused.
func EncodeTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("time %v: year outside 0..9999", t)
	}
	return t.Format(TimeLayout), nil
}

// DecodeTime parses a stored time.
func DecodeTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %v", s, err)
	}
	return t, nil
}

// EncodeDay formats the UTC day of t for storage.
func EncodeDay(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("day %v: year outside 0..9999", t)
	}
	return t.Format(DayLayout), nil
}

// DecodeDay parses a stored UTC day.
func DecodeDay(s string) (time.Time, error) {
	t, err := time.Parse(DayLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored day %q: %v", s, err)
	}
	return t, nil
}

// Rows is a result set of database/sql or pgx.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Querier is the read side a store gives the shared SQL
// (internal/store/sqlshared, internal/store/sqldevice): queries written with
// PostgreSQL's $n placeholders, which the SQLite store rewrites to ?n.
type Querier interface {
	// Name prefixes errors, such as "store/sqlite".
	Name() string
	QueryRow(ctx context.Context, query string, args ...any) Scanner
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// NoRows reports a QueryRow that found nothing.
	NoRows(err error) bool
	// Err wraps a database error as the store does (context errors kept).
	Err(ctx context.Context, what string, err error) error
}

// One runs query and decodes its single row with scan; no row is an error
// wrapping store.ErrNotFound.
func One[T any](ctx context.Context, q Querier, what string, scan func(Scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(q.QueryRow(ctx, query, args...))
	if err != nil && q.NoRows(err) {
		return v, fmt.Errorf("%s: %s: %w", q.Name(), what, store.ErrNotFound)
	}
	if err != nil {
		return v, q.Err(ctx, what, err)
	}
	return v, nil
}

// All runs query and decodes every row with scan; no row is an empty result.
func All[T any](ctx context.Context, q Querier, what string, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, q.Err(ctx, what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, q.Err(ctx, what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, q.Err(ctx, what, err)
	}
	return out, nil
}
