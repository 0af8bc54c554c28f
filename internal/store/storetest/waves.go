package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

func testManagedRollouts(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p", "1.0", "2.0")
	seed(t, s, "q", "1.0")
	mk := func(id, product, version string) store.ManagedRollout {
		return store.ManagedRollout{ID: id, Product: product, Version: version, Selection: "group=lab",
			Plan: []byte(`{"waves":[100,10000]}`), State: []byte(`{"phase":"scheduled"}`), Created: at(time.Hour), Updated: at(time.Hour)}
	}
	update(t, s, func(tx store.Tx) error {
		for _, r := range []store.ManagedRollout{mk("r1", "p", "1.0"), mk("r2", "q", "1.0"), mk("r3", "p", "2.0")} {
			if err := tx.AddManagedRollout(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.ManagedRollouts(ctx, "p")
	if err != nil || len(got) != 2 || got[0].ID != "r1" || got[0].Seq != 1 || got[1].ID != "r3" || got[1].Seq != 2 {
		t.Fatalf("ManagedRollouts(p) = %+v, %v; want r1 seq 1, r3 seq 2", got, err)
	}
	if all, err := s.ManagedRollouts(ctx, ""); err != nil || len(all) != 3 || all[2].ID != "r2" || all[2].Seq != 1 {
		t.Errorf("ManagedRollouts() = %+v, %v; want 3, r2 last with seq 1", all, err)
	}
	r, err := s.ManagedRollout(ctx, "r3")
	if err != nil || r.Version != "2.0" || r.Selection != "group=lab" || string(r.Plan) != `{"waves":[100,10000]}` ||
		string(r.State) != `{"phase":"scheduled"}` || !r.Created.Equal(at(time.Hour)) {
		t.Errorf("ManagedRollout(r3) = %+v, %v", r, err)
	}
	_, err = s.ManagedRollout(ctx, "r9")
	wantNotFound(t, "ManagedRollout of an unknown id", err)

	g0 := generation(t, s)
	update(t, s, func(tx store.Tx) error {
		return tx.PutManagedRolloutState(ctx, "r3", []byte(`{"phase":"active","wave":1}`), at(2*time.Hour))
	})
	if r, _ := s.ManagedRollout(ctx, "r3"); string(r.State) != `{"phase":"active","wave":1}` || !r.Updated.Equal(at(2*time.Hour)) {
		t.Errorf("after PutManagedRolloutState: %+v", r)
	}
	if g := generation(t, s); g <= g0 {
		t.Errorf("generation %d after a state change, was %d: device views must recompute", g, g0)
	}

	for _, c := range []struct {
		name string
		r    store.ManagedRollout
		want error
	}{
		{"taken id", mk("r1", "p", "2.0"), store.ErrConflict},
		{"unpublished version", mk("r8", "p", "3.0"), store.ErrNotFound},
		{"unknown product", mk("r8", "z", "1.0"), store.ErrNotFound},
		{"empty id", mk("", "p", "1.0"), nil},
		{"plan not JSON", func() store.ManagedRollout { r := mk("r8", "p", "1.0"); r.Plan = []byte("waves"); return r }(), nil},
	} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.AddManagedRollout(ctx, c.r) })
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("AddManagedRollout with %s: %v, want an error (%v)", c.name, err, c.want)
		}
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutManagedRolloutState(ctx, "r9", []byte(`{}`), at(0)) })
	wantNotFound(t, "PutManagedRolloutState of an unknown id", err)
	if got, _ := s.ManagedRollouts(ctx, ""); len(got) != 3 {
		t.Errorf("refused writes changed the rollouts: %+v", got)
	}
}

