package cli_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/store"
)

// addReports counts n reports in the project at dir, at time at.
func addReports(t *testing.T, dir string, r report.Report, n int, at time.Time) {
	t.Helper()
	p, err := project.Open(t.Context(), dir, project.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range n {
		if err := p.AddReport(t.Context(), r, at); err != nil {
			t.Fatal(err)
		}
	}
}

var installed = report.Report{Product: "thermostat", Version: "1.1.0", Outcome: report.OutcomeInstalled}

// reportRow returns the REPORTS column of the table row of outcome.
func reportRow(t *testing.T, out, outcome string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^thermostat\s+1\.1\.0\s+` + outcome + `\s+\S+\s+(.+?)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s row in:\n%s", outcome, out)
	}
	return m[1]
}

func TestReportsHidesSmallCounts(t *testing.T) {
	dir := devProject(t)
	addReports(t, dir, installed, 3, time.Now())

	r := mustRun(t, nil, "reports", "--dir", dir)
	if got := reportRow(t, r.stdout, "installed"); got != "fewer than 5" {
		t.Errorf("3 reports with k=5 shown as %q, want \"fewer than 5\"\n%s", got, r.stdout)
	}
	// Not anywhere, not even in passing: the output has no other digit 3.
	if strings.Contains(r.stdout, "3") {
		t.Errorf("output contains the hidden count 3:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "reports", "--json", "--dir", dir)
	var sum struct {
		K        int `json:"k"`
		Counters []map[string]any
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("reports --json: %v\n%s", err, r.stdout)
	}
	if len(sum.Counters) != 1 || sum.K != 5 {
		t.Fatalf("reports --json: %s", r.stdout)
	}
	if c := sum.Counters[0]; c["count"] != nil || c["fewer_than"] != 5.0 || c["outcome"] != "installed" {
		t.Errorf("JSON counter %v; want count null, fewer_than 5", c)
	}
	if strings.Contains(r.stdout, "3") {
		t.Errorf("JSON contains the hidden count 3:\n%s", r.stdout)
	}

	addReports(t, dir, installed, 4, time.Now())
	r = mustRun(t, nil, "reports", "thermostat", "--dir", dir)
	if got := reportRow(t, r.stdout, "installed"); got != "7" {
		t.Errorf("7 reports shown as %q, want 7\n%s", got, r.stdout)
	}
	r = mustRun(t, nil, "reports", "--json", "--dir", dir)
	if !strings.Contains(r.stdout, `"count": 7`) || strings.Contains(r.stdout, "fewer_than") {
		t.Errorf("reports --json with 7:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "reports", "--k", "8", "--dir", dir)
	if got := reportRow(t, r.stdout, "installed"); got != "fewer than 8" {
		t.Errorf("7 reports with --k 8 shown as %q", got)
	}
	if r := run(t, nil, "reports", "--k", "2", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "report_k 5") {
		t.Errorf("reports --k below report_k: %v; want a refusal", r)
	}
	if r := run(t, nil, "reports", "doorbell", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, `no product "doorbell"`) {
		t.Errorf("reports of an unknown product: %v", r)
	}
}

func TestPrivacyUsageErrors(t *testing.T) {
	dir := devProject(t)
	for _, args := range [][]string{
		{"reports", "a", "b"},
		{"reports", "--k", "-1"},
		{"privacy"},
		{"privacy", "show"},
		{"privacy", "report", "extra"},
		{"purge", "extra"},
		{"audit", "extra"},
	} {
		r := run(t, nil, append(args, "--dir", dir)...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage:") {
			t.Errorf("uptrust %s: %v; want exit 2 with usage", strings.Join(args, " "), r)
		}
	}
}

// describe returns the live schema of the project at dir.
func describe(t *testing.T, dir string) []store.Table {
	t.Helper()
	tables, err := openProject(t, dir).Store.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// TestPrivacyReport checks both forms of the report against the live
// schema: every table and column, with its purpose, and how long each
// table's rows are kept.
func TestPrivacyReport(t *testing.T) {
	dir := devProject(t)
	tables := describe(t, dir)

	text := mustRun(t, nil, "privacy", "report", "--dir", dir).stdout
	for _, tb := range tables {
		block := tableBlock(t, text, tb.Name)
		if !strings.Contains(block, "why:  "+tb.Purpose+"\n") {
			t.Errorf("table %s: purpose %q missing:\n%s", tb.Name, tb.Purpose, block)
		}
		for _, c := range tb.Columns {
			if line := "      " + c.Name + " (" + c.Type + "): " + c.Purpose + "\n"; !strings.Contains(block, line) {
				t.Errorf("table %s: no line %q in:\n%s", tb.Name, line, block)
			}
		}
		if tb.Name == store.TableDeviceNonces {
			// A fixed lifetime: the signature window, then a margin.
			if !strings.Contains(block, "retention: a row lives while its request's signature window is open") {
				t.Errorf("table %s does not say how long its rows live:\n%s", tb.Name, block)
			}
			continue
		}
		if _, retained := openProject(t, dir).Config.Retention.Period(tb.Name); !retained && !strings.Contains(block, "retention: kept until deleted by the operator: ") {
			t.Errorf("table %s without retention does not say it is kept until deleted, and why:\n%s", tb.Name, block)
		}
	}
	for _, want := range []string{
		"Stored: no. Logged: no.",
		"token bucket",
		"a daily counter is deleted once its day began more than 400 days ago",
		"deleted 730 days after it was recorded",
		`shows every count below 5 as "fewer than 5"`,
		"    product ", "    version ", "    outcome ", "    error_class ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("privacy report lacks %q:\n%s", want, text)
		}
	}

	js := mustRun(t, nil, "privacy", "report", "--json", "--dir", dir).stdout
	var r project.PrivacyReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("privacy report --json: %v\n%s", err, js)
	}
	if len(r.Tables) != len(tables) {
		t.Fatalf("JSON lists %d tables, schema has %d", len(r.Tables), len(tables))
	}
	for i, tb := range tables {
		jt := r.Tables[i]
		cols := make([]store.Column, len(jt.Columns))
		for j, c := range jt.Columns {
			cols[j] = store.Column(c)
		}
		if jt.Name != tb.Name || jt.Purpose != tb.Purpose || !slices.Equal(cols, tb.Columns) {
			t.Errorf("JSON table %d = %+v; schema %+v", i, jt, tb)
		}
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["client_addresses_stored"] != false || raw["client_addresses_logged"] != false || raw["report_k"] != 5.0 {
		t.Errorf("JSON addresses stored %v, logged %v, report_k %v", raw["client_addresses_stored"], raw["client_addresses_logged"], raw["report_k"])
	}
	for _, tt := range raw["tables"].([]any) {
		m := tt.(map[string]any)
		switch m["name"] {
		case store.TableReportCounts:
			if m["retention"] != "400d" {
				t.Errorf("JSON retention of report_counts = %v", m["retention"])
			}
		case "releases":
			if _, ok := m["retention"]; ok || !strings.HasPrefix(m["kept"].(string), project.KeptUntilDeleted) {
				t.Errorf("JSON releases: %v", m)
			}
		}
	}
}

// tableBlock returns the lines of the text report about table name.
func tableBlock(t *testing.T, text, name string) string {
	t.Helper()
	start := strings.Index(text, "  table "+name+"\n")
	if start < 0 {
		t.Fatalf("privacy report has no table %s:\n%s", name, text)
	}
	block := text[start+len("  table "+name+"\n"):]
	if end := regexp.MustCompile(`(?m)^(  table |\S)`).FindStringIndex(block); end != nil {
		block = block[:end[0]]
	}
	return block
}

// TestPrivacyReportShowsNewTable adds a table to the database as a
// migration would and finds it in both forms of the report.
func TestPrivacyReportShowsNewTable(t *testing.T) {
	dir := devProject(t)
	db, err := sql.Open("sqlite", filepath.Join(dir, "uptrust.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("CREATE TABLE sightings ( -- purpose: added by the test, as a future migration might\n" +
		"\tseen TEXT NOT NULL, -- purpose: when the test saw something\n" +
		"\twhere_seen TEXT NOT NULL -- purpose: where it was\n) STRICT")
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := mustRun(t, nil, "privacy", "report", "--dir", dir).stdout
	block := tableBlock(t, text, "sightings")
	for _, want := range []string{
		"why:  added by the test, as a future migration might",
		"retention: kept until deleted by the operator: no reason is recorded",
		"seen (TEXT): when the test saw something",
		"where_seen (TEXT): where it was",
	} {
		if !strings.Contains(block, want) {
			t.Errorf("new table: %q missing from\n%s", want, block)
		}
	}
	js := mustRun(t, nil, "privacy", "report", "--json", "--dir", dir).stdout
	if !strings.Contains(js, `"name": "sightings"`) || !strings.Contains(js, `"purpose": "where it was"`) {
		t.Errorf("new table missing from the JSON report:\n%s", js)
	}
}

// setRetention sets the report counter retention in uptrust.json.
func setRetention(t *testing.T, dir, reportCounts string) {
	t.Helper()
	path := filepath.Join(dir, "uptrust.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["retention"].(map[string]any)["report_counts"] = reportCounts
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func counters(t *testing.T, dir string) []store.ReportCount {
	t.Helper()
	cs, err := openProject(t, dir).Store.ReportCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestPurgeCommand uses the real clock: with a retention of two days, a
// counter from five days ago is always past it and today's is not, even
// should midnight pass during the test.
func TestPurgeCommand(t *testing.T) {
	dir := devProject(t)
	setRetention(t, dir, "2d")
	addReports(t, dir, installed, 2, time.Now().AddDate(0, 0, -5))
	addReports(t, dir, installed, 1, time.Now())

	r := mustRun(t, nil, "purge", "--dir", dir)
	if !regexp.MustCompile(`(?m)^report_counts: removed 1 rows older than \S+ \(retention 2d\)$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^audit: removed 0 rows older than \S+ \(retention 730d\)$`).MatchString(r.stdout) {
		t.Errorf("purge output:\n%s", r.stdout)
	}
	if cs := counters(t, dir); len(cs) != 1 || cs[0].Count != 1 {
		t.Errorf("counters after purge: %+v; want today's only", cs)
	}
	r = mustRun(t, nil, "audit", "--dir", dir)
	if !regexp.MustCompile(`(?m)^\d+\s+\S+\s+cli\s+ok\s+retention\.purge\s+report_counts\s+-\s+removed 1 rows older than`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^\d+\s+\S+\s+cli\s+ok\s+product\.add\s+thermostat\s`).MatchString(r.stdout) {
		t.Errorf("audit after purge:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "purge", "--dir", dir)
	if !strings.Contains(r.stdout, "report_counts: removed 0 rows") {
		t.Errorf("second purge:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "audit", "--json", "--dir", dir)
	var es []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil || len(es) != 5 {
		t.Errorf("audit --json: %d entries, %v; want 2 init, admin token, product add, 1 purge\n%s", len(es), err, r.stdout)
	}
}

// TestServePurges starts uptrust serve on a project with counters past
// retention and waits for the purge it runs at start to log what it
// removed.
func TestServePurges(t *testing.T) {
	dir := devProject(t)
	setRetention(t, dir, "2d")
	addReports(t, dir, installed, 2, time.Now().AddDate(0, 0, -5))
	addReports(t, dir, installed, 1, time.Now())

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"serve", "--dir", dir, "--listen", "127.0.0.1:0"},
			cli.Env{Stdout: io.Discard, Stderr: pw, Getenv: func(string) string { return "" }})
		pw.Close()
	}()
	s := bufio.NewScanner(pr)
	var log []string
	for !slices.ContainsFunc(log, func(l string) bool { return strings.Contains(l, `msg="retention purge"`) }) {
		if !s.Scan() {
			t.Fatalf("serve stopped before purging: exit %d\n%s", <-done, strings.Join(log, "\n"))
		}
		log = append(log, s.Text())
	}
	line := log[len(log)-1]
	if !strings.Contains(line, "rows=1") || !strings.Contains(line, "report_counts=1") || !strings.Contains(line, "audit=0") {
		t.Errorf("purge log line %q; want one report counter", line)
	}
	cancel()
	go io.Copy(io.Discard, pr) // let serve finish logging
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d", code)
	}
	if cs := counters(t, dir); len(cs) != 1 || cs[0].Count != 1 {
		t.Errorf("counters after serve purged: %+v; want today's only", cs)
	}
}
