package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// TestDeviceRoutes: an operator declares inventory (an unknown field is
// 422), creates an enrolment token (its text only in the answer, it
// enrols a device), lists devices by state with a keyset cursor,
// accepts one, exports it (device, events, audit entries naming it, the refused
// second accept included),
// erases it (404 afterwards); making the product anonymous while devices
// are stored is 409; every refusal is audited as refused.
func TestDeviceRoutes(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()

	resp, b := e.do("PUT", "/api/v1/products/thermostat/inventory", "operator", `{"fields":["version","serial"]}`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), "serial") {
		t.Errorf("declaring serial: %d %s, want 422 naming it", resp.StatusCode, b)
	}
	resp, b = e.do("PUT", "/api/v1/products/thermostat/inventory", "operator", `{"fields":["version","slot"]}`)
	var pol api.DevicePolicy
	if resp.StatusCode != 200 || json.Unmarshal(b, &pol) != nil || strings.Join(pol.Inventory, ",") != "slot,version" || pol.Mode != "managed" {
		t.Fatalf("declaring version, slot: %d %s", resp.StatusCode, b)
	}

	resp, b = e.do("POST", "/api/v1/enrollment-tokens", "operator", `{"product":"thermostat","uses":3,"expires":"1h","auto_accept":false}`)
	var tk api.EnrollmentToken
	if resp.StatusCode != 201 || json.Unmarshal(b, &tk) != nil || !strings.HasPrefix(tk.Token, "uptrust-enroll_") {
		t.Fatalf("create enrolment token: %d %s", resp.StatusCode, b)
	}
	_, b = e.do("GET", "/api/v1/enrollment-tokens?product=thermostat", "operator", "")
	if strings.Contains(string(b), tk.Token) || !strings.Contains(string(b), tk.ID) {
		t.Errorf("token list shows the secret or lacks the token: %s", b)
	}
	var ids []string
	for range 3 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		d, err := e.p.Enroll(ctx, "thermostat", pub, tk.Token)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	if _, err := e.p.UpdateInventory(ctx, ids[0], map[string]string{"version": "1.1.0", "slot": "a"}); err != nil {
		t.Fatal(err)
	}

	// 4 pending devices (the env's and 3), two per page.
	var seen []string
	path := "/api/v1/devices?state=pending&limit=2"
	for pages := 0; path != ""; pages++ {
		resp, b := e.do("GET", path, "auditor", "")
		var page api.Page[api.Device]
		if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil || pages > 3 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		for _, d := range page.Items {
			seen = append(seen, d.ID)
		}
		path = ""
		if page.Next != "" {
			path = "/api/v1/devices?state=pending&limit=2&cursor=" + page.Next
		}
	}
	if len(seen) != 4 {
		t.Errorf("pending devices over pages: %v, want 4", seen)
	}
	if resp, _ := e.do("GET", "/api/v1/devices?state=happy", "auditor", ""); resp.StatusCode != 400 {
		t.Errorf("state=happy: %d, want 400", resp.StatusCode)
	}

	if resp, b := e.do("POST", "/api/v1/devices/"+ids[0]+"/accept", "operator", ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"accepted"`) {
		t.Fatalf("accept: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do("POST", "/api/v1/devices/"+ids[0]+"/accept", "operator", ""); resp.StatusCode != 409 {
		t.Errorf("accepting twice: %d, want 409", resp.StatusCode)
	}
	if _, err := e.p.AddDeviceEvent(ctx, ids[0], store.DeviceEvent{Kind: store.EventFailed, Version: "1.2.0", ErrorClass: "verify"}); err != nil {
		t.Fatal(err)
	}
	resp, b = e.do("GET", "/api/v1/devices/"+ids[0]+"/export", "auditor", "")
	var x api.DeviceExport
	if resp.StatusCode != 200 || json.Unmarshal(b, &x) != nil {
		t.Fatalf("export: %d %s", resp.StatusCode, b)
	}
	if x.Device.Inventory["version"] != "1.1.0" || len(x.Events) != 1 || x.Events[0].ErrorClass != "verify" || len(x.Audit) != 3 ||
		x.Audit[1].Action != project.ActionDeviceAccept || x.Audit[2].Outcome != store.OutcomeRefused {
		t.Errorf("export = %+v", x)
	}

	if resp, _ := e.do("PUT", "/api/v1/products/thermostat/mode", "operator", `{"mode":"anonymous"}`); resp.StatusCode != 409 {
		t.Errorf("anonymous with devices: %d, want 409", resp.StatusCode)
	}
	if resp, _ := e.do("DELETE", "/api/v1/devices/"+ids[0], "operator", ""); resp.StatusCode != 204 {
		t.Errorf("erase: %d, want 204", resp.StatusCode)
	}
	for _, p := range []string{"/api/v1/devices/" + ids[0], "/api/v1/devices/" + ids[0] + "/export"} {
		if resp, _ := e.do("GET", p, "auditor", ""); resp.StatusCode != 404 {
			t.Errorf("GET %s after erase: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, _ := e.do("DELETE", "/api/v1/devices/"+ids[0], "operator", ""); resp.StatusCode != 404 {
		t.Errorf("erase twice: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.do("POST", "/api/v1/products/thermostat/preauthorized-keys", "operator", `{"public_key":"AAAA"}`); resp.StatusCode != 422 {
		t.Errorf("preauthorize a 3-byte key: %d, want 422", resp.StatusCode)
	}
	refused, err := e.p.Store.AuditQuery(ctx, store.AuditFilter{Outcome: store.OutcomeRefused, Actor: "t-operator"})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 5 {
		var acts []string
		for _, r := range refused {
			acts = append(acts, r.Action+" "+r.Object)
		}
		t.Errorf("refused entries by the operator: %q, want 5 (inventory, accept twice, anonymous, erase twice, preauthorize)", acts)
	}
}
