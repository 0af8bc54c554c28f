package agent

import (
	"bytes"
	"context"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/devicetest"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
)

// managedWorld is a test world behind a device-protocol server that
// verifies every signature and passes the rest on to the uptrust server.
func managedWorld(t *testing.T, fields ...string) (*testWorld, *devicetest.Server) {
	t.Helper()
	w := newTestWorld(t)
	ds := devicetest.New(t)
	ds.Fields = fields
	u, err := url.Parse(w.url)
	if err != nil {
		t.Fatal(err)
	}
	ds.Next = httputil.NewSingleHostReverseProxy(u)
	return w, ds
}

// managedDevice is a device of w that talks to ds, in mode (with change
// applied before validation).
func managedDevice(t *testing.T, w *testWorld, ds *devicetest.Server, mode string, change func(*Config)) *testDevice {
	t.Helper()
	d := w.device()
	d.cfg.Server, d.cfg.Mode, d.cfg.KeyFile = ds.URL, mode, ""
	if change != nil {
		change(d.cfg)
	}
	if err := d.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return d
}

// check runs one check with a fresh agent (a restart) whose version is
// 9.9.9.
func (d *testDevice) managedCheck() (*Check, error) {
	d.t.Helper()
	a := d.agent()
	a.agentVersion = "9.9.9"
	return a.Check(context.Background())
}

// requests are the requests ds saw, split by kind; every signed one must
// have verified.
func requests(t *testing.T, ds *devicetest.Server) (enrols []devicetest.Request, states, repo int) {
	t.Helper()
	for _, r := range ds.Requests() {
		if r.VerifyErr != "" {
			t.Errorf("%s %s: signature refused: %s", r.Method, r.Path, r.VerifyErr)
		}
		switch {
		case r.Path == "/api/device/v1/enroll":
			enrols = append(enrols, r)
		case r.Path == "/api/device/v1/state":
			states++
		case strings.HasPrefix(r.Path, "/repo/"):
			repo++
		}
	}
	return enrols, states, repo
}