func testDeviceLabelsAndOutcomes(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	seed(t, s, "q")
	update(t, s, func(tx store.Tx) error {
		for _, d := range []store.Device{device("d-a", "p", "key-a", store.DeviceAccepted),
			device("d-b", "p", "key-b", store.DeviceAccepted), device("d-c", "q", "key-c", store.DeviceAccepted)} {
			if err := tx.AddDevice(ctx, d); err != nil {
				return err
			}
		}
		for _, l := range []store.DeviceLabel{
			{Device: "d-a", Kind: store.LabelGroup, Name: "lab", Added: at(0)},
			{Device: "d-b", Kind: store.LabelGroup, Name: "lab", Added: at(0)},
			{Device: "d-a", Kind: store.LabelTag, Name: "eu", Added: at(0)},
			{Device: "d-c", Kind: store.LabelGroup, Name: "lab", Added: at(0)},
		} {
			if err := tx.AddDeviceLabel(ctx, l); err != nil {
				return err
			}
		}
		for _, e := range []store.DeviceEvent{
			{Device: "d-a", Time: at(time.Hour), Kind: store.EventFailed, Version: "2.0"},
			{Device: "d-a", Time: at(2 * time.Hour), Kind: store.EventSucceeded, Version: "2.0"},
			{Device: "d-a", Time: at(3 * time.Hour), Kind: store.EventOffered, Version: "3.0"},
			{Device: "d-b", Time: at(time.Hour), Kind: store.EventSkipped, Version: "2.0", Reason: "postponed_by_owner"},
			{Device: "d-c", Time: at(time.Hour), Kind: store.EventFailed, Version: "2.0"},
		} {
			if err := tx.AddDeviceEvent(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	ls, err := s.DeviceLabels(ctx, store.LabelFilter{Product: "p"})
	if err != nil || len(ls) != 3 || ls[0].Kind != store.LabelGroup || ls[0].Device != "d-a" || ls[2].Kind != store.LabelTag {
		t.Errorf("DeviceLabels(product p) = %+v, %v; want lab d-a, lab d-b, eu d-a", ls, err)
	}
	if ls, _ := s.DeviceLabels(ctx, store.LabelFilter{Kind: store.LabelGroup, Name: "lab"}); len(ls) != 3 {
		t.Errorf("DeviceLabels(group lab) = %+v, want 3 across products", ls)
	}
	if ls, _ := s.DeviceLabels(ctx, store.LabelFilter{Device: "d-a"}); len(ls) != 2 {
		t.Errorf("DeviceLabels(d-a) = %+v, want 2", ls)
	}
	for _, c := range []struct {
		name string
		l    store.DeviceLabel
		want error
	}{
		{"twice", store.DeviceLabel{Device: "d-a", Kind: store.LabelGroup, Name: "lab", Added: at(0)}, store.ErrConflict},
		{"unknown device", store.DeviceLabel{Device: "d-x", Kind: store.LabelGroup, Name: "lab", Added: at(0)}, store.ErrNotFound},
		{"unknown kind", store.DeviceLabel{Device: "d-a", Kind: "colour", Name: "red", Added: at(0)}, nil},
		{"empty name", store.DeviceLabel{Device: "d-a", Kind: store.LabelTag, Added: at(0)}, nil},
	} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.AddDeviceLabel(ctx, c.l) })
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("AddDeviceLabel %s: %v, want an error (%v)", c.name, err, c.want)
		}
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteDeviceLabel(ctx, "d-b", store.LabelTag, "eu") })
	wantNotFound(t, "DeleteDeviceLabel of an absent label", err)
	update(t, s, func(tx store.Tx) error { return tx.DeleteDeviceLabel(ctx, "d-b", store.LabelGroup, "lab") })
	if ls, _ := s.DeviceLabels(ctx, store.LabelFilter{Product: "p", Kind: store.LabelGroup}); len(ls) != 1 || ls[0].Device != "d-a" {
		t.Errorf("after removing d-b from lab: %+v", ls)
	}

	// Latest event per device of product p for 2.0: d-a succeeded (after
	// failing), d-b skipped; d-c is another product's; 3.0 is not 2.0.
	evs, err := s.LatestDeviceEvents(ctx, store.OutcomeFilter{Product: "p", Version: "2.0"})
	if err != nil || len(evs) != 2 || evs[0].Device != "d-a" || evs[0].Kind != store.EventSucceeded ||
		evs[1].Device != "d-b" || evs[1].Kind != store.EventSkipped || evs[1].Reason != "postponed_by_owner" {
		t.Errorf("LatestDeviceEvents(p, 2.0) = %+v, %v", evs, err)
	}
	// Since cuts earlier events: only d-a's success remains.
	evs, err = s.LatestDeviceEvents(ctx, store.OutcomeFilter{Product: "p", Version: "2.0", Since: at(90 * time.Minute)})
	if err != nil || len(evs) != 1 || evs[0].Device != "d-a" || evs[0].Kind != store.EventSucceeded {
		t.Errorf("LatestDeviceEvents since 1h30 = %+v, %v", evs, err)
	}

	// Deleting a device removes its labels.
	update(t, s, func(tx store.Tx) error { return tx.DeleteDevice(ctx, "d-a") })
	if ls, _ := s.DeviceLabels(ctx, store.LabelFilter{Device: "d-a"}); len(ls) != 0 {
		t.Errorf("labels of d-a after DeleteDevice: %+v", ls)
	}
	if ls, _ := s.DeviceLabels(ctx, store.LabelFilter{}); len(ls) != 1 || ls[0].Device != "d-c" {
		t.Errorf("labels left after DeleteDevice(d-a): %+v, want d-c's", ls)
	}
}
