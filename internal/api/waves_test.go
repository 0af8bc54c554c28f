package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// TestManagedRolloutRoutes: an operator puts a device in a group, starts a
// rollout in waves selecting that group, reads its status with counts per
// wave, pauses, resumes and aborts it; bad input (bad filter, bad waves,
// unknown group, unpublished version, anonymous product, a transition the
// phase does not allow, a missing field) is a 4xx problem, audited as
// refused, and starts nothing; the auditor reads but changes nothing.
func TestManagedRolloutRoutes(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.p.AcceptDevice(ctx, matrixDevice); err != nil {
		t.Fatal(err)
	}
	resp, b := e.do("PUT", "/api/v1/devices/"+matrixDevice+"/groups/lab", "operator", "")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("group add: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("PUT", "/api/v1/devices/"+matrixDevice+"/groups/lab", "operator", "")
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("group add twice: %d %s, want 409", resp.StatusCode, b)
	}
	resp, b = e.do("PUT", "/api/v1/devices/"+matrixDevice+"/tags/Not%20A%20Name", "operator", "")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bad tag name: %d %s, want 422", resp.StatusCode, b)
	}
	resp, b = e.do("GET", "/api/v1/products/thermostat/device-labels?kind=group", "auditor", "")
	var labels api.Page[api.DeviceLabelJSON]
	if resp.StatusCode != 200 || json.Unmarshal(b, &labels) != nil || len(labels.Items) != 1 || labels.Items[0].Name != "lab" {
		t.Errorf("labels: %d %s", resp.StatusCode, b)
	}

	before, _ := e.p.ManagedRollouts(ctx, "")
	start := func(body string) (*http.Response, []byte) {
		return e.do("POST", "/api/v1/managed-rollouts", "operator", body)
	}
	for _, c := range []struct {
		name, body, want string
		status           int
	}{
		{"bad filter", `{"product":"thermostat","version":"1.1.0","select":"colour=red","waves":"50%,100%","max_failure":"5%","min_success":1,"soak":"1h"}`, `unknown key`, 422},
		{"unknown group", `{"product":"thermostat","version":"1.1.0","select":"group=field","waves":"50%,100%","max_failure":"5%","min_success":1,"soak":"1h"}`, `unknown group`, 422},
		{"bad waves", `{"product":"thermostat","version":"1.1.0","waves":"50%,40%,100%","max_failure":"5%","min_success":1,"soak":"1h"}`, `must increase`, 422},
		{"bad window", `{"product":"thermostat","version":"1.1.0","waves":"100%","max_failure":"5%","min_success":1,"soak":"1h","window":"Mon 25:00-26:00 UTC"}`, `window`, 422},
		{"unpublished", `{"product":"thermostat","version":"9.0.0","waves":"100%","max_failure":"5%","min_success":1,"soak":"1h"}`, `not published`, 404},
		{"missing soak", `{"product":"thermostat","version":"1.1.0","waves":"100%","max_failure":"5%","min_success":1}`, `required`, 400},
	} {
		resp, b := start(c.body)
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, resp.StatusCode, b, c.status, c.want)
		}
	}
	if after, _ := e.p.ManagedRollouts(ctx, ""); len(after) != len(before) {
		t.Errorf("refused starts created rollouts: %d, were %d", len(after), len(before))
	}
	if es, _ := e.p.AuditQuery(ctx, store.AuditFilter{Action: project.ActionWavesStart, Outcome: store.OutcomeRefused}); len(es) != 6 {
		t.Errorf("%d refused starts audited, want 6", len(es))
	}

	resp, b = start(`{"product":"thermostat","version":"1.1.0","select":"group=lab","waves":"100%","max_failure":"5%","min_success":1,"soak":"1h","window":"Mon-Fri 02:00-04:00 Europe/Berlin"}`)
	var mr api.ManagedRolloutJSON
	if resp.StatusCode != 201 || json.Unmarshal(b, &mr) != nil || mr.Phase != "active" || mr.ActiveWave != 1 || mr.Select != "group=lab" ||
		mr.Window != "Mon-Fri 02:00-04:00 Europe/Berlin" || resp.Header.Get("Location") != "/api/v1/managed-rollouts/"+mr.ID {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	if _, err := e.p.AddDeviceEvent(ctx, matrixDevice, store.DeviceEvent{Kind: store.EventSucceeded, Version: "1.1.0"}); err != nil {
		t.Fatal(err)
	}
	resp, b = e.do("GET", "/api/v1/managed-rollouts/"+mr.ID, "auditor", "")
	var st api.ManagedRolloutJSON
	if resp.StatusCode != 200 || json.Unmarshal(b, &st) != nil || len(st.Waves) != 1 || st.Waves[0].Counts.Members != 1 ||
		st.Waves[0].Counts.Succeeded != 1 || st.Waves[0].State != "active" {
		t.Errorf("status: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/api/v1/managed-rollouts/"+mr.ID+"/pause", "auditor", "")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor pause: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/api/v1/managed-rollouts/"+mr.ID+"/pause", "operator", `{"reason":"field report"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"phase":"paused"`) || !strings.Contains(string(b), "field report") {
		t.Errorf("pause: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/api/v1/managed-rollouts/"+mr.ID+"/pause", "operator", "")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "cannot pause a paused rollout") {
		t.Errorf("pause twice: %d %s, want 409", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/api/v1/managed-rollouts/"+mr.ID+"/resume", "operator", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"phase":"active"`) {
		t.Errorf("resume: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/api/v1/managed-rollouts/"+mr.ID+"/abort", "operator", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"phase":"aborted"`) {
		t.Errorf("abort: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/api/v1/managed-rollouts/rnope/abort", "operator", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("abort unknown: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("GET", "/api/v1/managed-rollouts?product=thermostat", "auditor", "")
	var list api.Page[api.ManagedRolloutJSON]
	if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil || len(list.Items) != 2 || list.Items[1].ID != mr.ID {
		t.Errorf("list: %d %s", resp.StatusCode, b)
	}

	// An anonymous product: 409 naming managed mode.
	if err := e.p.AddProduct(ctx, project.ProductSpec{Name: "lamp", Hardware: []string{"v1"}, SupportUntil: "2031-12-31"}); err != nil {
		t.Fatal(err)
	}
	resp, b = start(`{"product":"lamp","version":"1.0.0","waves":"100%","max_failure":"5%","min_success":1,"soak":"1h"}`)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "managed mode") {
		t.Errorf("anonymous product: %d %s, want 409", resp.StatusCode, b)
	}
}
