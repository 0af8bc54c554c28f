package project_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/store"
)

const day = 24 * time.Hour

func TestParsePeriod(t *testing.T) {
	good := map[string]time.Duration{
		"400d": 400 * day,
		"1d":   day,
		"0d":   0,
		"36h":  36 * time.Hour,
		"90m":  90 * time.Minute,
	}
	for in, want := range good {
		got, err := project.ParsePeriod(in)
		if err != nil || time.Duration(got) != want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v", in, time.Duration(got), err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "+1d", "1.5d", "400 d", "400days", "abc", "1y", "999999999999d"} {
		if got, err := project.ParsePeriod(in); err == nil {
			t.Errorf("ParsePeriod(%q) = %v, want an error", in, time.Duration(got))
		}
	}
	for p, want := range map[project.Period]string{
		project.Period(400 * day):      "400d",
		project.Period(36 * time.Hour): "36h0m0s",
		0:                              "0s",
	} {
		if got := p.String(); got != want {
			t.Errorf("Period(%v).String() = %q, want %q", time.Duration(p), got, want)
		}
	}
}

// editConfig rewrites the project's uptrust.json through edit.
func editConfig(t *testing.T, dir string, edit func(cfg map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "uptrust.json")
	var cfg map[string]any
	if err := json.Unmarshal(readFile(t, path), &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRetentionConfig(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	dir := p.Dir
	if r := p.Config.Retention; r.ReportCounts != project.DefaultReportCountsRetention || r.Audit != project.DefaultAuditRetention || p.Config.ReportK != project.DefaultReportK {
		t.Errorf("new project: retention %+v, report_k %d; want the defaults", r, p.Config.ReportK)
	}
	// Init writes the defaults out, so operators see them.
	var written map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "uptrust.json")), &written); err != nil {
		t.Fatal(err)
	}
	if r, _ := written["retention"].(map[string]any); r["report_counts"] != "400d" || r["audit"] != "730d" || written["report_k"] != 5.0 {
		t.Errorf("uptrust.json retention %v, report_k %v; want 400d, 730d, 5", written["retention"], written["report_k"])
	}
	p.Close()

	open := func() (*project.Project, error) {
		q, err := project.Open(t.Context(), dir, project.Options{})
		if err == nil {
			t.Cleanup(func() { q.Close() })
		}
		return q, err
	}
	// A file from before retention existed takes the defaults.
	editConfig(t, dir, func(cfg map[string]any) { delete(cfg, "retention"); delete(cfg, "report_k") })
	q, err := open()
	if err != nil {
		t.Fatalf("Open without retention: %v", err)
	}
	if q.Config.Retention.ReportCounts != project.DefaultReportCountsRetention || q.Config.ReportK != project.DefaultReportK {
		t.Errorf("old uptrust.json: %+v, report_k %d; want defaults", q.Config.Retention, q.Config.ReportK)
	}

	editConfig(t, dir, func(cfg map[string]any) {
		cfg["retention"] = map[string]any{"report_counts": "30d", "audit": "36h"}
		cfg["report_k"] = 10
	})
	q, err = open()
	if err != nil {
		t.Fatalf("Open with retention: %v", err)
	}
	if r := q.Config.Retention; time.Duration(r.ReportCounts) != 30*day || time.Duration(r.Audit) != 36*time.Hour || q.Config.ReportK != 10 {
		t.Errorf("retention %+v, report_k %d; want 30d, 36h, 10", r, q.Config.ReportK)
	}

	for _, tc := range []struct {
		retention any
		k         any
		want      string // in the error
	}{
		{map[string]any{"report_counts": "0d"}, 5, "positive"},
		{map[string]any{"report_counts": "-3d"}, 5, "-3d"},
		{map[string]any{"audit": "12h"}, 5, "at least 1d"},
		{map[string]any{"audit": "soon"}, 5, "soon"},
		{map[string]any{"audit": 30}, 5, "period"},
		// A retention that would not apply must not be accepted quietly.
		{map[string]any{"releases": "30d"}, 5, "releases"},
		{map[string]any{}, -1, "report_k"},
	} {
		editConfig(t, dir, func(cfg map[string]any) { cfg["retention"] = tc.retention; cfg["report_k"] = tc.k })
		if _, err := open(); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "project: ") {
			t.Errorf("retention %v, report_k %v: Open error %v; want a project error mentioning %q", tc.retention, tc.k, err, tc.want)
		}
	}
}

