package cli_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/compliance"
)

var summaryRE = regexp.MustCompile(`(?m)^(\d+) met, (\d+) not met, (\d+) not yet demonstrable, (\d+) attested, (\d+) not applicable$`)

// complianceProject makes a dev project with the thermostat product.
func complianceProject(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	mustRun(t, nil, "init", "--dir", dir, "--dev")
	mustRun(t, nil, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31",
		"--model", "Thermostat T1", "--contact", "security@example.com", "--dir", dir)
	return dir
}

// reportJSON is the --json report as a reader sees it.
type reportJSON struct {
	Product    string    `json:"product"`
	Time       time.Time `json:"time"`
	Uptrust    string    `json:"uptrust_version"`
	Assessment string    `json:"assessment"`
	Standards  []struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Version string `json:"version"`
		Scope   string `json:"scope"`
	} `json:"standards"`
	Summary      map[string]int `json:"summary"`
	ShallsNotMet []string       `json:"shalls_not_met"`
	Provisions   []struct {
		ID          string   `json:"id"`
		Source      string   `json:"source"`
		Force       string   `json:"force"`
		Condition   string   `json:"condition"`
		Title       string   `json:"title"`
		Verdict     string   `json:"verdict"`
		Evidence    []string `json:"evidence"`
		Warnings    []string `json:"warnings"`
		Attestation *struct {
			Item string    `json:"item"`
			URL  string    `json:"url"`
			Note string    `json:"note"`
			By   string    `json:"by"`
			Time time.Time `json:"time"`
		} `json:"attestation"`
	} `json:"provisions"`
}

func complianceJSON(t *testing.T, r result) reportJSON {
	t.Helper()
	var rep reportJSON
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, r.stdout)
	}
	return rep
}

// verdicts maps provision id to verdict.
func (r reportJSON) verdicts() map[string]string {
	out := map[string]string{}
	for _, p := range r.Provisions {
		out[p.ID] = p.Verdict
	}
	return out
}

func wantVerdicts(t *testing.T, rep reportJSON, want map[string]string) {
	t.Helper()
	got := rep.verdicts()
	for id, v := range want {
		if got[id] != v {
			var ev []string
			for _, p := range rep.Provisions {
				if p.ID == id {
					ev = p.Evidence
				}
			}
			t.Errorf("%s: %q, want %q\n  %s", id, got[id], v, strings.Join(ev, "\n  "))
		}
	}
}

