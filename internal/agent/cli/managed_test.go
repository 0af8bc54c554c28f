package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/devicetest"
)

// managed turns the device into a managed one talking to ds.
func (d *device) managed(ds *devicetest.Server) {
	d.t.Helper()
	b, err := os.ReadFile(d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		d.t.Fatal(err)
	}
	c["server"], c["mode"] = ds.URL, "managed"
	if b, err = json.Marshal(c); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(d.cfg, b, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func TestManagedCheckExitCodesAndStatus(t *testing.T) {
	ds := devicetest.New(t)
	ds.Fields = []string{"version"}
	d := newDevice(t)
	d.managed(ds)

	code, out, stderr := d.run("", "check")
	if code != ExitEnrolmentPending || !strings.Contains(out, "pending: enrolment pending (device id dev-1)") {
		t.Fatalf("check: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	keyID, err := agent.DeviceKeyID(filepath.Join(d.data, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = d.run("", "status")
	if code != 0 || !strings.Contains(out, "mode:             managed, device key "+keyID) ||
		!strings.Contains(out, "enrolment:        enrolment pending (device id dev-1)") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	code, out, _ = d.run("", "status", "--json")
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Mode != "managed" || st.DeviceKeyID != keyID ||
		st.Enrolment == nil || st.Enrolment.State != "pending" || st.Enrolment.DeviceID != "dev-1" {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}

	ds.SetState(keyID, "decommissioned")
	code, out, stderr = d.run("", "check")
	if code != ExitDeviceRefused || !strings.Contains(out, "refused: the server decommissioned this device (device id dev-1") {
		t.Fatalf("check of a decommissioned device: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	if _, out, _ = d.run("", "status"); !strings.Contains(out, "enrolment:        REFUSED: the server decommissioned this device") {
		t.Fatalf("status:\n%s", out)
	}
	for _, r := range ds.Requests() {
		if !r.Signed || r.VerifyErr != "" || r.KeyID != keyID || strings.HasPrefix(r.Path, "/repo/") {
			t.Fatalf("%s %s: signed %v by %q (%s)", r.Method, r.Path, r.Signed, r.KeyID, r.VerifyErr)
		}
	}
}

func TestManagedCheckKeyFileProblem(t *testing.T) {
	ds := devicetest.New(t)
	d := newDevice(t)
	d.managed(ds)
	key := filepath.Join(d.data, "device.key")
	if err := os.WriteFile(key, []byte("not a key"), 0o640); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := d.run("", "check")
	if code != 1 || !strings.Contains(stderr, key+" has mode 0640") {
		t.Fatalf("check: exit %d, stderr %s", code, stderr)
	}
	if _, out, _ := d.run("", "status"); !strings.Contains(out, "WARNING:          agent: device key "+key+" has mode 0640") {
		t.Fatalf("status:\n%s", out)
	}
	if n := len(ds.Requests()); n != 0 {
		t.Fatalf("a device with a bad key sent %d requests", n)
	}
}
