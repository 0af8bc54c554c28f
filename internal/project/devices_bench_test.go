package project_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

// BenchmarkEnroll enrols b.N devices of a managed product on SQLite with
// one token, each followed by an inventory of three fields: the time per
// device (two transactions, each synced, and an audit entry), and how much
// uptrust.db and its WAL grew per device (the WAL holds pages until a
// checkpoint, so a rough figure, not the size of a row).
func BenchmarkEnroll(b *testing.B) {
	ctx := b.Context()
	p, err := project.Init(ctx, b.TempDir(), project.InitOptions{Dev: true, Options: project.Options{Clock: clock.NewFake(t0)}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.AddProduct(ctx, thermostat()); err != nil {
		b.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		b.Fatal(err)
	}
	if _, err := p.SetInventoryFields(ctx, "thermostat", []string{"version", "hardware", "slot"}); err != nil {
		b.Fatal(err)
	}
	tk, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: b.N})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]ed25519.PublicKey, b.N)
	for i := range keys {
		keys[i], _, _ = ed25519.GenerateKey(rand.Reader)
	}
	size := func() int64 {
		var n int64
		for _, f := range []string{"uptrust.db", "uptrust.db-wal"} {
			if fi, err := os.Stat(filepath.Join(p.Dir, f)); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	before := size()
	b.ResetTimer()
	for i := range b.N {
		d, err := p.Enroll(ctx, "thermostat", keys[i], tk.Text)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.UpdateInventory(ctx, d.ID, map[string]string{"version": "1.1.0", "hardware": "rev-a", "slot": "a"}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(size()-before)/float64(b.N), "dbbytes/device")
}

// BenchmarkAssignDevice is the per-device cost of AssignDevice, which the
// per-device fleet view calls when a device's view is recomputed: three
// rollouts of the product (one selecting a group, so the device's labels
// are read), the product's rollouts read once per store generation.
func BenchmarkAssignDevice(b *testing.B) {
	ctx := b.Context()
	clk := clock.NewFake(t0)
	p, err := project.Init(ctx, b.TempDir(), project.InitOptions{Dev: true, Options: project.Options{Clock: clk}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.AddProduct(ctx, thermostat()); err != nil {
		b.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		b.Fatal(err)
	}
	if _, err := p.SetInventoryFields(ctx, "thermostat", []string{"version", "hardware"}); err != nil {
		b.Fatal(err)
	}
	for _, v := range []string{"1.1.0", "1.2.0", "1.3.0"} {
		if _, err := p.AddRelease(ctx, releaseSpec("thermostat", v, 2, "image "+v)); err != nil {
			b.Fatal(err)
		}
	}
	tk, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 64, AutoAccept: true})
	if err != nil {
		b.Fatal(err)
	}
	devs := make([]store.Device, 64)
	for i := range devs {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		d, err := p.Enroll(ctx, "thermostat", pub, tk.Text)
		if err != nil {
			b.Fatal(err)
		}
		if devs[i], err = p.UpdateInventory(ctx, d.ID, map[string]string{"hardware": "rev-a", "version": "1.0.0"}); err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			if err := p.AddDeviceLabel(ctx, d.ID, store.LabelGroup, "lab"); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, s := range []struct{ version, sel string }{{"1.1.0", ""}, {"1.2.0", "hardware=rev-a"}, {"1.3.0", "group=lab"}} {
		pl, err := rollout.ParsePlan(rollout.PlanFlags{Waves: "10%,50%,100%", MaxFailure: "5%", MinSuccess: "1", Soak: "1h"}, clk.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.StartManagedRollout(ctx, "thermostat", s.version, s.sel, pl); err != nil {
			b.Fatal(err)
		}
	}
	admitted := 0
	b.ResetTimer()
	for i := range b.N {
		_, ok, err := p.AssignDevice(ctx, devs[i%len(devs)])
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			admitted++
		}
	}
	b.ReportMetric(float64(admitted)/float64(b.N), "admitted/op")
}

// BenchmarkWaveCounts is one count of a rollout's waves (RolloutStatus;
// the decision loop counts the same way before each Decide) over 10,000
// and 100,000 accepted devices of which half reported an outcome, on
// SQLite and PostgreSQL, in the steady state of the decision loop:
// between two counts, DecideEvery apart, one device reports an event (not
// timed). The first count (cold, after a restart or a lease change) is
// reported as cold-ms.
func BenchmarkWaveCounts(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) { benchmarkWaveCounts(b, "", n) })
	}
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("postgres/devices=%d", n), func(b *testing.B) { benchmarkWaveCounts(b, pgtest.URL(b), n) })
	}
}

func benchmarkWaveCounts(b *testing.B, database string, n int) {
	ctx := b.Context()
	clk := clock.NewFake(t0)
	o := project.InitOptions{Dev: true, Options: project.Options{Clock: clk}}
	o.Database = database
	p, err := project.Init(ctx, b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.AddProduct(ctx, thermostat()); err != nil {
		b.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		b.Fatal(err)
	}
	if _, err := p.AddRelease(ctx, releaseSpec("thermostat", "1.1.0", 2, "image")); err != nil {
		b.Fatal(err)
	}
	pl, err := rollout.ParsePlan(rollout.PlanFlags{Waves: "1%,10%,50%,100%", MaxFailure: "5%", MinSuccess: "20", Soak: "1h"}, clk.Now())
	if err != nil {
		b.Fatal(err)
	}
	r, err := p.StartManagedRollout(ctx, "thermostat", "1.1.0", "", pl)
	if err != nil {
		b.Fatal(err)
	}
	err = p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		for i := range n {
			id := fmt.Sprintf("dbench%06d", i)
			if err := tx.AddDevice(ctx, store.Device{ID: id, Product: "thermostat", PublicKey: "key-" + id, State: store.DeviceAccepted,
				Inventory: map[string]string{}, Enrolled: t0, Updated: t0}); err != nil {
				return err
			}
			if i%2 == 0 {
				if err := tx.AddDeviceEvent(ctx, store.DeviceEvent{Device: id, Time: t0, Kind: store.EventSucceeded, Version: "1.1.0"}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	count := func() {
		st, err := p.RolloutStatus(ctx, r.ID)
		if err != nil {
			b.Fatal(err)
		}
		members := 0
		for _, w := range st.Waves {
			members += w.Counts.Members
		}
		if members != n {
			b.Fatalf("%d members, want %d", members, n)
		}
	}
	// The fleet enrolled a while ago; the decision loop counts every
	// DecideEvery.
	clk.Advance(time.Hour)
	start := time.Now()
	count()
	cold := time.Since(start)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		clk.Advance(project.DecideEvery)
		if _, err := p.AddDeviceEvent(ctx, fmt.Sprintf("dbench%06d", (2*i+1)%n), store.DeviceEvent{Kind: store.EventFailed, Version: "1.1.0", ErrorClass: "health-check"}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		count()
	}
	b.ReportMetric(float64(cold.Microseconds())/1000, "cold-ms")
}
