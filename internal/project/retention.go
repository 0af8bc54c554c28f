package project

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/devnonce"
	"github.com/uptrust/uptrust/internal/store"
)

// Period is a retention period. In JSON it is a string: a whole number of
// days such as "400d", or a Go duration such as "36h"; it must be positive
// there. The zero Period means "not set".
type Period time.Duration

const day = 24 * time.Hour

// ParsePeriod reads "400d" or a Go duration string.
func ParsePeriod(s string) (Period, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days < 0 || n == "" || n[0] == '+' {
			return 0, fmt.Errorf("period %q: want a whole number of days such as \"400d\"", s)
		}
		if days > int64(1<<63-1)/int64(day) {
			return 0, fmt.Errorf("period %q: too long", s)
		}
		return Period(time.Duration(days) * day), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("period %q: want days such as \"400d\" or a duration such as \"36h\"", s)
	}
	return Period(d), nil
}

// String writes whole days as "400d" and anything else as a Go duration.
func (p Period) String() string {
	d := time.Duration(p)
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// MarshalJSON writes the period as String does.
func (p Period) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads a period written as ParsePeriod accepts.
func (p *Period) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("period: %w", err)
	}
	v, err := ParsePeriod(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		// In memory zero means "not set, use the default"; a file that
		// says zero means something else, so refuse it.
		return fmt.Errorf("period %q: must be positive", s)
	}
	*p = v
	return nil
}

// Default retention periods and the shortest accepted.
const (
	DefaultReportCountsRetention = Period(400 * day)
	DefaultAuditRetention        = Period(730 * day)
	DefaultTokensRetention       = Period(730 * day)
	DefaultDeviceEventsRetention = Period(180 * day)
	MinRetention                 = Period(day)
)

// Retention is the "retention" object of uptrust.json: how long the rows of
// each table that grows with use are kept. Each field names the table it
// bounds; tables not listed here (products, releases, metadata...) are the
// project itself and are kept until the operator deletes them.
//
// Unknown keys are refused rather than ignored, so a retention the operator
// asked for cannot silently not apply.
type Retention struct {
	// ReportCounts bounds the daily report counters (default 400 days): a
	// counter goes once its day began longer ago than this.
	ReportCounts Period `json:"report_counts"`
	// Audit bounds the audit log of operator actions (default 730 days).
	Audit Period `json:"audit"`
	// Tokens bounds how long a revoked or expired API token stays on
	// record (default 730 days, the audit log's default, so the tokens
	// audit entries name can be looked up as long as the entries exist).
	Tokens Period `json:"tokens"`
	// DeviceEvents bounds the per-device update history of managed
	// devices (default 180 days: long enough to follow a rollout and
	// investigate a failure, short enough not to become a record of each
	// device's life).
	DeviceEvents Period `json:"device_events"`
}

// UnmarshalJSON reads the object and refuses unknown keys.
func (r *Retention) UnmarshalJSON(b []byte) error {
	type plain Retention
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v plain
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("retention: %w (known tables: %s, %s, %s, %s)", err, store.TableReportCounts, store.TableAudit, store.TableTokens, store.TableDeviceEvents)
	}
	*r = Retention(v)
	return nil
}

func (r *Retention) setDefaults() {
	if r.ReportCounts == 0 {
		r.ReportCounts = DefaultReportCountsRetention
	}
	if r.Audit == 0 {
		r.Audit = DefaultAuditRetention
	}
	if r.Tokens == 0 {
		r.Tokens = DefaultTokensRetention
	}
	if r.DeviceEvents == 0 {
		r.DeviceEvents = DefaultDeviceEventsRetention
	}
}

// Validate refuses periods shorter than MinRetention: daily counters cannot
// honour less than a day.
func (r Retention) Validate() error {
	for _, t := range r.Tables() {
		if t.Period < MinRetention {
			return fmt.Errorf("project: retention of %s is %s, want at least %s", t.Table, t.Period, MinRetention)
		}
	}
	return nil
}

// TableRetention is the retention period of one table.
type TableRetention struct {
	Table  string
	Period Period
}

