package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/fleetsim"
)

// managedServe is serveWithAdmin with thermostat managed (inventory
// version and slot declared), 1.2.0 rolled out to every device in one
// wave, and an auto-accepting enrolment token for 10 devices in a file.
func managedServe(t *testing.T) (*served, string) {
	t.Helper()
	s := serveWithAdmin(t)
	mustRun(t, nil, s.as("operator", "product", "mode", "thermostat", "managed")...)
	mustRun(t, nil, s.as("operator", "product", "inventory", "thermostat", "--fields", "version,slot")...)
	r := mustRun(t, nil, s.as("operator", "enrollment-token", "create", "--product", "thermostat", "--uses", "10", "--auto-accept")...)
	tokenFile := writeFile(t, t.TempDir(), "token", r.stdout)
	// A managed rollout of one wave that never halts (the runs below fail
	// on purpose); the server's views assign it (project.AssignDevice
	// reads the store's generation), nothing waits for a poll.
	mustRun(t, nil, s.as("operator", "rollout", "start", "thermostat", "1.2.0", "--waves", "100%", "--max-failure", "100%",
		"--min-success", "0", "--soak", "0s")...)
	return s, tokenFile
}

func runSim(t *testing.T, s *served, tokenFile string, extra ...string) (*fleetsim.Summary, result) {
	t.Helper()
	args := append([]string{"sim", "--server", "http://" + s.public, "--product", "thermostat", "--dir", s.dir,
		"--token-file", tokenFile, "--interval", "5ms", "--json"}, extra...)
	r := run(t, nil, args...)
	var sum fleetsim.Summary
	if r.stdout != "" {
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
			t.Fatalf("sim --json printed %q: %v", r.stdout, err)
		}
	}
	return &sum, r
}

// TestSim: simulated devices enrol with an auto-accepting token against
// a real `uptrust serve` (every request signed and verified), verify both
// repositories, install 1.2.0 and send the succeeded event; with
// --fail-ratio 1 every install fails and the failed event is in the
// device's history.
func TestSim(t *testing.T) {
	s, tokenFile := managedServe(t)
	sum, r := runSim(t, s, tokenFile, "--devices", "3", "--checks", "2")
	if r.code != 0 {
		t.Fatalf("sim: %v", r)
	}
	if sum.Enrolled != 3 || sum.Accepted != 3 || sum.Succeeded != 3 || sum.Failed != 0 || sum.Errors != 0 ||
		sum.Checks != 6 || sum.Versions["1.2.0"] != 3 || sum.PayloadBytes == 0 {
		t.Errorf("summary: %+v", sum)
	}
	devs := deviceList(t, s)
	if len(devs) != 3 {
		t.Fatalf("devices after the run: %+v", devs)
	}
	for _, d := range devs {
		// After the update the device enrolled again with its new
		// inventory (the agent's rule): the server has 1.2.0 on slot b.
		if d.State != "accepted" || d.Inventory["version"] != "1.2.0" || d.Inventory["slot"] != "b" {
			t.Errorf("device %+v", d)
		}
		x := deviceExport(t, s, d.ID)
		if len(x.Events) != 1 || x.Events[0].Kind != "succeeded" || x.Events[0].Version != "1.2.0" {
			t.Errorf("history of %s: %+v", d.ID, x.Events)
		}
	}

	sum, r = runSim(t, s, tokenFile, "--devices", "2", "--checks", "3", "--fail-ratio", "1")
	if r.code != 0 {
		t.Fatalf("sim --fail-ratio 1: %v", r)
	}
	// A failed release is not tried again: one failure per device.
	if sum.Accepted != 2 || sum.Succeeded != 0 || sum.Failed != 2 || sum.Versions["1.0.0"] != 2 || sum.Errors != 0 {
		t.Errorf("summary with --fail-ratio 1: %+v", sum)
	}
	failed := 0
	for _, d := range deviceList(t, s) {
		for _, e := range deviceExport(t, s, d.ID).Events {
			if e.Kind == "failed" && e.Version == "1.2.0" && e.ErrorClass == "health-check" {
				failed++
			}
		}
	}
	if failed != 2 {
		t.Errorf("%d failed events stored, want 2", failed)
	}

	// --full-verify: go-tuf runs at the first check, at the check after
	// the device enrolled again with its new inventory, and at both polls.
	sum, r = runSim(t, s, tokenFile, "--devices", "1", "--checks", "2", "--full-verify")
	if r.code != 0 || sum.Verified != 4 || sum.Checks != 2 || sum.Succeeded != 1 {
		t.Errorf("sim --full-verify: %+v, %v", sum, r)
	}
	// Without it a settled device polls as the managed agent does: one
	// conditional request of its fleet timestamp, answered 304. (The new
	// inventory the device enrolled with after its install changed its
	// view; the unmeasured first checks made the full check that follows.)
	// With --full-check-every below the polling interval every poll is
	// full.
	sum, r = runSim(t, s, tokenFile, "--devices", "1", "--checks", "3")
	if r.code != 0 || sum.Verified != 2 || sum.Checks != 3 || sum.Requests != 3 || sum.Errors != 0 {
		t.Errorf("sim, conditional checks: %+v, %v", sum, r)
	}
	sum, r = runSim(t, s, tokenFile, "--devices", "1", "--checks", "2", "--full-check-every", "1ns")
	if r.code != 0 || sum.Verified != 4 || sum.Checks != 2 || sum.Requests != 8 {
		t.Errorf("sim --full-check-every 1ns: %+v, %v", sum, r)
	}

	// The text summary.
	r = run(t, nil, "sim", "--server", "http://"+s.public, "--product", "thermostat", "--dir", s.dir,
		"--token-file", tokenFile, "--devices", "1", "--checks", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "1 enrolled, 1 accepted") || !strings.Contains(r.stdout, "1 succeeded, 0 failed") {
		t.Errorf("sim: %v", r)
	}
}