func newReport(outcome report.Outcome, class report.Class) report.Report {
	return report.Report{Product: "thermostat", Version: "1.1.0", Outcome: outcome, ErrorClass: class}
}

func addReports(t *testing.T, p *project.Project, r report.Report, n int, at time.Time) {
	t.Helper()
	for range n {
		if err := p.AddReport(t.Context(), r, at); err != nil {
			t.Fatalf("AddReport: %v", err)
		}
	}
}

func counterDays(t *testing.T, p *project.Project) []string {
	t.Helper()
	cs, err := p.Store.ReportCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var days []string
	for _, c := range cs {
		days = append(days, c.Day.Format(time.DateOnly)+" "+c.Outcome)
	}
	return days
}

func auditActions(t *testing.T, p *project.Project) []string {
	t.Helper()
	es, err := p.Audit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Object)
	}
	return out
}

// TestPurge moves a fake clock past the retention periods and checks that
// Purge removes exactly the counters and audit entries that passed them.
func TestPurge(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	p := initDev(t, clk) // audit: two project.init entries and the admin token.create at start
	p.Config.Retention = project.Retention{ReportCounts: project.Period(10 * day), Audit: project.Period(30 * day), Tokens: project.Period(30 * day),
		DeviceEvents: project.Period(30 * day)}
	addProduct(t, p, thermostat()) // audit at start
	clk.Advance(20 * day)
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 1, "image")) // audit at start+20d

	now := start.Add(31 * day) // 2026-02-01 12:00
	clk.Set(now)
	// The counter retention bound is 2026-01-22 12:00.
	ok, failed := newReport(report.OutcomeInstalled, ""), newReport(report.OutcomeFailed, "hash")
	addReports(t, p, ok, 2, time.Date(2026, 1, 20, 9, 0, 0, 0, time.UTC))
	addReports(t, p, failed, 1, time.Date(2026, 1, 22, 6, 0, 0, 0, time.UTC))
	// Younger than the bound, but in a counter whose day began before it:
	// removed with it, since a counter cannot tell its reports apart.
	addReports(t, p, failed, 1, time.Date(2026, 1, 22, 18, 0, 0, 0, time.UTC))
	addReports(t, p, ok, 3, time.Date(2026, 1, 23, 0, 0, 0, 0, time.UTC))
	addReports(t, p, ok, 1, now)

	res, err := p.Purge(t.Context())
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	want := []project.PurgedTable{
		{Table: store.TableReportCounts, Period: project.Period(10 * day), Before: now.Add(-10 * day), Rows: 2},
		{Table: store.TableAudit, Period: project.Period(30 * day), Before: now.Add(-30 * day), Rows: 4},
		// The admin token made by init is neither revoked nor expired.
		{Table: store.TableTokens, Period: project.Period(30 * day), Before: now.Add(-30 * day), Rows: 0},
		{Table: store.TableDeviceEvents, Period: project.Period(30 * day), Before: now.Add(-30 * day), Rows: 0},
	}
	if !res.At.Equal(now) || !slices.Equal(res.Tables, want) || res.Rows() != 6 {
		t.Errorf("Purge = %+v\nwant at %v: %+v", res, now, want)
	}
	if got, want := counterDays(t, p), []string{"2026-01-23 installed", "2026-02-01 installed"}; !slices.Equal(got, want) {
		t.Errorf("counters after Purge: %v, want %v", got, want)
	}
	wantAudit := []string{"release.add thermostat/1.1.0", "retention.purge report_counts", "retention.purge audit"}
	if got := auditActions(t, p); !slices.Equal(got, wantAudit) {
		t.Errorf("audit after Purge: %v, want %v", got, wantAudit)
	}
	// Purging deletes no part of the project itself.
	if _, err := p.Store.Release(t.Context(), "thermostat", "1.1.0"); err != nil {
		t.Errorf("release after Purge: %v", err)
	}

	// Again at the same time: nothing more, and nothing more in the log.
	res, err = p.Purge(t.Context())
	if err != nil || res.Rows() != 0 {
		t.Errorf("second Purge = %+v, %v; want nothing removed", res, err)
	}
	if got := auditActions(t, p); !slices.Equal(got, wantAudit) {
		t.Errorf("audit after an empty Purge: %v, want %v", got, wantAudit)
	}

	// One day on, the counter of 2026-01-23 has passed retention too.
	clk.Advance(day)
	res, err = p.Purge(t.Context())
	if err != nil || res.Tables[0].Rows != 1 || res.Tables[1].Rows != 0 {
		t.Errorf("Purge a day later = %+v, %v; want one counter", res, err)
	}
	if got, want := counterDays(t, p), []string{"2026-02-01 installed"}; !slices.Equal(got, want) {
		t.Errorf("counters a day later: %v, want %v", got, want)
	}
}

