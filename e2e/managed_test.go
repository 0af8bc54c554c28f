package e2e

import (
	"context"
	"slices"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
)

// TestManagedEnrolment: a device of a managed product enrols with the real
// agent against the real server (signatures verified by the server), waits
// for the operator, updates once accepted, and gets nothing once
// decommissioned; a device with a used-up token is refused and nothing of
// it is stored.
func TestManagedEnrolment(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOptions{})
	w.withDevices(managed.New(w.p))
	if _, err := w.p.SetProductMode(ctx, product, store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.SetInventoryFields(ctx, product, []string{"version", "hardware", "slot"}); err != nil {
		t.Fatal(err)
	}
	tok, err := w.p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: product, Uses: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := w.device("m1", 1)
	if err := d.SetConfig(func(c *agent.Config) { c.Mode = agent.ModeManaged; c.EnrollmentToken = tok.Text }); err != nil {
		t.Fatal(err)
	}
	if chk := w.cycle(d); chk.Action != agent.ActionPending {
		t.Fatalf("first check of a managed device: action %q (%s), want %s", chk.Action, chk.Reason, agent.ActionPending)
	}
	devs, err := w.p.Devices(ctx, store.DeviceFilter{})
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices after enrolment: %v, %v", devs, err)
	}
	dev := devs[0]
	if dev.State != store.DevicePending || dev.Inventory["version"] != "1.0.0" || dev.Inventory["hardware"] != hardware || dev.Inventory["slot"] != "a" {
		t.Errorf("enrolled device = %+v", dev)
	}
	if _, err := w.p.AcceptDevice(ctx, dev.ID); err != nil {
		t.Fatal(err)
	}
	w.publish("1.1.0", 2, release.KindSecurity)
	w.managedRollout("1.1.0", "", "100%")
	// One cycle installs, reboots and commits (sim.Device.Cycle); the
	// agent sends the steps as the device's own signed events, and its
	// report's outcome too.
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	exp, err := w.p.ExportDevice(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range exp.Events {
		if e.Version != "1.1.0" {
			t.Errorf("event %+v is not about 1.1.0", e)
		}
		if e.Kind == store.EventDownloading && len(steps) > 0 && steps[len(steps)-1] == store.EventDownloading {
			continue
		}
		steps = append(steps, e.Kind)
	}
	want := []string{store.EventOffered, store.EventDownloading, store.EventInstalling, store.EventRebooting, store.EventSucceeded}
	if !slices.Equal(steps, want) || exp.Events[1].Progress != 0 {
		t.Errorf("the device's history after its update: %v (%+v), want %v, downloading from 0", steps, exp.Events, want)
	}

	// Decommissioned: the agent learns it and stops updating.
	if _, err := w.p.DecommissionDevice(ctx, dev.ID); err != nil {
		t.Fatal(err)
	}
	w.publish("1.2.0", 3, release.KindSecurity)
	w.managedRollout("1.2.0", "", "100%")
	// The server refuses its signed update check (403 decommissioned);
	// the agent then asks its state and stops.
	refused := false
	for i := 0; i < 3 && !refused; i++ {
		chk := w.cycle(d)
		refused = chk.Action == agent.ActionRefused
		if chk.Action == "rebooting" || chk.Action == "installed" {
			t.Fatalf("a decommissioned device installed 1.2.0 (action %q)", chk.Action)
		}
	}
	if !refused {
		t.Error("the agent of a decommissioned device never recorded the refusal")
	}
	w.assertRunning(d, "1.1.0")

	// The token had one use: a second device is refused and not stored.
	d2 := w.device("m2", 1)
	if err := d2.SetConfig(func(c *agent.Config) { c.Mode = agent.ModeManaged; c.EnrollmentToken = tok.Text }); err != nil {
		t.Fatal(err)
	}
	if chk := w.cycle(d2); chk.Action != "error" {
		t.Errorf("enrolment with a used-up token: action %q, want error", chk.Action)
	}
	if devs, _ := w.p.Devices(ctx, store.DeviceFilter{}); len(devs) != 1 {
		t.Errorf("a refused enrolment stored a device: %+v", devs)
	}
}
