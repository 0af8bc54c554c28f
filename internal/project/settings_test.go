package project_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/store"
)

// TestChangeSettings: overrides in the store win over uptrust.json, in
// reports, purges and the privacy report; a change is audited with old ->
// new; bad input and a stale ETag change nothing.
func TestChangeSettings(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	p := initDev(t, clk)
	ctx := t.Context()
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 1, "image"))

	rs, err := p.Runtime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs.ReportK != project.DefaultReportK || rs.Retention.Audit != project.DefaultAuditRetention || len(rs.Overridden) != 0 {
		t.Fatalf("Runtime of a new project = %+v, want uptrust.json's defaults", rs)
	}

	// Invalid input names the setting and changes nothing.
	for _, bad := range []struct {
		change map[string]string
		name   string
	}{
		{map[string]string{"report_k": "0"}, "report_k"},
		{map[string]string{"report_k": "many"}, "report_k"},
		{map[string]string{"retention.audit": "12h"}, "retention.audit"},
		{map[string]string{"retention.tokens": "forever"}, "retention.tokens"},
		{map[string]string{"listen": "1"}, "listen"},
		{map[string]string{}, "nothing to change"},
	} {
		_, _, err := p.ChangeSettings(ctx, bad.change, "")
		if !errors.Is(err, project.ErrSetting) || !strings.Contains(err.Error(), bad.name) {
			t.Errorf("ChangeSettings(%v) = %v, want ErrSetting naming %s", bad.change, err, bad.name)
		}
	}
	if _, _, err := p.ChangeSettings(ctx, map[string]string{"report_k": "7"}, `"stale"`); !errors.Is(err, project.ErrStale) {
		t.Errorf("ChangeSettings with a stale ETag = %v, want ErrStale", err)
	}
	if got, _ := p.Store.Settings(ctx); len(got) != 0 {
		t.Fatalf("refused changes stored %+v", got)
	}

	before, after, err := p.ChangeSettings(ctx, map[string]string{"report_k": "7", "retention.audit": "0400d"}, rs.ETag)
	if err != nil {
		t.Fatalf("ChangeSettings: %v", err)
	}
	if before.ETag != rs.ETag || after.ETag == rs.ETag || after.ReportK != 7 || after.Retention.Audit != project.Period(400*24*time.Hour) ||
		!slices.Equal(after.Overridden, []string{"report_k", "retention.audit"}) {
		t.Errorf("ChangeSettings: before %+v after %+v", before, after)
	}
	es, err := p.AuditQuery(ctx, store.AuditFilter{Action: project.ActionSettingsChange})
	if err != nil || len(es) != 1 || es[0].Detail != "report_k 5 -> 7, retention.audit 730d -> 400d" || es[0].Object != "settings" {
		t.Fatalf("settings.change entries = %+v, %v", es, err)
	}

	// A second handle on the same database (another replica) sees them.
	p2, err := project.Open(ctx, p.Dir, project.Options{Clock: clk, Passphrase: pass("")})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if rs2, err := p2.Runtime(ctx); err != nil || rs2.ReportK != 7 || rs2.ETag != after.ETag {
		t.Errorf("Runtime on a second handle = %+v, %v; want report_k 7 and the same ETag", rs2, err)
	}

	// Reports use the override: k below it is refused, sums below it hidden.
	addReports(t, p, newReport(report.OutcomeInstalled, ""), 6, start)
	sum, err := p.Reports(ctx, "", 0)
	if err != nil || sum.K != 7 || len(sum.Rows) != 1 || sum.Rows[0].FewerThan != 7 {
		t.Errorf("Reports with report_k 7 = %+v, %v", sum, err)
	}
	if _, err := p.Reports(ctx, "", 5); !errors.Is(err, project.ErrBelowReportK) {
		t.Errorf("Reports with k 5 under report_k 7 = %v, want ErrBelowReportK", err)
	}

	// Purge uses the override.
	res, err := p.Purge(ctx)
	if err != nil || res.Tables[1].Table != store.TableAudit || res.Tables[1].Period != project.Period(400*24*time.Hour) {
		t.Errorf("Purge = %+v, %v; want the audit retention of 400d", res, err)
	}

	// The privacy report states the values in effect and where they come from.
	pr, err := p.PrivacyReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pr.ReportK != 7 {
		t.Errorf("privacy report k = %d, want 7", pr.ReportK)
	}
	for _, tb := range pr.Tables {
		if tb.Name == store.TableAudit && (!strings.Contains(tb.Kept, "400 days") || !strings.Contains(tb.Kept, "set by uptrust settings set")) {
			t.Errorf("privacy report of audit: %q", tb.Kept)
		}
		if tb.Name == store.TableTokens && !strings.Contains(tb.Kept, "in uptrust.json") {
			t.Errorf("privacy report of tokens: %q", tb.Kept)
		}
	}

	// The same values again change nothing but are recorded; the empty
	// value goes back to uptrust.json.
	if _, _, err := p.ChangeSettings(ctx, map[string]string{"report_k": "7"}, ""); err != nil {
		t.Fatal(err)
	}
	_, after, err = p.ChangeSettings(ctx, map[string]string{"report_k": ""}, "")
	if err != nil || after.ReportK != project.DefaultReportK || slices.Contains(after.Overridden, "report_k") {
		t.Errorf("reset report_k: %+v, %v", after, err)
	}
	es, _ = p.AuditQuery(ctx, store.AuditFilter{Action: project.ActionSettingsChange})
	if len(es) != 3 || es[1].Detail != "unchanged: report_k 7" || es[2].Detail != "report_k 7 -> 5 (uptrust.json)" {
		t.Errorf("settings.change entries after a repeat and a reset = %+v", es)
	}
}
