package cli_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var summaryRE = regexp.MustCompile(`(?m)^(\d+) met, (\d+) not met, (\d+) not applicable$`)

// complianceProject makes a dev project with the thermostat product.
func complianceProject(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	mustRun(t, nil, "init", "--dir", dir, "--dev")
	mustRun(t, nil, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31",
		"--model", "Thermostat T1", "--contact", "security@example.com", "--dir", dir)
	return dir
}

func TestComplianceText(t *testing.T) {
	dir := complianceProject(t)
	r := mustRun(t, nil, "compliance", "thermostat", "--dir", dir)
	for i := 1; i <= 16; i++ {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^5\.3-%d +(met|not met|not applicable) `, i)).MatchString(r.stdout) {
			t.Errorf("no row for 5.3-%d:\n%s", i, r.stdout)
		}
	}
	for _, want := range []string{
		"- support period published: until 2031-12-31, signed by products/thermostat key ",
		"- development project (uptrust init --dev)",
		`model designation "Thermostat T1"`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^5\.3-7 +not met `).MatchString(r.stdout) {
		t.Errorf("5.3-7 is not 'not met' for a dev project:\n%s", r.stdout)
	}
	m := summaryRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no summary line:\n%s", r.stdout)
	}
	if m[2] == "0" {
		t.Errorf("summary %q: a dev project has at least one provision not met", m[0])
	}
}

func TestComplianceJSON(t *testing.T) {
	dir := complianceProject(t)
	r := mustRun(t, nil, "compliance", "thermostat", "--json", "--dir", dir)
	var out map[string]struct {
		Status   string   `json:"status"`
		Title    string   `json:"title"`
		Source   string   `json:"source"`
		Evidence []string `json:"evidence"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	ids := []string{"CRA-I-2c", "CRA-I-2f", "CRA-II-2", "CRA-II-7", "CRA-II-8", "CRA-13-8", "PSTI-3"}
	for i := 1; i <= 16; i++ {
		ids = append(ids, fmt.Sprintf("5.3-%d", i))
	}
	for _, id := range ids {
		e, ok := out[id]
		if !ok {
			t.Errorf("no key %s", id)
			continue
		}
		switch e.Status {
		case "met", "not met", "not applicable":
		default:
			t.Errorf("%s: status %q", id, e.Status)
		}
		if e.Title == "" || e.Source == "" || len(e.Evidence) == 0 {
			t.Errorf("%s: title %q source %q evidence %q", id, e.Title, e.Source, e.Evidence)
		}
	}
	if s := out["5.3-7"].Status; s != "not met" {
		t.Errorf("5.3-7 of a dev project: %q, want not met", s)
	}
	if s := out["5.3-13"]; s.Status != "met" || !strings.Contains(strings.Join(s.Evidence, "\n"), "until 2031-12-31") {
		t.Errorf("5.3-13: %+v", s)
	}
	if s := out["5.3-14"].Status; s != "not applicable" {
		t.Errorf("5.3-14: %q, want not applicable", s)
	}
	if !summaryRE.MatchString(r.stderr) {
		t.Errorf("no summary on stderr: %q", r.stderr)
	}
}

func TestComplianceErrors(t *testing.T) {
	dir := complianceProject(t)
	if r := run(t, nil, "compliance", "--dir", dir); r.code != 2 || !strings.Contains(r.stderr, "compliance: want exactly one PRODUCT") {
		t.Errorf("compliance without PRODUCT: %v", r)
	}
	r := run(t, nil, "compliance", "toaster", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, `compliance: product "toaster"`) {
		t.Errorf("compliance of an unknown product: %v", r)
	}
	if r := run(t, nil, "compliance", "thermostat", "--dir", filepath.Join(t.TempDir(), "none")); r.code != 1 || !strings.Contains(r.stderr, "not an uptrust project") {
		t.Errorf("compliance outside a project: %v", r)
	}
}
