package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

func testPurgeReportCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	day1 := time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)
	day2, day3 := day1.AddDate(0, 0, 1), day1.AddDate(0, 0, 2)
	for i, d := range []time.Time{day1, day1, day2, day3} {
		c := store.ReportCount{Product: "p", Version: "1.0", Outcome: "installed", Count: int64(i + 1), Day: d.Add(time.Hour)}
		if i == 1 {
			c.Outcome, c.ErrorClass = "failed", "hash"
		}
		if err := s.AddReport(ctx, c); err != nil {
			t.Fatalf("AddReport: %v", err)
		}
	}
	gen := generation(t, s)
	days := func() []time.Time {
		t.Helper()
		cs, err := s.ReportCounts(ctx)
		if err != nil {
			t.Fatalf("ReportCounts: %v", err)
		}
		var out []time.Time
		for _, c := range cs {
			out = append(out, c.Day)
		}
		return out
	}
	steps := []struct {
		before time.Time
		n      int64
		left   []time.Time
	}{
		// Nothing began before day 1.
		{day1, 0, []time.Time{day1, day1, day2, day3}},
		// Both counters of day 1, not day 2, which begins at the bound.
		{day2, 2, []time.Time{day2, day3}},
		// A bound within day 3 removes day 3's counter too: it may hold
		// reports from before the bound. The bound's zone does not matter.
		{day2.Add(time.Nanosecond), 1, []time.Time{day3}},
		{day3.Add(12 * time.Hour).In(zone), 1, nil},
		{day3.AddDate(1, 0, 0), 0, nil},
	}
	for _, st := range steps {
		n, err := s.Purge(ctx, store.TableReportCounts, st.before)
		if err != nil || n != st.n {
			t.Fatalf("Purge(report_counts, %v) = %d, %v; want %d", st.before, n, err, st.n)
		}
		if got := days(); !slices.EqualFunc(got, st.left, time.Time.Equal) {
			t.Fatalf("after Purge(report_counts, %v): days %v, want %v", st.before, got, st.left)
		}
	}
	if g := generation(t, s); g != gen {
		t.Errorf("generation after Purge = %d, want %d (purging serves nothing new)", g, gen)
	}
	// Far in the past is not an error, only nothing to do.
	if n, err := s.Purge(ctx, store.TableReportCounts, time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 0 {
		t.Errorf("Purge before year 0 = %d, %v; want 0, nil", n, err)
	}
}

func testPurgeOtherTables(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p", "1.0")
	update(t, s, func(tx store.Tx) error { return tx.PutMetadata(ctx, metadata("release", "root", 1)) })
	far := at(24 * 365 * 100 * time.Hour)
	for _, table := range []string{"products", "releases", "rollouts", "metadata", "no_such_table", ""} {
		n, err := s.Purge(ctx, table, far)
		if !errors.Is(err, store.ErrNotPurgeable) || n != 0 {
			t.Errorf("Purge(%q) = %d, %v; want 0, store.ErrNotPurgeable", table, n, err)
		}
	}
	if _, err := s.Release(ctx, "p", "1.0"); err != nil {
		t.Errorf("Release after refused purges: %v", err)
	}
	if ms, err := s.AllMetadata(ctx, "release"); err != nil || len(ms) != 1 {
		t.Errorf("metadata after refused purges: %d, %v; want 1", len(ms), err)
	}
}

func testDescribe(t *testing.T, s store.Store) {
	ctx := context.Background()
	tables, err := s.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	names := make([]string, len(tables))
	for i, tb := range tables {
		names[i] = tb.Name
		if tb.Purpose == "" {
			t.Errorf("table %s has no purpose", tb.Name)
		}
		if len(tb.Columns) == 0 {
			t.Errorf("table %s has no columns", tb.Name)
		}
		for _, c := range tb.Columns {
			if c.Name == "" || c.Type == "" || c.Purpose == "" {
				t.Errorf("table %s: column %+v lacks a name, type or purpose", tb.Name, c)
			}
		}
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("Describe tables %v: want sorted by name, each once", names)
	}
	// The tables the other methods read and write must be among them.
	want := map[string][]string{
		"products":       {"name", "model", "hardware", "created"},
		"releases":       {"product", "version", "security_version", "kind", "target", "length", "sha256", "manifest", "created"},
		"rollouts":       {"product", "version", "percent", "halted", "start", "updated"},
		"metadata":       {"repo", "role", "version", "body", "expires"},
		"report_counts":  {"day", "product", "version", "outcome", "error_class", "count"},
		store.TableAudit: {"seq", "time", "actor", "role", "action", "object", "detail", "outcome", "request_id", "prev_hash", "hash"},
		"audit_chain":    {"id", "anchor_seq", "anchor_hash", "head_seq", "head_hash", "legacy_seq"},
		"tokens":         {"id", "name", "role", "secret_hash", "created", "expires", "revoked", "last_used"},
		"settings":       {"name", "value", "updated"},
	}
	for _, tb := range tables {
		cols, ok := want[tb.Name]
		if !ok {
			continue
		}
		delete(want, tb.Name)
		var got []string
		for _, c := range tb.Columns {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, cols) {
			t.Errorf("table %s columns %v, want %v", tb.Name, got, cols)
		}
	}
	for name := range want {
		t.Errorf("Describe does not list table %s (have %v)", name, names)
	}
}
