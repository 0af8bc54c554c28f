package project_test

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// TestPrivacyReportCoversLiveSchema checks the report against the schema
// the store describes: every table and column with its purpose, a
// retention period where uptrust.json sets one, and otherwise a recorded
// reason for keeping the rows. A new table without either fails here.
func TestPrivacyReportCoversLiveSchema(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	tables, err := p.Store.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.PrivacyReport(t.Context())
	if err != nil {
		t.Fatalf("PrivacyReport: %v", err)
	}
	if len(r.Tables) != len(tables) {
		t.Fatalf("report lists %d tables, the schema has %d", len(r.Tables), len(tables))
	}
	for i, tb := range tables {
		rt := r.Tables[i]
		if rt.Name != tb.Name || rt.Purpose != tb.Purpose || rt.Purpose == "" {
			t.Errorf("report table %d = %s %q; schema has %s %q", i, rt.Name, rt.Purpose, tb.Name, tb.Purpose)
		}
		if len(rt.Columns) != len(tb.Columns) {
			t.Errorf("table %s: report has %d columns, schema %d", tb.Name, len(rt.Columns), len(tb.Columns))
			continue
		}
		for j, c := range tb.Columns {
			if rc := rt.Columns[j]; rc.Name != c.Name || rc.Type != c.Type || rc.Purpose != c.Purpose || rc.Purpose == "" {
				t.Errorf("table %s column %d = %+v; schema has %+v", tb.Name, j, rc, c)
			}
		}
		per, retained := p.Config.Retention.Period(tb.Name)
		switch {
		case tb.Name == store.TableDeviceNonces:
			// A fixed lifetime (the signature window), not a setting.
			if rt.Retention != nil || !strings.Contains(rt.Kept, "deleted") || !strings.Contains(rt.Kept, "10m0s") {
				t.Errorf("table %s: retention %v, kept %q; want no setting, and when rows are deleted", tb.Name, rt.Retention, rt.Kept)
			}
		case retained && (rt.Retention == nil || *rt.Retention != per || !strings.Contains(rt.Kept, "deleted")):
			t.Errorf("table %s: retention %v, kept %q; want %v and when it is deleted", tb.Name, rt.Retention, rt.Kept, per)
		case !retained && (rt.Retention != nil || !strings.HasPrefix(rt.Kept, project.KeptUntilDeleted+": ")):
			t.Errorf("table %s: retention %v, kept %q; want kept until deleted, with the reason", tb.Name, rt.Retention, rt.Kept)
		case !retained && strings.Contains(rt.Kept, "no reason is recorded"):
			t.Errorf("table %s has neither a retention period nor a reason for keeping its rows", tb.Name)
		}
	}
	for _, name := range []string{store.TableReportCounts, store.TableAudit} {
		if !slices.ContainsFunc(r.Tables, func(tp project.TablePrivacy) bool { return tp.Name == name && tp.Retention != nil }) {
			t.Errorf("report has no retention for %s", name)
		}
	}
	if r.ClientAddressesStored || r.ClientAddressesLogged || r.ReportK != project.DefaultReportK || r.Mode != "anonymous" {
		t.Errorf("report: addresses stored %v logged %v, k %d, mode %s", r.ClientAddressesStored, r.ClientAddressesLogged, r.ReportK, r.Mode)
	}
	if !strings.Contains(r.ClientAddresses, "Managed devices are known by their key only") || !strings.Contains(r.ClientAddresses, "not even truncated") {
		t.Errorf("client address text %q does not say what the device API of managed mode keeps", r.ClientAddresses)
	}
	if !strings.Contains(r.RateLimit, "token bucket") {
		t.Errorf("rate limit text %q does not describe the token bucket", r.RateLimit)
	}
}

// TestPrivacyReportShowsNewTable adds a table to the database behind the
// program's back, as a future migration would, and finds it in the report
// with its purposes and no retention.
func TestPrivacyReportShowsNewTable(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	db, err := sql.Open("sqlite", filepath.Join(p.Dir, "uptrust.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE device_notes ( -- purpose: a table only this test creates\n" +
		"\tnote TEXT NOT NULL -- purpose: what the test wrote\n) STRICT"); err != nil {
		t.Fatal(err)
	}
	r, err := p.PrivacyReport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(r.Tables, func(tp project.TablePrivacy) bool { return tp.Name == "device_notes" })
	if i < 0 {
		t.Fatal("the new table is not in the report")
	}
	tp := r.Tables[i]
	if tp.Purpose != "a table only this test creates" || len(tp.Columns) != 1 || tp.Columns[0].Purpose != "what the test wrote" ||
		tp.Retention != nil || !strings.HasPrefix(tp.Kept, project.KeptUntilDeleted) || !strings.Contains(tp.Kept, "no reason is recorded") {
		t.Errorf("new table in the report: %+v", tp)
	}
}

// TestPrivacyReportFields checks that the report lists exactly the fields
// of the device report, each described.
func TestPrivacyReportFields(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	r, err := p.PrivacyReport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range r.DeviceReport {
		names = append(names, f.Name)
		if f.Description == "" {
			t.Errorf("report field %s has no description", f.Name)
		}
	}
	if want := []string{"product", "version", "outcome", "error_class"}; !slices.Equal(names, want) {
		t.Errorf("device report fields %v, want %v", names, want)
	}
}