// Tables lists the retention period of every table that has one.
func (r Retention) Tables() []TableRetention {
	return []TableRetention{
		{store.TableReportCounts, r.ReportCounts},
		{store.TableAudit, r.Audit},
		{store.TableTokens, r.Tokens},
		{store.TableDeviceEvents, r.DeviceEvents},
	}
}

// Period returns the retention period of table, or false when its rows are
// kept until the operator deletes them.
func (r Retention) Period(table string) (Period, bool) {
	for _, t := range r.Tables() {
		if t.Table == table {
			return t.Period, true
		}
	}
	return 0, false
}

// Purged says what one Purge removed.
type Purged struct {
	// At is the time the retention periods were measured from.
	At     time.Time
	Tables []PurgedTable
	// Uploads is how many unfinished payload uploads older than
	// UnfinishedUploadAge were discarded.
	Uploads int
	// Nonces is the number of device nonces removed (store.TableDeviceNonces):
	// those whose signature window closed more than devnonce.Margin ago.
	Nonces int64
}

// UnfinishedUploadAge is how long an unfinished payload upload (uptrust
// push, interrupted and never resumed) is kept for a resume.
const UnfinishedUploadAge = 7 * 24 * time.Hour

// PurgedTable is what Purge removed from one table.
type PurgedTable struct {
	Table  string
	Period Period
	// Before is At minus Period: rows older than this were removed.
	Before time.Time
	Rows   int64
}

// Rows is the number of rows removed from all tables.
func (p Purged) Rows() int64 {
	var n int64
	for _, t := range p.Tables {
		n += t.Rows
	}
	return n
}

// Purge applies the configured retention: it deletes, in every table with
// a retention period, the rows older than the project clock's now minus
// that period (see store.Store.Purge for what older means per table), and
// records each table it removed rows from in the audit log. It is safe to
// run at any time and as often as wanted; a second run at the same time
// removes nothing. On error the result says what was removed before it.
func (p *Project) Purge(ctx context.Context) (Purged, error) {
	now := p.Clock.Now().UTC()
	res := Purged{At: now}
	rs, err := p.Runtime(ctx)
	if err != nil {
		return res, fmt.Errorf("project: purge: %w", err)
	}
	if err := rs.Retention.Validate(); err != nil {
		// A zero period (a Retention built without defaults) would
		// delete every row of its table.
		return res, fmt.Errorf("project: purge: %w", err)
	}
	for _, t := range rs.Retention.Tables() {
		before := now.Add(-time.Duration(t.Period))
		n, err := p.Store.Purge(ctx, t.Table, before)
		if err != nil {
			return res, fmt.Errorf("project: purge %s: %w", t.Table, err)
		}
		if t.Table == store.TableDeviceEvents && n > 0 {
			p.counts.invalidate() // the rollouts' counts are read again in full
		}
		res.Tables = append(res.Tables, PurgedTable{Table: t.Table, Period: t.Period, Before: before, Rows: n})
	}
	// Device nonces have no retention setting: a row is useless once its
	// signature window closed (package devnonce; not audited, like
	// unfinished uploads: they record no one's action).
	nonces, err := p.Store.Purge(ctx, store.TableDeviceNonces, now.Add(-devnonce.Margin))
	if err != nil {
		return res, fmt.Errorf("project: purge %s: %w", store.TableDeviceNonces, err)
	}
	res.Nonces = nonces
	if u, ok := p.Blobs.(blob.Uploader); ok {
		// Unfinished uploads (a push that never resumed) hold no device
		// data, only bytes nobody references; a week is far past any
		// push that will still continue.
		n, err := u.RemoveUploads(ctx, now.Add(-UnfinishedUploadAge))
		if err != nil {
			return res, fmt.Errorf("project: purge unfinished uploads: %w", err)
		}
		res.Uploads = n
	}
	if res.Rows() == 0 {
		return res, nil
	}
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		var errs []error
		for _, t := range res.Tables {
			if t.Rows > 0 {
				errs = append(errs, audit(ctx, tx, now, ActionPurge, t.Table,
					fmt.Sprintf("removed %d rows older than %s (retention %s)", t.Rows, t.Before.Format(time.RFC3339), t.Period)))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return res, fmt.Errorf("project: purge: rows were removed but recording it in the audit log failed: %w", err)
	}
	return res, nil
}
