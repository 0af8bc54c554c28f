package cli_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/cli"
)

// reportTime matches the time a compliance report was made, in its text and
// JSON forms: two runs differ there and nowhere else.
var reportTime = regexp.MustCompile(`(?m)^compliance of (\S+) at [^(]*|^  "time": "[^"]*"`)

// TestRemoteCompliance: a release manager records attestations and the
// market declaration through the server; compliance attestations, market
// and the report print with --server what they print with --dir (the
// report but for the time it was made); the entries name the token;
// roles without the products permission are refused.
func TestRemoteCompliance(t *testing.T) {
	s := serveWithAdmin(t)
	r := mustRun(t, nil, s.as("release-manager", "compliance", "attest", "thermostat", "CRA-II-5", "--url", "https://example.com/cvd",
		"--note", "disclosure policy", "--by", "security team")...)
	if !strings.HasPrefix(r.stdout, "attested CRA-II-5 of thermostat at ") || !strings.HasSuffix(r.stdout, ": disclosure policy (https://example.com/cvd)\n") {
		t.Errorf("compliance attest --server: %q", r.stdout)
	}
	mustRun(t, nil, s.as("release-manager", "compliance", "attest", "thermostat", "5.3-12", "--url", "https://example.com/a", "--note", "n")...)
	r = mustRun(t, nil, s.as("release-manager", "compliance", "withdraw", "thermostat", "5.3-12")...)
	if r.stdout != "withdrew the attestation of 5.3-12 of thermostat; it stays on record\n" {
		t.Errorf("compliance withdraw --server: %q", r.stdout)
	}
	if r := run(t, nil, s.as("auditor", "compliance", "market", "thermostat")...); r.code != 1 || !strings.Contains(r.stderr, "thermostat has no market declaration") {
		t.Errorf("compliance market --server before a declaration: %v", r)
	}
	mustRun(t, nil, s.as("release-manager", "compliance", "market", "thermostat", "--placed-on", "2027-03-01", "--expected-use", "3y", "--justification", "seasonal")...)

	for _, args := range [][]string{
		{"compliance", "attestations", "thermostat"}, {"compliance", "attestations", "thermostat", "--json"},
		{"compliance", "market", "thermostat"}, {"compliance", "market", "thermostat", "--json"},
		{"compliance", "thermostat"}, {"compliance", "thermostat", "--json"},
	} {
		// The report measures times from now: a remote answer must match
		// a local one made just before or just after it.
		local1 := run(t, nil, append(args, "--dir", s.dir)...)
		remote := run(t, nil, s.as("auditor", args...)...)
		local2 := run(t, nil, append(args, "--dir", s.dir)...)
		norm := func(s string) string { return reportTime.ReplaceAllString(s, "compliance of $1 at TIME") }
		if remote.code != local1.code || norm(remote.stdout) != norm(local1.stdout) && norm(remote.stdout) != norm(local2.stdout) {
			t.Errorf("uptrust %s: --server exit %d prints\n%s\n--dir exit %d prints\n%s", strings.Join(args, " "), remote.code, remote.stdout, local1.code, local1.stdout)
		}
		if remote.stdout == "" {
			t.Errorf("uptrust %s --server printed nothing: %v", strings.Join(args, " "), remote)
		}
	}
	var as []cli.AttestationJSON
	if err := json.Unmarshal([]byte(mustRun(t, nil, s.as("auditor", "compliance", "attestations", "thermostat", "--json")...).stdout), &as); err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || as[0].Item != "5.3-12" || as[0].Withdrawn == nil || as[1].By != "security team" || as[1].Withdrawn != nil {
		t.Errorf("attestations: %+v", as)
	}
	r = mustRun(t, nil, "audit", "--actor", "t-release-manager", "--json", "--dir", s.dir)
	var es []cli.AuditEntryJSON
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Action+" "+e.Object+" "+e.Role+" "+e.Outcome)
	}
	want := "compliance.attest thermostat/CRA-II-5 release-manager ok,compliance.attest thermostat/5.3-12 release-manager ok," +
		"compliance.withdraw thermostat/5.3-12 release-manager ok,product.market thermostat release-manager ok"
	if strings.Join(got, ",") != want {
		t.Errorf("entries by t-release-manager:\n%s\nwant\n%s", strings.Join(got, ","), want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{s.as("operator", "compliance", "attest", "thermostat", "CRA-II-5", "--url", "https://example.com", "--note", "n"), "server: 403 Forbidden"},
		{s.as("admin", "compliance", "withdraw", "thermostat", "CRA-II-5"), "server: 403 Forbidden"},
		{s.as("auditor", "compliance", "market", "thermostat", "--placed-on", "2027-01-01", "--expected-use", "1y"), "server: 403 Forbidden"},
		{s.as("release-manager", "compliance", "withdraw", "thermostat", "5.3-12"), "server: 404 Not Found: project: thermostat has no standing attestation of 5.3-12"},
		{s.as("release-manager", "compliance", "attest", "thermostat", "5.3-7", "--url", "https://example.com", "--note", "n"), "cannot be attested"},
		{s.as("auditor", "compliance", "toaster"), "server: 404"},
	} {
		r := run(t, nil, tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("uptrust %s: want exit 1 and %q\n%v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
}
