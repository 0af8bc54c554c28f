package e2e

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// dumpStore reads every row of every table the live schema has (as
// store.Store.Describe lists them, so a table added later is read too),
// each row rendered as one string, sorted.
func dumpStore(t *testing.T, w *world) map[string][]string {
	t.Helper()
	ctx := context.Background()
	tables, err := w.p.Store.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	db, err := sql.Open("sqlite", filepath.Join(w.p.Dir, "uptrust.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	for _, tb := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+strings.ReplaceAll(tb.Name, `"`, `""`)+`"`)
		if err != nil {
			t.Fatalf("reading table %s: %v", tb.Name, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		var dump []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			cells := make([]string, len(cols))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				cells[i] = cols[i] + "=" + fmt.Sprint(v)
			}
			dump = append(dump, strings.Join(cells, "\x1f"))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		slices.Sort(dump)
		out[tb.Name] = dump
	}
	return out
}

var (
	ipv4Pattern = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b`)
	ipv6Pattern = regexp.MustCompile(`(?i)[0-9a-f]{0,4}::[0-9a-f]{0,4}|\[[0-9a-f:]+\]`)
)

// TestServerStoresOnlyCounters runs the real server and four devices
// through an update (three install it, one rolls back) and then reads the
// whole database: device activity changed nothing but the report counters,
// which are aggregated (one row per release × outcome × error class and
// day, not one per device), and no cell holds an address or anything that
// belongs to one device. Then a purge on a clock 401 days on removes the
// counters and nothing else.
func TestServerStoresOnlyCounters(t *testing.T) {
	ctx := context.Background()
	w := offered(t, worldOptions{})
	before := dumpStore(t, w)

	names := []string{"privacy-alpha", "privacy-bravo", "privacy-charlie", "privacy-delta"}
	private := []string{"127.0.0.1", "localhost", w.url, w.direct}
	for _, u := range []string{w.url, w.direct} {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		private = append(private, pu.Host)
	}
	for i, name := range names {
		d := w.device(name, 0)
		if i == len(names)-1 {
			d.Health = func(contextT) error { return errUnhealthy }
		}
		w.cycle(d)
		if i == len(names)-1 {
			w.assertRunning(d, "1.0.0")
		} else {
			w.assertRunning(d, "1.1.0")
		}
		st, err := agent.LoadState(d.Config.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Seed) == 0 {
			t.Fatalf("%s: no rollout seed to look for", name)
		}
		private = append(private, name, d.Dir, d.Config.DataDir, string(st.Seed), hex.EncodeToString(st.Seed),
			base64.StdEncoding.EncodeToString(st.Seed), base64.RawURLEncoding.EncodeToString(st.Seed))
	}
	w.assertReport("installed", "")
	w.assertReport("rolled_back", "health-check")

	after := dumpStore(t, w)
	if len(after) != len(before) {
		t.Errorf("tables before the devices ran: %d, after: %d", len(before), len(after))
	}
	for name, rows := range after {
		if name != store.TableReportCounts && !slices.Equal(rows, before[name]) {
			t.Errorf("device activity changed table %s:\nbefore %q\nafter  %q", name, before[name], rows)
		}
		for _, row := range rows {
			for _, p := range private {
				if strings.Contains(row, p) {
					t.Errorf("table %s holds %q, which belongs to a device or a connection: %q", name, p, row)
				}
			}
			if m := ipv4Pattern.FindString(row); m != "" {
				t.Errorf("table %s holds something like an IPv4 address %q: %q", name, m, row)
			}
			if m := ipv6Pattern.FindString(row); m != "" {
				t.Errorf("table %s holds something like an IPv6 address %q: %q", name, m, row)
			}
		}
	}
	counts, err := w.p.Store.ReportCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range counts {
		got[c.Product+" "+c.Version+" "+c.Outcome+" "+c.ErrorClass] += c.Count
	}
	want := map[string]int64{
		"thermostat 1.1.0 installed ":               3,
		"thermostat 1.1.0 rolled_back health-check": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("report counters %v, want %v", got, want)
	}
	if len(after[store.TableReportCounts]) > 2*len(want) { // two UTC days at most
		t.Errorf("report_counts has %d rows for %d reports: not aggregated", len(after[store.TableReportCounts]), len(names))
	}

	// Purging later, as uptrust purge would: the server keeps running.
	audit, err := w.p.Store.Audit(ctx)
	if err != nil || len(audit) == 0 {
		t.Fatalf("audit log: %d entries, %v", len(audit), err)
	}
	purgeAt := func(at time.Time) project.Purged {
		t.Helper()
		p, err := project.Open(ctx, w.p.Dir, project.Options{Clock: clock.NewFake(at)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		res, err := p.Purge(ctx)
		if err != nil {
			t.Fatalf("Purge at %v: %v", at, err)
		}
		return res
	}
	now := time.Now()
	// Within retention (400 days by default; 398 leaves room for midnight
	// passing during the test): nothing goes.
	if res := purgeAt(now.AddDate(0, 0, 398)); res.Rows() != 0 {
		t.Errorf("purge within retention removed %+v", res)
	}
	res := purgeAt(now.AddDate(0, 0, 401))
	if res.Tables[0].Table != store.TableReportCounts || res.Tables[0].Rows != int64(len(counts)) || res.Tables[1].Rows != 0 {
		t.Errorf("purge past the counter retention = %+v; want the %d counters and no audit entry", res, len(counts))
	}
	if cs, err := w.p.Store.ReportCounts(ctx); err != nil || len(cs) != 0 {
		t.Errorf("counters after purge: %+v, %v; want none", cs, err)
	}
	left := dumpStore(t, w)
	for name, rows := range left {
		switch name {
		case store.TableReportCounts:
		case store.TableAudit: // gains the purge's own entry
			if len(rows) != len(audit)+1 {
				t.Errorf("audit rows after purge: %d, want %d", len(rows), len(audit)+1)
			}
		case "generation": // the audit entry was written in an Update
		case "audit_chain": // its head moves to the purge's own entry
		default:
			if !slices.Equal(rows, after[name]) {
				t.Errorf("purge changed table %s", name)
			}
		}
	}
	// The server still serves and counts.
	d := w.device("privacy-echo", 0)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	w.assertReport("installed", "")
}
