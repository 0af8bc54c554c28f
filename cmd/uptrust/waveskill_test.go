package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// waitRollout polls the rollout's persisted state until ok accepts it.
// The deadline only bounds a hung test; nothing is asserted about time.
func waitRollout(t *testing.T, p *project.Project, id string, what string, ok func(rollout.State) bool) rollout.State {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m, err := p.ManagedRollout(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(m.State) {
			return m.State
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never %s: state %+v", what, m.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRolloutDecisionsSurviveSIGKILL: a real `uptrust serve` decides a
// managed rollout (wave 1 passes: it advances to wave 2), is killed with
// SIGKILL after that decision, and a new server started on the same
// project resumes exactly there: the advance is neither lost nor taken
// again, and the next decision (a halt, once wave 2 fails too often) is
// taken once, with its audit entry, and the audit chain verifies.
func TestRolloutDecisionsSurviveSIGKILL(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "proj")
	mustRun(t, "init", "--dir", dir, "--dev")
	mustRun(t, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", dir)
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, []byte(strings.Repeat("image ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "release", "add", "thermostat", "1.1.0", img, "--kind", "security", "--security-version", "1", "--dir", dir)
	mustRun(t, "product", "mode", "thermostat", "managed", "--dir", dir)

	p, err := project.Open(ctx, dir, project.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	plan, err := rollout.ParsePlan(rollout.PlanFlags{Waves: "50%,100%", MaxFailure: "20%", MinSuccess: "1", Soak: "0s"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.StartManagedRollout(ctx, "thermostat", "1.1.0", "", plan)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 100, TTL: time.Hour, AutoAccept: true})
	if err != nil {
		t.Fatal(err)
	}
	// Devices enrol after the start; each lands in its wave.
	by := [2][]string{}
	for len(by[0]) < 2 || len(by[1]) < 2 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		d, err := p.Enroll(ctx, "thermostat", pub, tk.Text)
		if err != nil {
			t.Fatal(err)
		}
		k := plan.WaveOf(rollout.WaveBucket(r.ID, d.ID))
		by[k] = append(by[k], d.ID)
	}
	event := func(id, kind string) {
		t.Helper()
		e := store.DeviceEvent{Kind: kind, Version: "1.1.0"}
		if kind == store.EventFailed {
			e.ErrorClass = "health-check"
		}
		if _, err := p.AddDeviceEvent(ctx, id, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range by[0] {
		event(id, store.EventSucceeded)
	}
	decisions := func() []store.AuditEntry {
		t.Helper()
		es, err := p.AuditQuery(ctx, store.AuditFilter{Action: project.ActionWavesDecide})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}

	s := startServer(t, dir, "127.0.0.1:0")
	advanced := waitRollout(t, p, r.ID, "advanced to wave 2", func(st rollout.State) bool { return st.Wave == 1 })
	s.kill()
	if advanced.Phase != rollout.PhaseActive {
		t.Fatalf("after wave 1 passed: %+v, want active in wave 2 (wave 2 has no success yet)", advanced)
	}
	es := decisions()
	if len(es) != 1 || !strings.Contains(es[0].Detail, "advance") {
		t.Fatalf("decisions before the kill: %+v, want one advance", es)
	}

	// While the server is down, wave 2 fails: 1 of 2 finished (50%).
	event(by[1][0], store.EventFailed)
	event(by[1][1], store.EventSucceeded)
	s = startServer(t, dir, "127.0.0.1:0")
	halted := waitRollout(t, p, r.ID, "halted", func(st rollout.State) bool { return st.Phase == rollout.PhaseHalted })
	s.kill()
	if halted.Wave != 1 || !halted.Since.Equal(advanced.Since) || !strings.Contains(halted.Reason, "wave 2 of 2") {
		t.Errorf("after the restart: %+v, want halted in wave 2 since the persisted advance %v", halted, advanced.Since)
	}
	es = decisions()
	if len(es) != 2 || !strings.Contains(es[0].Detail, "advance") || !strings.Contains(es[1].Detail, "halt") ||
		!strings.Contains(es[1].Detail, "threshold 20%") || !strings.Contains(es[1].Detail, "50.00%") {
		t.Errorf("decisions: %+v, want the advance once and then the halt naming ratio and threshold", es)
	}
	if r := run(t, "uptrust", "audit", "verify", "--dir", dir); r.Code != 0 {
		t.Errorf("audit verify after two kills: %v", r)
	}
}
