package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/compliance"
)

// TestComplianceRoutes: a release manager attests, lists, withdraws and
// declares the market through the API, each audited once with the token;
// bad input is refused (422/404) with a refused entry; the report an
// auditor reads shows the attestation as attested, as the CLI's report
// does.
func TestComplianceRoutes(t *testing.T) {
	e := newEnv(t)
	const base = "/api/v1/products/thermostat"
	resp, b := e.do("POST", base+"/attestations", "release-manager",
		`{"item":"CRA-II-5","url":"https://example.com/cvd","note":"disclosure policy published","by":"security team"}`, "X-Request-Id", "attest-ok")
	if resp.StatusCode != 201 {
		t.Fatalf("POST attestation: %d %s", resp.StatusCode, b)
	}
	if got := e.auditWith("attest-ok"); len(got) != 1 || got[0] != "compliance.attest thermostat/CRA-II-5 ok t-release-manager (release-manager) attest-ok: url https://example.com/cvd" {
		t.Errorf("audit of the attestation: %q", got)
	}
	resp, b = e.do("GET", base+"/attestations", "auditor", "")
	var page api.Page[api.Attestation]
	if err := json.Unmarshal(b, &page); err != nil || resp.StatusCode != 200 || len(page.Items) != 1 || page.Items[0].By != "security team" || page.Items[0].Withdrawn != nil {
		t.Errorf("GET attestations: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("GET", base+"/compliance", "auditor", "")
	var rep compliance.Report
	if err := json.Unmarshal(b, &rep); err != nil || resp.StatusCode != 200 || rep.Product != "thermostat" {
		t.Fatalf("GET compliance: %d %s", resp.StatusCode, b)
	}
	for _, p := range rep.Provisions {
		if p.ID == "CRA-II-5" && (p.Status != compliance.Attested || p.Attestation == nil) {
			t.Errorf("report: CRA-II-5 %+v, want attested", p)
		}
	}
	resp, b = e.do("DELETE", base+"/attestations/CRA-II-5", "release-manager", "", "X-Request-Id", "withdraw-ok")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"withdrawn":1`) {
		t.Errorf("DELETE attestation: %d %s", resp.StatusCode, b)
	}
	if got := e.auditWith("withdraw-ok"); len(got) != 1 || !strings.HasPrefix(got[0], "compliance.withdraw thermostat/CRA-II-5 ok t-release-manager") {
		t.Errorf("audit of the withdrawal: %q", got)
	}
	resp, b = e.do("PUT", base+"/market", "release-manager", `{"placed_on":"2027-03-01","expected_use":"3y","justification":"seasonal"}`, "X-Request-Id", "market-ok")
	var m api.Market
	if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != 200 || m.PlacedOn != "2027-03-01" || m.ExpectedUseMonths != 36 {
		t.Errorf("PUT market: %d %s", resp.StatusCode, b)
	}
	if got := e.auditWith("market-ok"); len(got) != 1 || !strings.Contains(got[0], "product.market thermostat ok t-release-manager (release-manager) market-ok: placed on 2027-03-01; expected use 3y") {
		t.Errorf("audit of the market declaration: %q", got)
	}
	if resp, b := e.do("GET", base+"/market", "auditor", ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"justification":"seasonal"`) {
		t.Errorf("GET market: %d %s", resp.StatusCode, b)
	}

	for i, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", base + "/attestations", `{"item":"5.3-7","url":"https://example.com","note":"n"}`, 422, "cannot be attested"},
		{"POST", base + "/attestations", `{"item":"CRA-II-5","url":"example.com/cvd","note":"n"}`, 422, "absolute http or https URL"},
		{"POST", base + "/attestations", `{"item":"CRA-II-5","url":"https://example.com","note":"  "}`, 422, "note"},
		{"POST", base + "/attestations", `{"item":"CRA-II-5","url":"https://example.com","note":"n","extra":1}`, 400, "unknown field"},
		{"POST", "/api/v1/products/toaster/attestations", `{"item":"CRA-II-5","url":"https://example.com","note":"n"}`, 404, "toaster"},
		{"DELETE", base + "/attestations/CRA-II-5", "", 404, "no standing attestation of CRA-II-5"},
		{"DELETE", "/api/v1/products/toaster/attestations/CRA-II-5", "", 404, "toaster"},
		{"PUT", base + "/market", `{"placed_on":"2027-13-01","expected_use":"3y"}`, 422, "placed_on"},
		{"PUT", base + "/market", `{"placed_on":"2027-03-01","expected_use":"forever"}`, 422, "expected_use"},
		{"PUT", "/api/v1/products/toaster/market", `{"placed_on":"2027-03-01","expected_use":"3y"}`, 404, "toaster"},
	} {
		id := "compliance-bad-" + string(rune('a'+i))
		resp, b := e.do(tc.method, tc.path, "release-manager", tc.body, "X-Request-Id", id)
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d naming %q", tc.method, tc.path, tc.body, resp.StatusCode, b, tc.status, tc.want)
		}
		if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], " refused t-release-manager (release-manager) "+id) {
			t.Errorf("%s %s %s: audit %q, want one refused entry", tc.method, tc.path, tc.body, got)
		}
	}
	for _, path := range []string{"/api/v1/products/toaster/compliance", "/api/v1/products/toaster/market", "/api/v1/products/toaster/attestations"} {
		if resp, _ := e.do("GET", path, "auditor", ""); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}
