package managed

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// listHook calls hook once, after the first Devices query has been
// answered: a device that enrols while a full reload reads its pages.
type listHook struct {
	store.Store
	hook func()
}

func (s *listHook) Devices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	devs, err := s.Store.Devices(ctx, f)
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return devs, err
}

// TestReloadKeepsDeviceEnrolledMeanwhile: a full reload does not drop a
// device its pages missed because it enrolled while they were read (seen
// under load: 2 of 10,000 enrolling devices got 401 signature-invalid),
// and still forgets an erased device.
func TestReloadKeepsDeviceEnrolledMeanwhile(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	p, err := project.Init(ctx, t.TempDir(), project.InitOptions{Dev: true, Options: project.Options{Clock: clk}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.AddProduct(ctx, project.ProductSpec{Name: "thermostat", Hardware: []string{"rev-a"}, SupportUntil: "2030-01-01"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	tok, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 10})
	if err != nil {
		t.Fatal(err)
	}
	enrol := func() store.Device {
		pub, _, _ := ed25519.GenerateKey(nil)
		d, err := p.Enroll(ctx, "thermostat", pub, tok.Text)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	enrol()
	v := newViews(p)
	if err := v.reloadAll(ctx); err != nil {
		t.Fatal(err)
	}
	var late store.Device
	real := p.Store
	p.Store = &listHook{Store: real, hook: func() {
		late = enrol()
		v.put(late) // as the enrolment handler does
	}}
	err = v.reloadAll(ctx)
	p.Store = real
	if err != nil {
		t.Fatal(err)
	}
	id, _ := keyOf(late)
	if v.lookup(id) == nil {
		t.Fatal("the device that enrolled during the reload was dropped from the cache")
	}
	if err := p.EraseDevice(ctx, late.ID); err != nil {
		t.Fatal(err)
	}
	if err := v.reloadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if v.lookup(id) != nil {
		t.Error("an erased device stayed in the cache after a full reload")
	}
}