// TestSimBadInput: a server that does not answer, a URL that is not one,
// a token the server refuses, a fail ratio out of range and missing roots
// are clear errors.
func TestSimBadInput(t *testing.T) {
	s, tokenFile := managedServe(t)
	bogus := writeFile(t, t.TempDir(), "bogus", "uptrust-enroll_not-a-token\n")
	empty := writeFile(t, t.TempDir(), "empty", "\n")
	base := []string{"sim", "--product", "thermostat", "--dir", s.dir, "--devices", "2", "--checks", "1", "--interval", "5ms"}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--server", "http://127.0.0.1:1", "--token-file", tokenFile}, 1, "does not answer"},
		{[]string{"--server", "ftp://" + s.public, "--token-file", tokenFile}, 1, "want http://HOST"},
		{[]string{"--server", "http://" + s.admin, "--token-file", tokenFile}, 1, "is not an uptrust server"},
		{[]string{"--server", "http://" + s.public, "--token-file", bogus}, 1, "token-invalid"},
		{[]string{"--server", "http://" + s.public, "--token-file", empty}, 1, "is empty"},
		{[]string{"--server", "http://" + s.public, "--token-file", filepath.Join(t.TempDir(), "none")}, 1, "enrolment token"},
		{[]string{"--server", "http://" + s.public, "--token-file", tokenFile, "--fail-ratio", "1.5"}, 1, "fail ratio 1.5"},
		{[]string{"--server", "http://" + s.public, "--token-file", tokenFile, "--release-root", bogus}, 1, "release root"},
		{[]string{"--server", "http://" + s.public, "--token-file", tokenFile, "--rounds", "2"}, 1, "rounds need a duration"},
		{[]string{"--token-file", tokenFile}, 2, "--server and --product are required"},
		{[]string{"--server", "http://" + s.public, "--token-file", tokenFile, "--full-check-every", "0s"}, 2, "--full-check-every 0s: want a positive duration"},
	} {
		r := run(t, nil, append(base, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sim %s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
	// Nothing was enrolled by any of them.
	if devs := deviceList(t, s); len(devs) != 0 {
		t.Errorf("refused runs enrolled devices: %+v", devs)
	}
}

func deviceList(t *testing.T, s *served) []api.Device {
	t.Helper()
	r := mustRun(t, nil, s.as("auditor", "device", "list", "--json")...)
	var devs []api.Device
	if err := json.Unmarshal([]byte(r.stdout), &devs); err != nil {
		t.Fatalf("device list --json: %v in %q", err, r.stdout)
	}
	return devs
}

func deviceExport(t *testing.T, s *served, id string) api.DeviceExport {
	t.Helper()
	r := mustRun(t, nil, s.as("auditor", "device", "export", id)...)
	var x api.DeviceExport
	if err := json.Unmarshal([]byte(r.stdout), &x); err != nil {
		t.Fatalf("device export: %v in %q", err, r.stdout)
	}
	return x
}

// TestSimPending: devices enrolled with a token that does not accept them
// wait, asking their state at each poll, until the operator accepts them;
// then they update.
func TestSimPending(t *testing.T) {
	s, _ := managedServe(t)
	r := mustRun(t, nil, s.as("operator", "enrollment-token", "create", "--product", "thermostat", "--uses", "2")...)
	tokenFile := writeFile(t, t.TempDir(), "token", r.stdout)
	done := make(chan result, 1)
	go func() {
		done <- run(t, nil, "sim", "--server", "http://"+s.public, "--product", "thermostat", "--dir", s.dir,
			"--token-file", tokenFile, "--interval", "20ms", "--devices", "2", "--checks", "1", "--json")
	}()
	accepted := 0
	for accepted < 2 {
		for _, d := range deviceList(t, s) {
			if d.State == "pending" {
				mustRun(t, nil, s.as("operator", "device", "accept", d.ID)...)
				accepted++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r = <-done
	var sum fleetsim.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); r.code != 0 || err != nil {
		t.Fatalf("sim: %v (%v)", r, err)
	}
	if sum.Enrolled != 2 || sum.Accepted != 2 || sum.Succeeded != 2 || sum.Versions["1.2.0"] != 2 || sum.Errors != 0 {
		t.Errorf("summary: %+v", sum)
	}
}

// TestSimDecommissioned: a device decommissioned while it polls is refused
// at its next check, learns its state from the device API and stops; the
// other one keeps polling.
func TestSimDecommissioned(t *testing.T) {
	s, tokenFile := managedServe(t)
	done := make(chan result, 1)
	go func() {
		done <- run(t, nil, "sim", "--server", "http://"+s.public, "--product", "thermostat", "--dir", s.dir,
			"--token-file", tokenFile, "--interval", "5ms", "--devices", "2", "--checks", "1000", "--json")
	}()
	var victim string
	for victim == "" {
		for _, d := range deviceList(t, s) {
			if len(deviceExport(t, s, d.ID).Events) > 0 {
				victim = d.ID
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustRun(t, nil, s.as("operator", "device", "decommission", victim)...)
	r := <-done
	var sum fleetsim.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); r.code != 0 || err != nil {
		t.Fatalf("sim: %v (%v)", r, err)
	}
	// The victim learns it at its next signed request: a refused check (an
	// error, then GET state), or its enrolment again with the inventory of
	// the release it just installed (no error).
	if sum.Refused != 1 || sum.Accepted != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	for _, k := range sum.ErrorKinds {
		if !strings.Contains(k.Example, "403") || !strings.Contains(k.Example, "decommissioned") {
			t.Errorf("error %+v: want a 403 decommissioned refusal", k)
		}
	}
}
