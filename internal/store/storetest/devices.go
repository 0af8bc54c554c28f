package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

func device(id, product, key, state string) store.Device {
	return store.Device{ID: id, Product: product, PublicKey: key, State: state,
		Inventory: map[string]string{"hardware": "rev-a", "version": "1.0"}, Enrolled: at(0), Updated: at(time.Second)}
}

func equalDevice(a, b store.Device) bool {
	return a.ID == b.ID && a.Product == b.Product && a.PublicKey == b.PublicKey && a.State == b.State &&
		maps.Equal(a.Inventory, b.Inventory) && a.Enrolled.Equal(b.Enrolled) && a.Updated.Equal(b.Updated)
}

func testDevicePolicy(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	_, err := s.DevicePolicy(ctx, "p")
	wantNotFound(t, "DevicePolicy before any", err)
	want := store.DevicePolicy{Product: "p", Mode: store.ModeManaged, Inventory: []string{"version", "hardware"}, Updated: at(time.Hour)}
	update(t, s, func(tx store.Tx) error { return tx.PutDevicePolicy(ctx, want) })
	got, err := s.DevicePolicy(ctx, "p")
	if err != nil || got.Mode != want.Mode || !slices.Equal(got.Inventory, []string{"hardware", "version"}) || !got.Updated.Equal(want.Updated) {
		t.Errorf("DevicePolicy = %+v, %v; want %+v with the inventory sorted", got, err, want)
	}
	want.Mode, want.Inventory = store.ModeAnonymous, nil
	update(t, s, func(tx store.Tx) error { return tx.PutDevicePolicy(ctx, want) })
	if got, err := s.DevicePolicy(ctx, "p"); err != nil || got.Mode != store.ModeAnonymous || len(got.Inventory) != 0 {
		t.Errorf("DevicePolicy after replacing = %+v, %v", got, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutDevicePolicy(ctx, store.DevicePolicy{Product: "nope", Mode: store.ModeManaged, Updated: at(0)})
	})
	wantNotFound(t, "PutDevicePolicy of an unknown product", err)
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.PutDevicePolicy(ctx, store.DevicePolicy{Product: "p", Mode: "open", Updated: at(0)})
	}); err == nil {
		t.Error("PutDevicePolicy with mode open: no error")
	}
}

func testDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	seed(t, s, "q")
	a := device("d-a", "p", "key-a", store.DevicePending)
	b := device("d-b", "p", "key-b", store.DeviceAccepted)
	c := device("d-c", "q", "key-c", store.DeviceAccepted)
	update(t, s, func(tx store.Tx) error {
		for _, d := range []store.Device{c, a, b} {
			if err := tx.AddDevice(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	if got, err := s.Device(ctx, "d-a"); err != nil || !equalDevice(got, a) {
		t.Errorf("Device(d-a) = %+v, %v; want %+v", got, err, a)
	}
	if got, err := s.DeviceByKey(ctx, "key-b"); err != nil || !equalDevice(got, b) {
		t.Errorf("DeviceByKey(key-b) = %+v, %v; want %+v", got, err, b)
	}
	_, err := s.Device(ctx, "d-x")
	wantNotFound(t, "Device(d-x)", err)
	_, err = s.DeviceByKey(ctx, "key-x")
	wantNotFound(t, "DeviceByKey(key-x)", err)

	ids := func(f store.DeviceFilter) []string {
		ds, err := s.Devices(ctx, f)
		if err != nil {
			t.Fatalf("Devices(%+v): %v", f, err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.DeviceFilter
		want []string
	}{
		{store.DeviceFilter{}, []string{"d-a", "d-b", "d-c"}},
		{store.DeviceFilter{Product: "p"}, []string{"d-a", "d-b"}},
		{store.DeviceFilter{State: store.DeviceAccepted}, []string{"d-b", "d-c"}},
		{store.DeviceFilter{Product: "p", State: store.DeviceAccepted}, []string{"d-b"}},
		{store.DeviceFilter{AfterID: "d-a", Limit: 1}, []string{"d-b"}},
		{store.DeviceFilter{Product: "none"}, nil},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("Devices(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}

	for name, d := range map[string]store.Device{
		"taken id":  device("d-a", "p", "key-new", store.DevicePending),
		"taken key": device("d-new", "p", "key-a", store.DevicePending),
	} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.AddDevice(ctx, d) })
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("AddDevice with a %s: %v, want store.ErrConflict", name, err)
		}
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.AddDevice(ctx, device("d-z", "nope", "key-z", store.DevicePending)) })
	wantNotFound(t, "AddDevice of an unknown product", err)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.AddDevice(ctx, device("d-z", "p", "key-z", "happy")) }); err == nil {
		t.Error("AddDevice in state happy: no error")
	}

	a.State, a.Inventory, a.Updated = store.DeviceAccepted, map[string]string{"slot": "b"}, at(time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.PutDevice(ctx, a) })
	if got, err := s.Device(ctx, "d-a"); err != nil || !equalDevice(got, a) {
		t.Errorf("Device after PutDevice = %+v, %v; want %+v", got, err, a)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutDevice(ctx, device("d-x", "p", "k", store.DevicePending)) })
	wantNotFound(t, "PutDevice of an unknown device", err)
	// The changes a server polls for: d-a changed at +1h, the others at +1s.
	for _, tc := range []struct {
		since time.Time
		want  []string
	}{
		{at(time.Hour), []string{"d-a"}},
		{at(time.Hour + time.Nanosecond), nil},
		{at(time.Second), []string{"d-a", "d-b", "d-c"}},
		{at(time.Minute), []string{"d-a"}},
	} {
		if got := ids(store.DeviceFilter{UpdatedSince: tc.since}); !slices.Equal(got, tc.want) {
			t.Errorf("Devices(UpdatedSince %v) = %v, want %v", tc.since, got, tc.want)
		}
	}
	if got := ids(store.DeviceFilter{UpdatedSince: at(time.Second), State: store.DeviceAccepted, Product: "q"}); !slices.Equal(got, []string{"d-c"}) {
		t.Errorf("Devices(UpdatedSince and more) = %v, want [d-c]", got)
	}
}

func testEnrollmentTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	seed(t, s, "q")
	e1 := store.EnrollmentToken{ID: "e1", Product: "p", SecretHash: "h1", Uses: 3, Created: at(0), Expires: at(time.Hour)}
	e2 := store.EnrollmentToken{ID: "e2", Product: "q", SecretHash: "h2", Uses: 1, AutoAccept: true, Created: at(time.Minute), Expires: at(time.Hour)}
	update(t, s, func(tx store.Tx) error {
		if err := tx.AddEnrollmentToken(ctx, e2); err != nil {
			return err
		}
		return tx.AddEnrollmentToken(ctx, e1)
	})
	eq := func(a, b store.EnrollmentToken) bool {
		return a.ID == b.ID && a.Product == b.Product && a.SecretHash == b.SecretHash && a.Uses == b.Uses &&
			a.AutoAccept == b.AutoAccept && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && a.Revoked.Equal(b.Revoked)
	}
	if got, err := s.EnrollmentToken(ctx, "e2"); err != nil || !eq(got, e2) {
		t.Errorf("EnrollmentToken(e2) = %+v, %v; want %+v", got, err, e2)
	}
	if all, err := s.EnrollmentTokens(ctx, ""); err != nil || len(all) != 2 || all[0].ID != "e1" || all[1].ID != "e2" {
		t.Errorf("EnrollmentTokens() = %+v, %v; want e1, e2 by creation", all, err)
	}
	if ps, err := s.EnrollmentTokens(ctx, "q"); err != nil || len(ps) != 1 || ps[0].ID != "e2" {
		t.Errorf("EnrollmentTokens(q) = %+v, %v; want e2", ps, err)
	}
	e1.Uses, e1.Revoked = 2, at(2*time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.PutEnrollmentToken(ctx, e1) })
	if got, err := s.EnrollmentToken(ctx, "e1"); err != nil || !eq(got, e1) {
		t.Errorf("EnrollmentToken(e1) after Put = %+v, %v; want %+v", got, err, e1)
	}
	err := s.Update(ctx, func(tx store.Tx) error { return tx.AddEnrollmentToken(ctx, e2) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("AddEnrollmentToken twice: %v, want store.ErrConflict", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutEnrollmentToken(ctx, store.EnrollmentToken{ID: "nope", Uses: 1})
	})
	wantNotFound(t, "PutEnrollmentToken of an unknown token", err)
}

func testPreauthorizedKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	k := store.PreauthorizedKey{Product: "p", PublicKey: "key-1", Created: at(0)}
	update(t, s, func(tx store.Tx) error { return tx.AddPreauthorizedKey(ctx, k) })
	if got, err := s.PreauthorizedKey(ctx, "key-1"); err != nil || got.Product != "p" || !got.Created.Equal(k.Created) {
		t.Errorf("PreauthorizedKey = %+v, %v; want %+v", got, err, k)
	}
	err := s.Update(ctx, func(tx store.Tx) error { return tx.AddPreauthorizedKey(ctx, k) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("AddPreauthorizedKey twice: %v, want store.ErrConflict", err)
	}
	if ks, err := s.PreauthorizedKeys(ctx, "p"); err != nil || len(ks) != 1 {
		t.Errorf("PreauthorizedKeys(p) = %+v, %v; want one", ks, err)
	}
	update(t, s, func(tx store.Tx) error { return tx.DeletePreauthorizedKey(ctx, "key-1") })
	_, err = s.PreauthorizedKey(ctx, "key-1")
	wantNotFound(t, "PreauthorizedKey after delete", err)
}

func testDeviceEventsAndDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	a := device("d-a", "p", "key-a", store.DeviceAccepted)
	b := device("d-b", "p", "key-b", store.DeviceAccepted)
	events := []store.DeviceEvent{
		{Device: "d-a", Time: at(time.Hour), Kind: store.EventDownloading, Version: "2.0", Progress: 40},
		{Device: "d-a", Time: at(2 * time.Hour), Kind: store.EventFailed, Version: "2.0", ErrorClass: "hash", Message: "mismatch"},
		{Device: "d-b", Time: at(3 * time.Hour), Kind: store.EventSkipped, Version: "2.0", Reason: "postponed_by_owner"},
		{Device: "d-a", Time: at(4 * time.Hour), Kind: store.EventSucceeded, Version: "2.0"},
	}
	update(t, s, func(tx store.Tx) error {
		for _, d := range []store.Device{a, b} {
			if err := tx.AddDevice(ctx, d); err != nil {
				return err
			}
		}
		if err := tx.AddPreauthorizedKey(ctx, store.PreauthorizedKey{Product: "p", PublicKey: "key-a", Created: at(0)}); err != nil {
			return err
		}
		for _, e := range events {
			if err := tx.AddDeviceEvent(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.DeviceEvents(ctx, "d-a")
	if err != nil || len(got) != 3 {
		t.Fatalf("DeviceEvents(d-a) = %+v, %v; want 3", got, err)
	}
	for i, w := range []store.DeviceEvent{events[0], events[1], events[3]} {
		g := got[i]
		if g.Seq != int64(i+1) || g.Kind != w.Kind || !g.Time.Equal(w.Time) || g.Progress != w.Progress ||
			g.ErrorClass != w.ErrorClass || g.Message != w.Message || g.Version != w.Version {
			t.Errorf("event %d = %+v, want %+v with seq %d", i, g, w, i+1)
		}
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.AddDeviceEvent(ctx, store.DeviceEvent{Device: "d-x", Time: at(0), Kind: store.EventOffered})
	})
	wantNotFound(t, "AddDeviceEvent of an unknown device", err)
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.AddDeviceEvent(ctx, store.DeviceEvent{Device: "d-a", Time: at(0), Kind: "exploded"})
	}); err == nil {
		t.Error("AddDeviceEvent of kind exploded: no error")
	}

	// Purge: events received before 2h30 go, the rest stay.
	n, err := s.Purge(ctx, store.TableDeviceEvents, at(150*time.Minute))
	if err != nil || n != 2 {
		t.Errorf("Purge(device_events) = %d, %v; want 2", n, err)
	}
	if got, _ := s.DeviceEvents(ctx, "d-a"); len(got) != 1 || got[0].Kind != store.EventSucceeded {
		t.Errorf("d-a events after purge = %+v, want the succeeded one", got)
	}

	update(t, s, func(tx store.Tx) error { return tx.DeleteDevice(ctx, "d-a") })
	_, err = s.Device(ctx, "d-a")
	wantNotFound(t, "Device after DeleteDevice", err)
	_, err = s.PreauthorizedKey(ctx, "key-a")
	wantNotFound(t, "pre-authorisation of the deleted device's key", err)
	if got, err := s.DeviceEvents(ctx, "d-a"); err != nil || len(got) != 0 {
		t.Errorf("events of the deleted device = %+v, %v; want none", got, err)
	}
	if got, err := s.DeviceEvents(ctx, "d-b"); err != nil || len(got) != 1 {
		t.Errorf("events of the other device = %+v, %v; want its one", got, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteDevice(ctx, "d-a") })
	wantNotFound(t, "DeleteDevice twice", err)
}

func testUpdateFleet(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	g := generation(t, s)
	if err := s.UpdateFleet(ctx, func(tx store.Tx) error {
		return tx.AddDevice(ctx, device("d-a", "p", "key-a", store.DevicePending))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Device(ctx, "d-a"); err != nil {
		t.Errorf("device written by UpdateFleet: %v", err)
	}
	if got := generation(t, s); got != g {
		t.Errorf("generation after UpdateFleet = %d, want %d unchanged", got, g)
	}
	boom := errors.New("boom")
	err := s.UpdateFleet(ctx, func(tx store.Tx) error {
		if err := tx.AddDevice(ctx, device("d-b", "p", "key-b", store.DevicePending)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("UpdateFleet returned %v, want fn's error", err)
	}
	_, err = s.Device(ctx, "d-b")
	wantNotFound(t, "device of a rolled back UpdateFleet", err)
	if got := generation(t, s); got != g {
		t.Errorf("generation after a failed UpdateFleet = %d, want %d", got, g)
	}
}
