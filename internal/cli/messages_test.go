package cli_test

import (
	"strings"
	"testing"
)

// TestUnknownProductMessage: every command naming a product that does not
// exist says so, lists the products and suggests the nearest, instead of
// the storage layers' error chain.
func TestUnknownProductMessage(t *testing.T) {
	dir := devProject(t)
	payload := writeFile(t, t.TempDir(), "fw.img", "firmware")
	want := `no product "thermostst"; products are: thermostat (did you mean "thermostat"?)`
	for _, args := range [][]string{
		{"product", "show", "thermostst"},
		{"product", "support", "extend", "thermostst", "--until", "2040-01-01"},
		{"release", "list", "thermostst"},
		{"release", "add", "thermostst", "1.0.0", payload, "--kind", "fix", "--security-version", "1"},
		{"rollout", "start", "thermostst", "1.0.0", "--percent", "10"},
		{"rollout", "halt", "thermostst"},
		{"reports", "thermostst"},
	} {
		r := run(t, nil, append(args, "--dir", dir)...)
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "store") {
			t.Errorf("uptrust %s: want %q:\n%v", strings.Join(args, " "), want, r)
		}
	}
}

// TestSecurityVersionNamesHighest: a security version below the published
// ones is refused naming the release with the highest, so one retry is
// enough.
func TestSecurityVersionNamesHighest(t *testing.T) {
	dir := devProject(t)
	payload := writeFile(t, t.TempDir(), "fw.img", "firmware")
	for _, rel := range []struct{ v, sv string }{{"1.0.0", "1"}, {"2.0.0", "3"}, {"3.0.0", "5"}} {
		mustRun(t, nil, "release", "add", "thermostat", rel.v, payload, "--kind", "fix", "--security-version", rel.sv, "--dir", dir)
	}
	r := run(t, nil, "release", "add", "thermostat", "4.0.0", payload, "--kind", "fix", "--security-version", "2", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "the earlier release 3.0.0 has 5 (the highest)") || !strings.Contains(r.stderr, "--security-version 5") {
		t.Errorf("security version 2 below 5: %v", r)
	}
}

// TestVersionBelowNewestWarns: publishing a version below the newest warns
// that devices on the newer releases will never install it.
func TestVersionBelowNewestWarns(t *testing.T) {
	dir := devProject(t)
	payload := writeFile(t, t.TempDir(), "fw.img", "firmware")
	r := mustRun(t, nil, "release", "add", "thermostat", "2.0.0", payload, "--kind", "fix", "--security-version", "1", "--dir", dir)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("first release warned:\n%v", r)
	}
	r = mustRun(t, nil, "release", "add", "thermostat", "1.5.0", payload, "--kind", "fix", "--security-version", "1", "--dir", dir)
	if !strings.Contains(r.stderr, "uptrust: warning: thermostat 1.5.0 is below the newest published release 2.0.0") ||
		!strings.Contains(r.stderr, "never install it") || strings.Contains(r.stdout, "warning") {
		t.Errorf("release below the newest: %v", r)
	}
}

// TestSupportDateInPast: extending support to a date that has passed is
// refused; adding a product whose support has ended (for a late fix) is
// done with a warning.
func TestSupportDateInPast(t *testing.T) {
	dir := devProject(t)
	r := run(t, nil, "product", "add", "doorbell", "--hardware", "rev-a", "--support-until", "2020-01-01", "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "uptrust: warning: project: support until 2020-01-01 is in the past") ||
		!strings.Contains(r.stderr, "devices will report that their support has ended") {
		t.Errorf("product add with a past date: %v", r)
	}
	r = run(t, nil, "product", "support", "extend", "thermostat", "--until", "2021-06-30", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "support until 2021-06-30 is in the past") {
		t.Errorf("support extend to a past date: %v", r)
	}
}
