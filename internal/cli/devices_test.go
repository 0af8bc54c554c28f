package cli_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
)

// TestRemoteDevices: the operator's fleet commands against a running
// server (--server) and on the project directory (--dir) print the same;
// a device enrolled with a token made by `enrollment-token create` is
// listed, accepted, exported and erased; the auditor reads devices but
// changes nothing, the release manager does not read them.
func TestRemoteDevices(t *testing.T) {
	s := serveWithAdmin(t)
	r := mustRun(t, nil, s.as("operator", "product", "mode", "thermostat", "managed")...)
	if !strings.Contains(r.stdout, "product thermostat: mode managed, inventory fields (none)") {
		t.Errorf("product mode: %v", r)
	}
	r = mustRun(t, nil, s.as("operator", "product", "inventory", "thermostat", "--fields", "version,slot")...)
	if !strings.Contains(r.stdout, "inventory fields slot,version") {
		t.Errorf("product inventory: %v", r)
	}
	if r := run(t, nil, s.as("operator", "product", "inventory", "thermostat", "--fields", "version,serial")...); r.code != 1 || !strings.Contains(r.stderr, "server: 422") || !strings.Contains(r.stderr, "serial") {
		t.Errorf("undeclarable field: %v", r)
	}
	r = mustRun(t, nil, s.as("operator", "enrollment-token", "create", "--product", "thermostat", "--uses", "2", "--expires", "24h")...)
	token := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(token, "uptrust-enroll_") {
		t.Fatalf("enrollment-token create printed %q", r.stdout)
	}

	// The device side is not a command yet: enrol through the project.
	p := openProject(t, s.dir)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	d, err := p.Enroll(t.Context(), "thermostat", pub, token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpdateInventory(t.Context(), d.ID, map[string]string{"version": "1.1.0", "slot": "b"}); err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	mustRun(t, nil, s.as("operator", "device", "preauthorize", "--product", "thermostat", "--key", base64.StdEncoding.EncodeToString(other))...)
	mustRun(t, nil, s.as("operator", "device", "accept", d.ID)...)

	for _, args := range [][]string{
		{"device", "list"}, {"device", "list", "--json"}, {"device", "list", "--state", "accepted", "--json"},
		{"device", "show", d.ID}, {"device", "show", d.ID, "--json"}, {"device", "export", d.ID},
		{"product", "mode", "thermostat"}, {"product", "mode", "thermostat", "--json"},
	} {
		local := mustRun(t, nil, append(args, "--dir", s.dir)...)
		remote := mustRun(t, nil, s.as("auditor", args...)...)
		if local.stdout != remote.stdout {
			t.Errorf("uptrust %s: --server prints\n%s\n--dir prints\n%s", strings.Join(args, " "), remote.stdout, local.stdout)
		}
	}
	local := mustRun(t, nil, "enrollment-token", "list", "--json", "--dir", s.dir)
	remote := mustRun(t, nil, s.as("operator", "enrollment-token", "list", "--json")...)
	if local.stdout != remote.stdout || strings.Contains(local.stdout, token) {
		t.Errorf("enrollment-token list: --server\n%s\n--dir\n%s", remote.stdout, local.stdout)
	}
	r = mustRun(t, nil, s.as("operator", "device", "export", d.ID)...)
	var x api.DeviceExport
	if err := json.Unmarshal([]byte(r.stdout), &x); err != nil {
		t.Fatal(err)
	}
	if x.Device.State != "accepted" || x.Device.Inventory["slot"] != "b" || len(x.Audit) != 2 {
		t.Errorf("export: %+v", x)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{s.as("auditor", "device", "accept", d.ID), "server: 403"},
		{s.as("auditor", "device", "erase", d.ID), "server: 403"},
		{s.as("release-manager", "device", "list"), "server: 403"},
		{s.as("admin", "enrollment-token", "create", "--product", "thermostat"), "server: 403"},
		{s.as("operator", "device", "accept", d.ID), "server: 409"},
		{s.as("operator", "product", "mode", "thermostat", "anonymous"), "server: 409"},
	} {
		if r := run(t, nil, tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("uptrust %s: want exit 1 and %q\n%v", strings.Join(tc.args, " "), tc.want, r)
		}
	}

	mustRun(t, nil, s.as("operator", "device", "erase", d.ID)...)
	if r := run(t, nil, s.as("auditor", "device", "show", d.ID)...); r.code != 1 || !strings.Contains(r.stderr, "server: 404") {
		t.Errorf("device show after erase: %v", r)
	}
	if r := run(t, nil, "device", "show", d.ID, "--dir", s.dir); r.code != 1 {
		t.Errorf("device show --dir after erase: %v", r)
	}
}
