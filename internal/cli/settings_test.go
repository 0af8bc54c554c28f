package cli_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/cli"
)

// TestSettingsCLI: settings set changes report_k and retention on the
// project directory and through a running server (admin token), printing
// old -> new the same way; settings show prints the same with --dir and
// --server; the server applies a change made with --dir at once (the
// database is shared); other roles may read but not change; bad values
// are refused naming the setting.
func TestSettingsCLI(t *testing.T) {
	s := serveWithAdmin(t)
	r := mustRun(t, nil, "settings", "show", "--dir", s.dir)
	var lines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{"report_k 5 uptrust.json", "retention.audit 730d uptrust.json"} {
		if !slices.Contains(lines, want) {
			t.Errorf("settings show:\n%s\nwant a line %q", r.stdout, want)
		}
	}
	r = mustRun(t, nil, "settings", "set", "--report-k", "7", "--retention-audit", "400d", "--dir", s.dir)
	if want := "report_k: 5 -> 7\nretention.audit: 730d -> 400d\n"; r.stdout != want {
		t.Errorf("settings set --dir printed %q, want %q", r.stdout, want)
	}
	r = mustRun(t, nil, s.as("admin", "settings", "set", "--retention-tokens", "100d", "--report-k", "default")...)
	if want := "report_k: 7 -> 5 (uptrust.json)\nretention.tokens: 730d -> 100d\n"; r.stdout != want {
		t.Errorf("settings set --server printed %q, want %q", r.stdout, want)
	}
	for _, args := range [][]string{{"settings", "show"}, {"settings", "show", "--json"}} {
		local := mustRun(t, nil, append(args, "--dir", s.dir)...)
		remote := mustRun(t, nil, s.as("auditor", args...)...)
		if local.stdout != remote.stdout {
			t.Errorf("uptrust %s: --server prints\n%s\n--dir prints\n%s", strings.Join(args, " "), remote.stdout, local.stdout)
		}
	}
	var got cli.SettingsJSON
	if err := json.Unmarshal([]byte(mustRun(t, nil, "settings", "show", "--json", "--dir", s.dir).stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.ReportK != 5 || got.Retention.Audit.String() != "400d" || got.Retention.Tokens.String() != "100d" ||
		strings.Join(got.Overridden, ",") != "retention.audit,retention.tokens" {
		t.Errorf("settings show --json: %+v", got)
	}
	// Both changes are in the audit log, by whoever made them.
	r = mustRun(t, nil, "audit", "--action", "settings.change", "--json", "--dir", s.dir)
	var es []cli.AuditEntryJSON
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Actor != "cli" || es[0].Detail != "report_k 5 -> 7, retention.audit 730d -> 400d" ||
		es[1].Actor != "t-admin" || es[1].Role != "admin" || es[1].Detail != "report_k 7 -> 5 (uptrust.json), retention.tokens 730d -> 100d" {
		t.Errorf("settings.change entries: %+v", es)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{s.as("operator", "settings", "set", "--report-k", "9"), "server: 403 Forbidden: role operator may not PATCH /api/v1/settings"},
		{s.as("admin", "settings", "set", "--retention-audit", "2h"), "retention.audit"},
		{[]string{"settings", "set", "--report-k", "0", "--dir", s.dir}, "report_k"},
		{[]string{"settings", "set", "--dir", s.dir}, "settings set needs at least one of"},
	} {
		r := run(t, nil, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("uptrust %s: want an error naming %q\n%v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
	if after := mustRun(t, nil, "settings", "show", "--json", "--dir", s.dir).stdout; !strings.Contains(after, `"report_k": 5`) || !strings.Contains(after, `"audit": "400d"`) {
		t.Errorf("refused changes changed the settings:\n%s", after)
	}
}