func TestManagedFirstStartCreatesKeyAndEnrols(t *testing.T) {
	w, ds := managedWorld(t, "version", "hardware", "agent_version")
	d := managedDevice(t, w, ds, ModeManaged, nil)
	if want := filepath.Join(d.cfg.DataDir, "device.key"); d.cfg.KeyFile != want {
		t.Fatalf("default key file %q, want %q", d.cfg.KeyFile, want)
	}
	chk, err := d.managedCheck()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Action != ActionPending || !strings.Contains(chk.Reason, "enrolment pending (device id dev-1)") {
		t.Fatalf("check: %+v", chk)
	}
	fi, err := os.Stat(d.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	keyID, err := DeviceKeyID(d.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	devs := ds.Devices()
	dev, ok := devs[keyID]
	if !ok || len(devs) != 1 || dev.State != EnrolPending || dev.ID != "dev-1" {
		t.Fatalf("server devices %+v, want dev-1 pending under keyid %s", devs, keyID)
	}
	enrols, states, repo := requests(t, ds)
	if repo != 0 {
		t.Fatalf("a pending device fetched %d /repo/ files", repo)
	}
	if len(enrols) != 2 || states != 1 {
		t.Fatalf("%d enrolments and %d state requests, want 2 and 1", len(enrols), states)
	}
	for _, r := range ds.Requests() {
		if !r.Signed || r.KeyID != keyID {
			t.Fatalf("%s %s: signed %v by %q, want signed by %s", r.Method, r.Path, r.Signed, r.KeyID, keyID)
		}
	}
	// The first enrolment knows no declared fields and sends none; the
	// second sends exactly the declared ones.
	if len(enrols[0].Inventory) != 0 {
		t.Fatalf("first enrolment sent inventory %v before the server declared fields", enrols[0].Inventory)
	}
	want := map[string]string{"version": "1.0.0", "hardware": "rev-a", "agent_version": "9.9.9"}
	if !reflect.DeepEqual(enrols[1].Inventory, want) || !reflect.DeepEqual(dev.Inventory, want) {
		t.Fatalf("inventory sent %v, stored %v, want %v", enrols[1].Inventory, dev.Inventory, want)
	}
	e, err := LoadEnrolment(d.cfg.DataDir)
	if err != nil || e == nil || e.State != EnrolPending || e.DeviceID != "dev-1" || e.KeyID != keyID {
		t.Fatalf("device.json: %+v, %v", e, err)
	}
	if s := d.state(); s.LastCheck == nil || s.LastCheck.Action != ActionPending {
		t.Fatalf("state.json last check: %+v", s.LastCheck)
	}
	st, err := ReadStatus(context.Background(), d.cfg, fileslot.New(d.slots), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	st.WriteText(&text)
	for _, line := range []string{"mode:             managed, device key " + keyID, "enrolment:        enrolment pending (device id dev-1)"} {
		if !strings.Contains(text.String(), line) {
			t.Fatalf("status lacks %q:\n%s", line, text.String())
		}
	}
	key, _ := os.ReadFile(d.cfg.KeyFile)
	if strings.Contains(text.String(), string(key)) || st.DeviceKeyID != keyID || st.Mode != ModeManaged {
		t.Fatalf("status: %+v", st)
	}
}

func TestManagedRestartReusesKeyAndUpdatesOnceAccepted(t *testing.T) {
	w, ds := managedWorld(t, "version")
	d := managedDevice(t, w, ds, ModeManaged, nil)
	if chk, err := d.managedCheck(); err != nil || chk.Action != ActionPending {
		t.Fatalf("first check: %+v, %v", chk, err)
	}
	key1, err := os.ReadFile(d.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if chk, err := d.managedCheck(); err != nil || chk.Action != ActionPending {
		t.Fatalf("second check: %+v, %v", chk, err)
	}
	key2, _ := os.ReadFile(d.cfg.KeyFile)
	if !bytes.Equal(key1, key2) {
		t.Fatal("the restarted agent replaced its key")
	}
	keyID, _ := DeviceKeyID(d.cfg.KeyFile)
	devs := ds.Devices()
	if len(devs) != 1 || devs[keyID].Enrolments != 3 {
		t.Fatalf("devices after two checks: %+v (want one, enrolled three times: twice at first, once more)", devs)
	}

	ds.SetState(keyID, EnrolAccepted)
	chk, err := d.managedCheck()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Action != "none" {
		t.Fatalf("accepted device's check: %+v", chk)
	}
	enrols, _, repo := requests(t, ds)
	if repo == 0 {
		t.Fatal("the accepted device fetched nothing from /repo/")
	}
	for _, r := range ds.Requests() {
		if strings.HasPrefix(r.Path, "/repo/") && (!r.Signed || r.KeyID != keyID) {
			t.Fatalf("%s %s not signed by the device key (signed %v, keyid %q)", r.Method, r.Path, r.Signed, r.KeyID)
		}
	}
	// Accepted: no more enrolment, the update check runs on, until the
	// declared inventory changes: the committed update changes version,
	// and the agent enrols once more to replace the server's inventory.
	if _, err := d.managedCheck(); err != nil {
		t.Fatal(err)
	}
	if again, _, _ := requests(t, ds); len(again) != len(enrols) {
		t.Fatalf("the accepted device enrolled again (%d enrolments, was %d)", len(again), len(enrols))
	}
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	installs(t, d, "1.1.0")
	again, _, _ := requests(t, ds)
	if len(again) != len(enrols)+1 || again[len(again)-1].Inventory["version"] != "1.1.0" {
		t.Fatalf("after the update %d enrolments (was %d), last inventory %v; want one more with version 1.1.0",
			len(again), len(enrols), again[len(again)-1].Inventory)
	}
	if inv := ds.Devices()[keyID].Inventory; inv["version"] != "1.1.0" {
		t.Fatalf("the server's inventory after the update: %v", inv)
	}
	if _, err := d.managedCheck(); err != nil {
		t.Fatal(err)
	}
	if more, _, _ := requests(t, ds); len(more) != len(again) {
		t.Fatalf("the unchanged inventory was sent again (%d enrolments, was %d)", len(more), len(again))
	}

	// Decommissioned later: the server refuses the signed update check,
	// and the agent learns why from the state.
	ds.SetState(keyID, EnrolDecommissioned)
	chk, err = d.managedCheck()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Action != ActionRefused || !strings.Contains(chk.Reason, "decommissioned this device") {
		t.Fatalf("check after decommissioning: %+v", chk)
	}
	if e, _ := LoadEnrolment(d.cfg.DataDir); e == nil || e.State != EnrolDecommissioned {
		t.Fatalf("device.json: %+v", e)
	}
	if s := d.state(); s.LastCheck.Action != ActionRefused || s.Version != "1.1.0" {
		t.Fatalf("state: %+v running %s", s.LastCheck, s.Version)
	}
	_, _, repo = requests(t, ds)
	if chk, err := d.managedCheck(); err != nil || chk.Action != ActionRefused {
		t.Fatalf("next check: %+v, %v", chk, err)
	}
	if _, _, again := requests(t, ds); again != repo {
		t.Fatalf("a decommissioned device kept fetching /repo/ (%d requests, was %d)", again, repo)
	}
}

func TestManagedRefusedDeviceDoesNotUpdate(t *testing.T) {
	for _, state := range []string{EnrolRejected, EnrolDecommissioned} {
		t.Run(state, func(t *testing.T) {
			w, ds := managedWorld(t, "version")
			d := managedDevice(t, w, ds, ModeManaged, nil)
			if chk, err := d.managedCheck(); err != nil || chk.Action != ActionPending {
				t.Fatalf("first check: %+v, %v", chk, err)
			}
			keyID, _ := DeviceKeyID(d.cfg.KeyFile)
			ds.SetState(keyID, state)
			w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
			w.rollout("1.1.0", 100)
			chk, err := d.managedCheck()
			if err != nil {
				t.Fatal(err)
			}
			if chk.Action != ActionRefused || !strings.Contains(chk.Reason, "the server "+state+" this device (device id dev-1") {
				t.Fatalf("check: %+v", chk)
			}
			if _, _, repo := requests(t, ds); repo != 0 {
				t.Fatalf("a %s device fetched %d /repo/ files", state, repo)
			}
			if v := d.state().Version; v != "1.0.0" {
				t.Fatalf("running %s", v)
			}
			st, err := ReadStatus(context.Background(), d.cfg, nil, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			st.WriteText(&text)
			if !strings.Contains(text.String(), "enrolment:        REFUSED: the server "+state+" this device") {
				t.Fatalf("status:\n%s", text.String())
			}
		})
	}
}

func TestManagedEnrolmentToken(t *testing.T) {
	w, ds := managedWorld(t, "version")
	ds.Tokens = map[string]int{"good-token": 1}
	bad := managedDevice(t, w, ds, ModeManaged, func(c *Config) { c.EnrollmentToken = "bad-token" })
	chk, err := bad.managedCheck()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Action != "error" || !strings.Contains(chk.Reason, "token-invalid") || !strings.Contains(chk.Reason, "set a valid enrollment_token") {
		t.Fatalf("check with a bad token: %+v", chk)
	}
	if len(ds.Devices()) != 0 {
		t.Fatalf("devices: %+v", ds.Devices())
	}
	if e, _ := LoadEnrolment(bad.cfg.DataDir); e == nil || e.Problem == nil || e.Problem.Code != "token-invalid" || e.State != "" {
		t.Fatalf("device.json: %+v", e)
	}
	if _, _, repo := requests(t, ds); repo != 0 {
		t.Fatal("an unenrolled device fetched from /repo/")
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("good-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := managedDevice(t, w, ds, ModeManaged, func(c *Config) { c.EnrollmentTokenFile = tokenFile })
	if chk, err := good.managedCheck(); err != nil || chk.Action != ActionPending {
		t.Fatalf("check with a good token: %+v, %v", chk, err)
	}
	enrols, _, _ := requests(t, ds)
	if last := enrols[len(enrols)-1]; last.Token != "good-token" {
		t.Fatalf("token sent %q", last.Token)
	}
	// The token is used up; the enrolled device re-enrols with it all the
	// same (idempotent).
	if chk, err := good.managedCheck(); err != nil || chk.Action != ActionPending {
		t.Fatalf("second check: %+v, %v", chk, err)
	}
}

func TestManagedInventoryOnlyDeclaredAndKnown(t *testing.T) {
	w, ds := managedWorld(t, "slot", "security_version", "serial_number")
	ds.Initial = EnrolAccepted
	d := managedDevice(t, w, ds, ModeManaged, nil)
	chk, err := d.managedCheck()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Action != "none" {
		t.Fatalf("an accepted device's first check: %+v", chk)
	}
	keyID, _ := DeviceKeyID(d.cfg.KeyFile)
	want := map[string]string{"slot": "a", "security_version": "1"}
	if got := ds.Devices()[keyID].Inventory; !reflect.DeepEqual(got, want) {
		t.Fatalf("inventory %v, want %v (declared and known only)", got, want)
	}
	if e, _ := LoadEnrolment(d.cfg.DataDir); e == nil || e.State != EnrolAccepted || !reflect.DeepEqual(e.InventoryFields, ds.Fields) {
		t.Fatalf("device.json: %+v", e)
	}
}

func TestAnonymousModeUnchanged(t *testing.T) {
	w, ds := managedWorld(t, "version")
	d := managedDevice(t, w, ds, "", nil)
	if d.cfg.Mode != ModeAnonymous || d.cfg.KeyFile != "" {
		t.Fatalf("defaults: mode %q key_file %q", d.cfg.Mode, d.cfg.KeyFile)
	}
	chk, err := d.managedCheck()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Action != "none" {
		t.Fatalf("check: %+v", chk)
	}
	reqs := ds.Requests()
	if len(reqs) == 0 {
		t.Fatal("the server saw no request")
	}
	for _, r := range reqs {
		if r.Signed || strings.HasPrefix(r.Path, "/api/device/") {
			t.Fatalf("anonymous agent sent %s %s (signed %v)", r.Method, r.Path, r.Signed)
		}
	}
	for _, name := range []string{"device.key", "device.json"} {
		if _, err := os.Stat(filepath.Join(d.cfg.DataDir, name)); !os.IsNotExist(err) {
			t.Fatalf("anonymous agent left %s: %v", name, err)
		}
	}
}

func TestManagedBadKeyFile(t *testing.T) {
	w, ds := managedWorld(t)
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"readable by others": {"", 0o644, "has mode 0644: it must be readable by its owner only (chmod 600"},
		"not PEM":            {"hello", 0o600, "not a PEM file"},
		"wrong block":        {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 0o600, `PEM block "PUBLIC KEY"`},
	} {
		t.Run(name, func(t *testing.T) {
			d := managedDevice(t, w, ds, ModeManaged, nil)
			if tc.content == "" {
				// A valid key, with the wrong mode.
				if _, _, err := ensureDeviceKey(d.cfg.KeyFile); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d.cfg.KeyFile, tc.mode); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(d.cfg.KeyFile, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(d.cfg.KeyFile)
			_, err := d.managedCheck()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), d.cfg.KeyFile) {
				t.Fatalf("check: %v, want an error naming %s with %q", err, d.cfg.KeyFile, tc.want)
			}
			if after, _ := os.ReadFile(d.cfg.KeyFile); !bytes.Equal(before, after) {
				t.Fatal("the agent replaced a bad key file")
			}
		})
	}
	for _, r := range ds.Requests() {
		t.Errorf("a device with a bad key sent %s %s", r.Method, r.Path)
	}
}