// TestAuditRecordsOperations runs every audited operation and checks the
// log: one entry per committed change, none for a refused one, and no
// personal data (the security contact) or free text (release notes).
func TestAuditRecordsOperations(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	spec := thermostat()
	spec.Contact = "alice.private@example.com"
	addProduct(t, p, spec)
	clk.Advance(time.Minute)
	if _, err := p.ExtendSupport(ctx, "thermostat", "2032-06-30"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetPolicy(ctx, "thermostat", release.Policy{AutoInstall: []release.Kind{release.KindSecurity}, MaxPostponeDays: 7}); err != nil {
		t.Fatal(err)
	}
	rs := releaseSpec("thermostat", "1.1.0", 2, "image")
	rs.Notes = "secret release notes"
	addRelease(t, p, rs)
	if _, err := p.StartRollout(ctx, "thermostat", "1.1.0", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Percent = 50 }); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Halted = true }); err != nil {
		t.Fatal(err)
	}
	if err := p.RotateRootKey(ctx, deviceapi.RepoFleet, 1); err != nil {
		t.Fatal(err)
	}
	// Refused changes leave no entry.
	if _, err := p.ExtendSupport(ctx, "thermostat", "2030-01-01"); err == nil {
		t.Fatal("shortening support succeeded")
	}
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Percent = 101 }); err == nil {
		t.Fatal("rollout at 101% succeeded")
	}
	if _, err := p.AddRelease(ctx, releaseSpec("thermostat", "1.1.0", 2, "again")); err == nil {
		t.Fatal("duplicate release succeeded")
	}

	es, err := p.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ action, object, detail string }
	want := []entry{
		{project.ActionInit, "release", "root threshold 1 of 1"},
		{project.ActionInit, "fleet", "development project"},
		{project.ActionTokenCreate, "admin", "bootstrap admin token, written to admin-token: role admin"},
		{project.ActionProductAdd, "thermostat", "support until 2031-12-31"},
		{project.ActionSupportExtend, "thermostat", "support until 2032-06-30 (was 2031-12-31)"},
		{project.ActionPolicy, "thermostat", "auto-install security; owners may postpone up to 7 days"},
		{project.ActionReleaseAdd, "thermostat/1.1.0", "security version 2"},
		{project.ActionRolloutStart, "thermostat/1.1.0", "percent 10"},
		{project.ActionRolloutChange, "thermostat/1.1.0", "percent 10 -> 50"},
		{project.ActionRolloutChange, "thermostat/1.1.0", "halted"},
		{project.ActionRootRotate, "fleet", "root key 1 replaced"},
	}
	if len(es) != len(want) {
		t.Fatalf("audit has %d entries, want %d:\n%+v", len(es), len(want), es)
	}
	for i, w := range want {
		e := es[i]
		if e.Action != w.action || e.Object != w.object || !strings.Contains(e.Detail, w.detail) {
			t.Errorf("audit[%d] = %s %s %q; want %s %s containing %q", i, e.Action, e.Object, e.Detail, w.action, w.object, w.detail)
		}
		if i < 4 && !e.Time.Equal(t0) || i >= 4 && !e.Time.Equal(t0.Add(time.Minute)) {
			t.Errorf("audit[%d] at %v: want the project clock's time", i, e.Time)
		}
		for _, private := range []string{"alice", "secret"} {
			if strings.Contains(e.Detail, private) || strings.Contains(e.Object, private) {
				t.Errorf("audit[%d] holds %q: %+v", i, private, e)
			}
		}
	}
}

