package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

func testRolloutCompletions(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p", "1.0", "1.1")
	seed(t, s, "q", "1.0")
	update(t, s, func(tx store.Tx) error {
		return errors.Join(
			tx.CompleteRollout(ctx, store.RolloutCompletion{Product: "p", Version: "1.1", Reached: at(2 * time.Hour)}),
			tx.CompleteRollout(ctx, store.RolloutCompletion{Product: "p", Version: "1.0", Reached: at(time.Hour)}),
			tx.CompleteRollout(ctx, store.RolloutCompletion{Product: "q", Version: "1.0", Reached: at(0)}))
	})
	// A later completion of the same release keeps the first.
	update(t, s, func(tx store.Tx) error {
		return tx.CompleteRollout(ctx, store.RolloutCompletion{Product: "p", Version: "1.0", Reached: at(5 * time.Hour)})
	})
	got, err := s.RolloutCompletions(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != "1.0" || !got[0].Reached.Equal(at(time.Hour)) || got[1].Version != "1.1" || !got[1].Reached.Equal(at(2*time.Hour)) {
		t.Errorf("RolloutCompletions(p) = %+v, want 1.0 at +1h then 1.1 at +2h", got)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.CompleteRollout(ctx, store.RolloutCompletion{Product: "p", Version: "9.9", Reached: at(0)})
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CompleteRollout of an unknown release: %v, want ErrNotFound", err)
	}
}

func testAttestations(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	a1 := store.Attestation{Product: "p", Item: "CRA-II-5", URL: "https://example.com/cvd", Note: "policy v1", By: "security team", Time: at(0)}
	a2 := store.Attestation{Product: "p", Item: "CRA-II-5", URL: "https://example.com/cvd2", Note: "policy v2", Time: at(time.Hour)}
	b := store.Attestation{Product: "p", Item: "5.3-16", URL: "https://example.com/label", Note: "label", Time: at(0)}
	update(t, s, func(tx store.Tx) error {
		return errors.Join(tx.AddAttestation(ctx, a2), tx.AddAttestation(ctx, a1), tx.AddAttestation(ctx, b))
	})
	got, err := s.Attestations(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		if g.Time.Location() != time.UTC {
			t.Errorf("attestation time %v not in UTC", g.Time)
		}
	}
	norm := func(as ...store.Attestation) []store.Attestation {
		for i := range as {
			as[i].Time = as[i].Time.UTC()
		}
		return as
	}
	if want := norm(b, a1, a2); !reflect.DeepEqual(got, want) {
		t.Errorf("Attestations = %+v\nwant %+v", got, want)
	}
	var n int64
	update(t, s, func(tx store.Tx) error {
		var err error
		n, err = tx.WithdrawAttestations(ctx, "p", "CRA-II-5", at(2*time.Hour))
		return err
	})
	if n != 2 {
		t.Errorf("withdrew %d attestations, want 2", n)
	}
	update(t, s, func(tx store.Tx) error {
		var err error
		n, err = tx.WithdrawAttestations(ctx, "p", "CRA-II-5", at(3*time.Hour))
		return err
	})
	if n != 0 {
		t.Errorf("withdrew %d attestations a second time, want 0", n)
	}
	got, err = s.Attestations(ctx, "p")
	if err != nil || len(got) != 3 {
		t.Fatalf("Attestations after withdrawal = %+v, %v", got, err)
	}
	if !got[0].Withdrawn.IsZero() || !got[1].Withdrawn.Equal(at(2*time.Hour)) || !got[2].Withdrawn.Equal(at(2*time.Hour)) {
		t.Errorf("withdrawn times %v %v %v", got[0].Withdrawn, got[1].Withdrawn, got[2].Withdrawn)
	}
	for name, a := range map[string]store.Attestation{
		"unknown product": {Product: "x", Item: "CRA-II-5", URL: "u", Note: "n", Time: at(0)},
		"empty url":       {Product: "p", Item: "CRA-II-5", Note: "n", Time: at(0)},
		"empty note":      {Product: "p", Item: "CRA-II-5", URL: "u", Time: at(0)},
		"empty item":      {Product: "p", URL: "u", Note: "n", Time: at(0)},
	} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.AddAttestation(ctx, a) })
		if err == nil || (name == "unknown product" && !errors.Is(err, store.ErrNotFound)) {
			t.Errorf("AddAttestation with %s: %v", name, err)
		}
	}
}

