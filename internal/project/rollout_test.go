package project_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

func fleetTargets(t *testing.T, p *project.Project) map[string]*metadata.TargetFiles {
	t.Helper()
	return loadTargets(t, p, deviceapi.RepoFleet, repo.RoleTargets).Signed.Targets
}

func rolloutOf(t *testing.T, tf *metadata.TargetFiles) rollout.Rule {
	t.Helper()
	if tf.Custom == nil {
		t.Fatal("fleet target has no custom metadata")
	}
	// Exactly {"uptrust":{"rollout":{...}}}.
	var outer map[string]map[string]json.RawMessage
	if err := json.Unmarshal(*tf.Custom, &outer); err != nil {
		t.Fatalf("fleet custom %s: %v", *tf.Custom, err)
	}
	if len(outer) != 1 || len(outer["uptrust"]) != 1 || outer["uptrust"]["rollout"] == nil {
		t.Fatalf("fleet custom %s, want {\"uptrust\":{\"rollout\":...}}", *tf.Custom)
	}
	var r rollout.Rule
	if err := json.Unmarshal(outer["uptrust"]["rollout"], &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRollouts(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	addProduct(t, p, thermostat())
	addProduct(t, p, project.ProductSpec{Name: "thermo", Hardware: []string{"v1"}, SupportUntil: "2030-01-01"})
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 1, "1.1.0"))
	addRelease(t, p, releaseSpec("thermostat", "1.2.0", 1, "1.2.0"))
	addRelease(t, p, releaseSpec("thermo", "2.0.0", 1, "thermo 2.0.0"))
	releaseTarget := func(product, version string) *metadata.TargetFiles {
		return loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole(product)).Signed.Targets[release.TargetName(product, version)]
	}

	clk.Advance(time.Minute)
	start := clk.Now()
	ro, err := p.StartRollout(ctx, "thermostat", "1.1.0", 10)
	if err != nil {
		t.Fatalf("StartRollout: %v", err)
	}
	if ro.Percent != 10 || ro.Halted || !ro.Start.Equal(start) {
		t.Errorf("rollout %+v", ro)
	}
	targets := fleetTargets(t, p)
	if len(targets) != 1 {
		t.Fatalf("fleet targets %v, want one", targets)
	}
	tf := targets["thermostat/1.1.0"]
	if tf == nil {
		t.Fatal("fleet does not offer thermostat/1.1.0")
	}
	rt := releaseTarget("thermostat", "1.1.0")
	if tf.Length != rt.Length || !tf.Hashes.Equal(rt.Hashes) {
		t.Errorf("fleet target %d %v, release target %d %v: must be identical", tf.Length, tf.Hashes, rt.Length, rt.Hashes)
	}
	if r := rolloutOf(t, tf); r.Percent != 10 || r.Halted || !r.Start.Equal(start) {
		t.Errorf("fleet rule %+v", r)
	}

	// A second product is offered next to the first, even when its name is
	// a prefix of the first's.
	if _, err := p.StartRollout(ctx, "thermo", "2.0.0", 100); err != nil {
		t.Fatal(err)
	}
	if targets := fleetTargets(t, p); len(targets) != 2 || targets["thermostat/1.1.0"] == nil || targets["thermo/2.0.0"] == nil {
		t.Fatalf("fleet targets %v, want thermostat/1.1.0 and thermo/2.0.0", targets)
	}
	// A new rollout replaces the product's earlier offer.
	clk.Advance(time.Minute)
	start2 := clk.Now()
	if _, err := p.StartRollout(ctx, "thermostat", "1.2.0", 50); err != nil {
		t.Fatal(err)
	}
	targets = fleetTargets(t, p)
	var paths []string
	for path := range targets {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	if !reflect.DeepEqual(paths, []string{"thermo/2.0.0", "thermostat/1.2.0"}) {
		t.Fatalf("fleet targets %v, want one per product", paths)
	}
	if r := rolloutOf(t, targets["thermostat/1.2.0"]); r.Percent != 50 || !r.Start.Equal(start2) {
		t.Errorf("rule after restart %+v", r)
	}
	if rt := releaseTarget("thermostat", "1.2.0"); targets["thermostat/1.2.0"].Length != rt.Length || !targets["thermostat/1.2.0"].Hashes.Equal(rt.Hashes) {
		t.Error("fleet 1.2.0 target differs from the release target")
	}

	// Halt, change percent, resume: the start time stays.
	clk.Advance(time.Minute)
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Halted = true }); err != nil {
		t.Fatal(err)
	}
	if r := rolloutOf(t, fleetTargets(t, p)["thermostat/1.2.0"]); !r.Halted || r.Percent != 50 || !r.Start.Equal(start2) {
		t.Errorf("halted rule %+v", r)
	}
	ro, err = p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Halted = false; r.Percent = 75 })
	if err != nil {
		t.Fatal(err)
	}
	if ro.Version != "1.2.0" || !ro.Updated.Equal(clk.Now()) {
		t.Errorf("changed rollout %+v", ro)
	}
	if r := rolloutOf(t, fleetTargets(t, p)["thermostat/1.2.0"]); r.Halted || r.Percent != 75 {
		t.Errorf("resumed rule %+v", r)
	}
	stored, err := p.Store.Rollout(ctx, "thermostat")
	if err != nil || stored.Percent != 75 || stored.Halted || stored.Version != "1.2.0" {
		t.Errorf("stored rollout %+v, %v", stored, err)
	}

	// Refusals leave the fleet repository as it was.
	fleetV := latest(t, p, deviceapi.RepoFleet, repo.RoleTargets).Version
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Percent = 101 }); err == nil {
		t.Error("percent 101 accepted")
	}
	if _, err := p.StartRollout(ctx, "thermostat", "1.1.0", -1); err == nil {
		t.Error("percent -1 accepted")
	}
	if _, err := p.StartRollout(ctx, "thermostat", "9.9.9", 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rollout of an unknown release: %v, want store.ErrNotFound", err)
	}
	if _, err := p.ChangeRollout(ctx, "doorbell", func(r *store.Rollout) { r.Percent = 1 }); err == nil {
		t.Error("changing a rollout that does not exist succeeded")
	}
	if v := latest(t, p, deviceapi.RepoFleet, repo.RoleTargets).Version; v != fleetV {
		t.Errorf("fleet targets version %d after refusals, want %d", v, fleetV)
	}
	if stored, _ := p.Store.Rollout(ctx, "thermostat"); stored.Percent != 75 || stored.Version != "1.2.0" {
		t.Errorf("stored rollout changed by a refusal: %+v", stored)
	}
	verifyAsClient(t, p, deviceapi.RepoFleet, readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoFleet)), clk.Now())
}