func TestReportsThreshold(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	// 4 + 3 on two days: 7 installed; 3 rolled back; 2 from another product.
	addReports(t, p, newReport(report.OutcomeInstalled, ""), 4, t0.Add(-2*day))
	addReports(t, p, newReport(report.OutcomeInstalled, ""), 3, t0)
	addReports(t, p, newReport(report.OutcomeRolledBack, "health-check"), 3, t0)
	addReports(t, p, report.Report{Product: "doorbell", Version: "2.0", Outcome: report.OutcomeFailed, ErrorClass: report.ClassInstallIO}, 2, t0)
	// Past retention: neither summed nor shown.
	addReports(t, p, newReport(report.OutcomeFailed, "hash"), 50, t0.Add(-time.Duration(project.DefaultReportCountsRetention)-day))

	seven := int64(7)
	rows := func(product string, k int) []project.ReportRow {
		t.Helper()
		sum, err := p.Reports(ctx, product, k)
		if err != nil {
			t.Fatalf("Reports(%q, %d): %v", product, k, err)
		}
		if sum.Retention != project.DefaultReportCountsRetention {
			t.Errorf("summary retention %v", sum.Retention)
		}
		return sum.Rows
	}
	eq := func(a, b project.ReportRow) bool {
		return a.Product == b.Product && a.Version == b.Version && a.Outcome == b.Outcome && a.ErrorClass == b.ErrorClass &&
			a.FewerThan == b.FewerThan && (a.Count == nil) == (b.Count == nil) && (a.Count == nil || *a.Count == *b.Count)
	}
	want := []project.ReportRow{
		{Product: "doorbell", Version: "2.0", Outcome: "failed", ErrorClass: report.ClassInstallIO, FewerThan: 5},
		{Product: "thermostat", Version: "1.1.0", Outcome: "installed", Count: &seven},
		{Product: "thermostat", Version: "1.1.0", Outcome: "rolled_back", ErrorClass: "health-check", FewerThan: 5},
	}
	if got := rows("", 0); !slices.EqualFunc(got, want, eq) {
		t.Errorf("Reports with report_k 5 = %s\nwant %s", showRows(got), showRows(want))
	}
	if got := rows("thermostat", 0); !slices.EqualFunc(got, want[1:], eq) {
		t.Errorf("Reports of thermostat = %s", showRows(got))
	}
	hidden := []project.ReportRow{want[1], want[2]}
	hidden[0] = project.ReportRow{Product: "thermostat", Version: "1.1.0", Outcome: "installed", FewerThan: 8}
	hidden[1].FewerThan = 8
	if got := rows("thermostat", 8); !slices.EqualFunc(got, hidden, eq) {
		t.Errorf("Reports with k 8 = %s", showRows(got))
	}
	if _, err := p.Reports(ctx, "", 2); err == nil || !strings.Contains(err.Error(), "report_k 5") {
		t.Errorf("Reports with k below report_k: %v; want a refusal naming report_k", err)
	}
	// The serialised form carries no exact small count either.
	b, err := json.Marshal(rows("thermostat", 0))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, `"count":3`) || !strings.Contains(s, `"count":null,"fewer_than":5`) || !strings.Contains(s, `"count":7`) {
		t.Errorf("JSON of the rows: %s", s)
	}
}