func testMarket(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	if _, err := s.Market(ctx, "p"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Market before a declaration: %v, want ErrNotFound", err)
	}
	day := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	m := store.Market{Product: "p", PlacedOn: day, ExpectedUseMonths: 84, Justification: "", Recorded: at(0)}
	update(t, s, func(tx store.Tx) error { return tx.PutMarket(ctx, m) })
	m.ExpectedUseMonths, m.Justification, m.Recorded = 36, "a seasonal product", at(time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.PutMarket(ctx, m) })
	got, err := s.Market(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if !got.PlacedOn.Equal(day) || got.ExpectedUseMonths != 36 || got.Justification != "a seasonal product" || !got.Recorded.Equal(at(time.Hour)) {
		t.Errorf("Market = %+v", got)
	}
	for name, bad := range map[string]store.Market{
		"unknown product": {Product: "x", PlacedOn: day, ExpectedUseMonths: 1, Recorded: at(0)},
		"zero use":        {Product: "p", PlacedOn: day, Recorded: at(0)},
	} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.PutMarket(ctx, bad) })
		if err == nil || (name == "unknown product" && !errors.Is(err, store.ErrNotFound)) {
			t.Errorf("PutMarket with %s: %v", name, err)
		}
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.Settings(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Settings of an empty store = %v, %v; want none", got, err)
	}
	g0 := generation(t, s)
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutSetting(ctx, store.Setting{Name: "retention.audit", Value: "400d", Updated: at(0)}); err != nil {
			return err
		}
		if err := tx.PutSetting(ctx, store.Setting{Name: "report_k", Value: "5", Updated: at(0)}); err != nil {
			return err
		}
		// The transaction sees its own writes.
		in, err := tx.Settings(ctx)
		if err != nil || len(in) != 2 {
			t.Errorf("Settings in the transaction = %v, %v; want 2", in, err)
		}
		return nil
	})
	if generation(t, s) == g0 {
		t.Errorf("generation unchanged by a settings update")
	}
	update(t, s, func(tx store.Tx) error {
		return tx.PutSetting(ctx, store.Setting{Name: "report_k", Value: "9", Updated: at(time.Hour)})
	})
	got, err = s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Setting{{Name: "report_k", Value: "9", Updated: at(time.Hour)}, {Name: "retention.audit", Value: "400d", Updated: at(0)}}
	if len(got) != len(want) {
		t.Fatalf("Settings = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Value != want[i].Value || !got[i].Updated.Equal(want[i].Updated) {
			t.Errorf("Settings[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteSetting(ctx, "report_k"); err != nil {
			return err
		}
		return tx.DeleteSetting(ctx, "never-set")
	})
	if got, err = s.Settings(ctx); err != nil || len(got) != 1 || got[0].Name != "retention.audit" {
		t.Errorf("Settings after delete = %+v, %v; want retention.audit only", got, err)
	}
	for name, bad := range map[string]store.Setting{
		"empty name":  {Value: "1", Updated: at(0)},
		"empty value": {Name: "report_k", Updated: at(0)},
	} {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutSetting(ctx, bad) }); err == nil {
			t.Errorf("PutSetting with %s: no error", name)
		}
	}
	// A refused write leaves the transaction usable and rolls back with it.
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutSetting(ctx, store.Setting{Name: "report_k", Value: "7", Updated: at(0)}); err != nil {
			return err
		}
		return errors.New("abandon")
	})
	if err == nil {
		t.Fatal("Update returning an error: no error")
	}
	if got, err = s.Settings(ctx); err != nil || len(got) != 1 {
		t.Errorf("Settings after a rolled-back put = %+v, %v; want one", got, err)
	}
}