// TestComplianceEmptyProject: a dev project with no release reports "not
// yet demonstrable" where there is nothing to judge, "not met" for
// outside facts nobody attested, and exits 3.
func TestComplianceEmptyProject(t *testing.T) {
	dir := complianceProject(t)
	r := run(t, nil, "compliance", "thermostat", "--dir", dir)
	if r.code != 3 {
		t.Fatalf("compliance of a dev project: %v; want exit 3", r)
	}
	if !strings.Contains(r.stderr, "uptrust: compliance: ") || !strings.Contains(r.stderr, "shall provisions of thermostat not met: 5.3-7, 5.3-16") {
		t.Errorf("stderr does not name the shall provisions not met:\n%s", r.stderr)
	}
	for _, want := range []string{
		"This is a self-assessment by the manufacturer with uptrust's help, not a conformity assessment",
		"ETSI EN 303 645 V2.1.1 (2020-06)",
		"- support period published: until 2031-12-31, signed by products/thermostat key ",
		"- development project (uptrust init --dev)",
		"applies where the device is not constrained",
		"uptrust compliance attest thermostat 5.3-16 --url URL --note TEXT",
		"shall provision",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	for i := 1; i <= 16; i++ {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^5\.3-%d +(met|not met|not yet demonstrable|attested|not applicable) +(shall|should|conditional shall|conditional should) `, i)).MatchString(r.stdout) {
			t.Errorf("no row for 5.3-%d:\n%s", i, r.stdout)
		}
	}
	if m := summaryRE.FindStringSubmatch(r.stdout); m == nil || m[2] == "0" || m[3] == "0" || m[4] != "0" {
		t.Errorf("summary %q: want some not met, some not yet demonstrable, none attested", m)
	}

	rep := complianceJSON(t, run(t, nil, "compliance", "thermostat", "--json", "--dir", dir))
	wantVerdicts(t, rep, map[string]string{
		"5.3-1": "not yet demonstrable", "5.3-7": "not met", "5.3-8": "not yet demonstrable", "5.3-13": "met",
		"5.3-14": "not applicable", "5.3-16": "not met", "CRA-II-2": "not yet demonstrable", "CRA-II-4": "not yet demonstrable",
		"CRA-II-5": "not met", "CRA-13-8": "not met", "CRA-13-9": "not yet demonstrable", "PSTI-2": "not met",
	})
}

// TestComplianceDevRelease: a dev project with a security release rolled
// out to every device: the timeliness is measured from the project.
func TestComplianceDevRelease(t *testing.T) {
	dir := complianceProject(t)
	payload := writeFile(t, t.TempDir(), "fw.img", "firmware 1.0.1")
	mustRun(t, nil, "release", "add", "thermostat", "1.0.1", payload, "--kind", "security", "--security-version", "2",
		"--advisory", "CVE-2026-0001:buffer overflow in the scheduler", "--dir", dir)
	mustRun(t, nil, "rollout", "start", "thermostat", "1.0.1", "--percent", "10", "--dir", dir)
	rep := complianceJSON(t, run(t, nil, "compliance", "thermostat", "--json", "--dir", dir))
	wantVerdicts(t, rep, map[string]string{"5.3-1": "met", "5.3-8": "not yet demonstrable", "CRA-II-4": "met", "CRA-13-9": "met"})

	mustRun(t, nil, "rollout", "set-percent", "thermostat", "100", "--dir", dir)
	r := run(t, nil, "compliance", "thermostat", "--json", "--dir", dir)
	if r.code != 3 {
		t.Errorf("dev project: exit %d, want 3 (5.3-7 is not met)", r.code)
	}
	rep = complianceJSON(t, r)
	wantVerdicts(t, rep, map[string]string{"5.3-8": "met", "CRA-II-2": "met", "5.3-7": "not met"})
	for _, p := range rep.Provisions {
		if p.ID == "5.3-8" && !strings.Contains(strings.Join(p.Evidence, "\n"), "security release 1.0.1 (security version 2), published with its advisories") {
			t.Errorf("5.3-8 evidence: %q", p.Evidence)
		}
	}
}

// TestComplianceJSONShape: one object whose fields come in a fixed order,
// provisions in report order.
func TestComplianceJSONShape(t *testing.T) {
	dir := complianceProject(t)
	r := run(t, nil, "compliance", "thermostat", "--json", "--dir", dir)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var keys []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
		case string:
			if depth == 1 {
				keys = append(keys, v)
				// Skip the value.
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	want := []string{"product", "time", "uptrust_version", "assessment", "standards", "summary", "shalls_not_met", "provisions"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("top-level keys %q, want %q", keys, want)
	}
	rep := complianceJSON(t, r)
	if rep.Product != "thermostat" || rep.Time.IsZero() || rep.Uptrust == "" || !strings.Contains(rep.Assessment, "not a conformity assessment") {
		t.Errorf("report header: %+v", rep)
	}
	var std []string
	for _, s := range rep.Standards {
		std = append(std, s.ID+" "+s.Version)
	}
	if s := strings.Join(std, "; "); !strings.Contains(s, "ETSI EN 303 645 V2.1.1 (2020-06)") || !strings.Contains(s, "EU CRA") || !strings.Contains(s, "UK PSTI") {
		t.Errorf("standards %q", s)
	}
	var ids []string
	for _, p := range rep.Provisions {
		ids = append(ids, p.ID)
		if p.Title == "" || p.Source == "" || len(p.Evidence) == 0 {
			t.Errorf("%s: title %q source %q evidence %q", p.ID, p.Title, p.Source, p.Evidence)
		}
		switch p.Force {
		case "shall", "should":
			if p.Condition != "" {
				t.Errorf("%s: force %s with condition %q", p.ID, p.Force, p.Condition)
			}
		case "conditional shall", "conditional should":
			if p.Condition == "" {
				t.Errorf("%s: %s without a condition", p.ID, p.Force)
			}
		default:
			t.Errorf("%s: force %q", p.ID, p.Force)
		}
	}
	if got, want := strings.Join(ids, ","), strings.Join(compliance.IDs(), ","); got != want {
		t.Errorf("provision order %s, want %s", got, want)
	}
	if rep.verdicts()["5.3-12"] == "" || rep.Summary["not_yet_demonstrable"] == 0 || len(rep.ShallsNotMet) == 0 {
		t.Errorf("summary %v, shalls not met %v", rep.Summary, rep.ShallsNotMet)
	}
	if !summaryRE.MatchString(r.stderr) {
		t.Errorf("no summary on stderr: %q", r.stderr)
	}
	// Titles as the texts have them (5.3-14 and 5.3-15 were swapped once).
	for _, p := range rep.Provisions {
		switch p.ID {
		case "5.3-12":
			if !strings.Contains(p.Title, "interrupt its basic functioning") {
				t.Errorf("5.3-12 title %q", p.Title)
			}
		case "5.3-14":
			if !strings.Contains(p.Title, "publishes why the device cannot be updated") {
				t.Errorf("5.3-14 title %q", p.Title)
			}
		case "5.3-15":
			if !strings.Contains(p.Title, "isolated and its hardware replaced") {
				t.Errorf("5.3-15 title %q", p.Title)
			}
		}
	}
}

// TestComplianceProductionAttested: a production project (passphrase from
// the environment) with a security release delivered, its market declared
// and every outside fact attested has every shall met or attested: exit 0.
// Withdrawing one attestation brings exit 3 back.
func TestComplianceProductionAttested(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	pass := map[string]string{"UPTRUST_PASSPHRASE": "correct horse battery staple"}
	mustRun(t, pass, "init", "--dir", dir)
	mustRun(t, pass, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31",
		"--model", "Thermostat T1", "--contact", "security@example.com", "--dir", dir)
	payload := writeFile(t, tmp, "fw.img", "firmware 1.0.1")
	mustRun(t, pass, "release", "add", "thermostat", "1.0.1", payload, "--kind", "security", "--security-version", "2",
		"--advisory", "CVE-2026-0001:buffer overflow in the scheduler", "--dir", dir)
	mustRun(t, pass, "rollout", "start", "thermostat", "1.0.1", "--percent", "100", "--dir", dir)

	r := run(t, pass, "compliance", "thermostat", "--json", "--dir", dir)
	if r.code != 3 {
		t.Fatalf("before attesting: %v; want exit 3", r)
	}
	rep := complianceJSON(t, r)
	wantVerdicts(t, rep, map[string]string{"5.3-7": "met", "5.3-8": "met", "CRA-13-8": "not met", "CRA-II-5": "not met"})

	r = mustRun(t, pass, "compliance", "market", "thermostat", "--placed-on", "2026-12-01", "--expected-use", "5y", "--dir", dir)
	if !strings.Contains(r.stdout, "thermostat: placed on the market 2026-12-01, expected in use 5y") {
		t.Errorf("market output: %s", r.stdout)
	}
	r = mustRun(t, pass, "compliance", "market", "thermostat", "--json", "--dir", dir)
	var m cli.MarketJSON
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.Product != "thermostat" || m.PlacedOn != "2026-12-01" || m.ExpectedUseMonths != 60 {
		t.Errorf("compliance market --json: %v %+v\n%s", err, m, r.stdout)
	}
	var attested []string
	for _, a := range compliance.Attestable() {
		if a.ID == "5.3-12" {
			continue // a should: left unattested, it must not fail the gate
		}
		mustRun(t, pass, "compliance", "attest", "thermostat", a.ID, "--url", "https://example.com/compliance/"+a.ID,
			"--note", "evidence for "+a.ID, "--by", "compliance team", "--dir", dir)
		attested = append(attested, a.ID)
	}
	r = run(t, pass, "compliance", "thermostat", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("every shall met or attested: %v; want exit 0", r)
	}
	if !strings.Contains(r.stdout, "attested by compliance team on ") || !strings.Contains(r.stdout, "uptrust has not checked it") {
		t.Errorf("text report does not show who attested and that it is unchecked:\n%s", r.stdout)
	}
	rep = complianceJSON(t, mustRun(t, pass, "compliance", "thermostat", "--json", "--dir", dir))
	want := map[string]string{"CRA-13-8": "met", "5.3-12": "not met", "5.3-7": "met"}
	for _, id := range attested {
		want[id] = "attested"
	}
	wantVerdicts(t, rep, want)
	for _, p := range rep.Provisions {
		if p.Verdict == "attested" && (p.Attestation == nil || p.Attestation.By != "compliance team" || p.Attestation.Time.IsZero() ||
			p.Attestation.URL != "https://example.com/compliance/"+p.ID) {
			t.Errorf("%s: attested without who, when and where: %+v", p.ID, p.Attestation)
		}
	}
	if len(rep.ShallsNotMet) != 0 || rep.Summary["attested"] != len(attested) {
		t.Errorf("shalls not met %v, summary %v", rep.ShallsNotMet, rep.Summary)
	}

	r = mustRun(t, pass, "compliance", "attestations", "thermostat", "--json", "--dir", dir)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != len(attested) {
		t.Errorf("attestations --json: %v, %d entries, want %d\n%s", err, len(list), len(attested), r.stdout)
	}
	mustRun(t, pass, "compliance", "withdraw", "thermostat", "CRA-II-5", "--dir", dir)
	r = run(t, pass, "compliance", "thermostat", "--dir", dir)
	if r.code != 3 || !strings.Contains(r.stderr, "not met: CRA-II-5") {
		t.Errorf("after withdrawing CRA-II-5: %v; want exit 3 naming CRA-II-5", r)
	}
	r = mustRun(t, pass, "compliance", "attestations", "thermostat", "--dir", dir)
	if !regexp.MustCompile(`(?m)^CRA-II-5 .* withdrawn \d{4}-\d\d-\d\d `).MatchString(r.stdout) {
		t.Errorf("attestations list does not show CRA-II-5 withdrawn:\n%s", r.stdout)
	}
}

func TestComplianceErrors(t *testing.T) {
	dir := complianceProject(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"compliance"}, 2, "compliance: want exactly one PRODUCT"},
		{[]string{"compliance", "toaster"}, 1, `compliance: product "toaster"`},
		{[]string{"compliance", "attest", "thermostat", "5.3-99", "--url", "https://example.com", "--note", "n"}, 1,
			`compliance: no provision "5.3-99"; items that can be attested: 5.3-12, 5.3-16, CRA-II-5`},
		{[]string{"compliance", "attest", "thermostat", "5.3-7", "--url", "https://example.com", "--note", "n"}, 1,
			"compliance: 5.3-7 is judged from the project alone and cannot be attested"},
		{[]string{"compliance", "attest", "thermostat", "CRA-II-5", "--note", "n"}, 2, "compliance attest: --url and --note are required"},
		{[]string{"compliance", "attest", "thermostat", "CRA-II-5", "--url", "https://example.com"}, 2, "--url and --note are required"},
		{[]string{"compliance", "attest", "thermostat", "CRA-II-5", "--url", "example.com/cvd", "--note", "n"}, 1,
			`--url "example.com/cvd": want an absolute http or https URL`},
		{[]string{"compliance", "attest", "thermostat", "--url", "https://example.com", "--note", "n"}, 2, "compliance attest: want PRODUCT ITEM"},
		{[]string{"compliance", "attest", "toaster", "CRA-II-5", "--url", "https://example.com", "--note", "n"}, 1, `no product "toaster"`},
		{[]string{"compliance", "withdraw", "thermostat", "CRA-II-5"}, 1, "thermostat has no standing attestation of CRA-II-5"},
		{[]string{"compliance", "market", "thermostat"}, 1, "thermostat has no market declaration"},
		{[]string{"compliance", "market", "thermostat", "--placed-on", "2027-01-01"}, 2, "--placed-on and --expected-use are both required"},
		{[]string{"compliance", "market", "thermostat", "--placed-on", "2027-01-01", "--expected-use", "seven years"}, 1,
			`--expected-use: time in use "seven years": want years and months such as 7y, 18m or 5y6m`},
	} {
		r := run(t, nil, append(c.args, "--dir", dir)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("uptrust %s: %v\nwant exit %d and %q", strings.Join(c.args, " "), r, c.code, c.want)
		}
	}
	if r := run(t, nil, "compliance", "thermostat", "--dir", filepath.Join(t.TempDir(), "none")); r.code != 1 || !strings.Contains(r.stderr, "not an uptrust project") {
		t.Errorf("compliance outside a project: %v", r)
	}
}

// TestUsageListsCompliance: the global help lists the report and each
// subcommand, and compliance --help (which also runs the report, beside
// its subcommands) lists the subcommands and exit 3.
func TestUsageListsCompliance(t *testing.T) {
	r := run(t, nil, "--help")
	for _, want := range []string{"compliance PRODUCT", "compliance attest PRODUCT ITEM", "compliance market PRODUCT", "3  compliance"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("uptrust --help lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, nil, "compliance", "--help")
	for _, want := range []string{"usage: uptrust compliance [flags] PRODUCT", "--json", "subcommands:", "attest PRODUCT ITEM", "withdraw PRODUCT ITEM", "attestations PRODUCT", "market PRODUCT", "exit"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("uptrust compliance --help: exit %d, lacks %q:\n%s", r.code, want, r.stdout)
		}
	}
	r = run(t, nil, "compliance", "attest", "--help")
	for _, want := range []string{"--url", "--note", "--by"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("uptrust compliance attest --help: exit %d, lacks %q:\n%s", r.code, want, r.stdout)
		}
	}
}