func showRows(rs []project.ReportRow) string {
	var parts []string
	for _, r := range rs {
		c := fmt.Sprintf("fewer than %d", r.FewerThan)
		if r.Count != nil {
			c = fmt.Sprint(*r.Count)
		}
		parts = append(parts, fmt.Sprintf("%s/%s/%s/%s: %s", r.Product, r.Version, r.Outcome, r.ErrorClass, c))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// AddReport counts an undeclared error class as report.ClassOther, and a
// day with ReportRowsPerDay counters refuses a new one with
// server.ErrReportsFull while existing ones still count.
func TestAddReportClassOtherAndDailyCap(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	p.ReportRowsPerDay = 2
	ctx := t.Context()
	addReports(t, p, report.Report{Product: "thermostat", Version: "1.1.0", Outcome: report.OutcomeFailed, ErrorClass: "from-a-newer-agent"}, 1, t0)
	addReports(t, p, report.Report{Product: "thermostat", Version: "1.1.0", Outcome: report.OutcomeFailed, ErrorClass: "another-newer-one"}, 1, t0)
	addReports(t, p, newReport(report.OutcomeInstalled, ""), 1, t0)
	err := p.AddReport(ctx, newReport(report.OutcomeRolledBack, report.ClassHealthCheck), t0)
	if !errors.Is(err, server.ErrReportsFull) {
		t.Fatalf("third counter of the day: %v, want server.ErrReportsFull", err)
	}
	addReports(t, p, newReport(report.OutcomeInstalled, ""), 1, t0)
	cs, err := p.Store.ReportCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range cs {
		got[c.Outcome+"/"+c.ErrorClass] = c.Count
	}
	if len(got) != 2 || got["failed/other"] != 2 || got["installed/"] != 2 {
		t.Errorf("counters %v, want failed/other 2 and installed/ 2", got)
	}
}

// Purge discards unfinished payload uploads older than a week and keeps
// younger ones.
func TestPurgeUnfinishedUploads(t *testing.T) {
	clk := clock.NewFake(time.Now())
	p := initDev(t, clk)
	up, ok := p.Blobs.(blob.Uploader)
	if !ok {
		t.Fatal("the filesystem blob store takes no resumable uploads")
	}
	body := strings.Repeat("x", 1<<20)
	sum := sha256.Sum256([]byte(body))
	sha := hex.EncodeToString(sum[:])
	// Half the blob arrives, then the client is gone.
	if _, err := up.Upload(t.Context(), sha, int64(len(body)), 0, 0, strings.NewReader(body[:len(body)/2])); !errors.Is(err, blob.ErrIncomplete) {
		t.Fatalf("half an upload: %v, want ErrIncomplete", err)
	}
	off, err := up.UploadOffset(t.Context(), sha)
	if err != nil || off == 0 {
		t.Fatalf("UploadOffset = %d, %v", off, err)
	}
	if res, err := p.Purge(t.Context()); err != nil || res.Uploads != 0 {
		t.Fatalf("purge of a fresh upload: %+v, %v", res, err)
	}
	clk.Advance(project.UnfinishedUploadAge + time.Hour)
	if res, err := p.Purge(t.Context()); err != nil || res.Uploads != 1 {
		t.Fatalf("purge a week later: %+v, %v", res, err)
	}
	if off, err := up.UploadOffset(t.Context(), sha); err != nil || off != 0 {
		t.Errorf("after the purge UploadOffset = %d, %v; want 0", off, err)
	}
}
