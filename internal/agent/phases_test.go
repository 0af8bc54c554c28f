package agent

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/report"
)

// TestMachineTable checks the table's shape: every phase has a row, every
// step leads to a phase of the table, every phase but idle has a restart
// entry, and every phase is reachable from idle and leads back to it.
func TestMachineTable(t *testing.T) {
	if len(machine) != len(Phases()) {
		t.Fatalf("the table has %d rows, Phases lists %d", len(machine), len(Phases()))
	}
	for _, p := range Phases() {
		row, ok := machine[p]
		if !ok {
			t.Fatalf("phase %s has no row", p)
		}
		if (row.restart == nil) != (p == PhaseIdle) {
			t.Errorf("phase %s: restart entry %v; want one for every phase but idle", p, row.restart != nil)
		}
		for _, st := range row.next {
			if _, ok := machine[st.to]; !ok {
				t.Errorf("step %q from %s leads to %s, which has no row", st.point, p, st.to)
			}
		}
	}
	reach := func(from Phase, edges func(Phase) []Phase) map[Phase]bool {
		seen := map[Phase]bool{from: true}
		for todo := []Phase{from}; len(todo) > 0; todo = todo[1:] {
			for _, n := range edges(todo[0]) {
				if !seen[n] {
					seen[n] = true
					todo = append(todo, n)
				}
			}
		}
		return seen
	}
	forward := func(p Phase) []Phase {
		var out []Phase
		for _, st := range machine[p].next {
			out = append(out, st.to)
		}
		return out
	}
	backward := func(p Phase) []Phase {
		var out []Phase
		for _, tr := range Transitions() {
			if tr.To == p {
				out = append(out, tr.From)
			}
		}
		return out
	}
	fromIdle, toIdle := reach(PhaseIdle, forward), reach(PhaseIdle, backward)
	for _, p := range Phases() {
		if !fromIdle[p] || !toIdle[p] {
			t.Errorf("phase %s: reachable from idle %v, leads back to idle %v", p, fromIdle[p], toIdle[p])
		}
	}
}

// TestOnlyEnterChangesThePhase reads the package's source: no code outside
// phases.go assigns a phase, and the raw save runs only in phases.go (enter
// and record) and for owner commands and provisioning, outside any cycle.
// Every step declared is taken somewhere.
func TestOnlyEnterChangesThePhase(t *testing.T) {
	saveAllowed := map[string]bool{"phases.go": true, "owner.go": true, "state.go": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	entered := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				for _, l := range n.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Phase" && name != "phases.go" {
						t.Errorf("%s: assigns the phase outside enter", fset.Position(n.Pos()))
					}
				}
			case *ast.CallExpr:
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					if (fn.Name == "saveState" || fn.Name == "writeState" || fn.Name == "encodeState") && !saveAllowed[name] {
						t.Errorf("%s: saves the state outside enter and record", fset.Position(n.Pos()))
					}
				case *ast.SelectorExpr:
					if fn.Sel.Name == "enter" && len(n.Args) == 2 {
						if id, ok := n.Args[1].(*ast.Ident); ok {
							entered[id.Name] = true
						}
					}
				}
			}
			return true
		})
	}
	for _, name := range []string{"stepWrite", "stepArm", "stepReboot", "stepCommit", "stepRevert", "stepCommitted", "stepRolledBack",
		"stepWriteLost", "stepDropped", "stepAbandoned"} {
		if !entered[name] {
			t.Errorf("%s is never entered", name)
		}
	}
	if len(entered) != 10 {
		t.Errorf("enter is called with %d distinct steps, want the 10 declared: %v", len(entered), entered)
	}
}

func TestEnterRefusesAStepNotInTheTable(t *testing.T) {
	a := testAgent(t, "https://updates.example.com", false)
	s, err := LoadState(a.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Pending = &Pending{Version: "1.1.0", Slot: slot.B}
	if err := a.enter(s, stepArm); err == nil || s.Phase != PhaseIdle {
		t.Fatalf("idle to arming: %v, phase %s; want a refusal", err, s.Phase)
	}
	s.Pending = nil
	if err := a.enter(s, stepWrite); err == nil {
		t.Fatalf("writing without a release was allowed")
	}
	s.Pending = &Pending{Version: "1.1.0", Slot: slot.B}
	if err := a.enter(s, stepWrite); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadState(a.cfg.DataDir); err != nil || got.Phase != PhaseWriting || got.Pending == nil {
		t.Fatalf("after enter: %+v, %v; want writing persisted", got, err)
	}
}

// restartDevice is an agent on a file-slot device whose slot b holds a
// new release, with the bootloader in the state set puts it in.
type restartDevice struct {
	a       *Agent
	dir     string
	points  []string
	reboots int
	healthy bool
}

func newRestartDevice(t *testing.T) *restartDevice {
	t.Helper()
	d := &restartDevice{healthy: true}
	dir := t.TempDir()
	d.dir = filepath.Join(dir, "slots")
	if err := fileslot.Create(d.dir, bytes.NewReader([]byte("factory image")), 1); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Server: "https://updates.example.com", Product: "thermostat", Hardware: "rev-a", DataDir: filepath.Join(dir, "data"),
		ReleaseRoot: filepath.Join(dir, "release.json"), FleetRoot: filepath.Join(dir, "fleet.json"),
		Slot: SlotConfig{Backend: "file", Dir: d.dir}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Provision(cfg.DataDir, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clock.NewFake(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
		HTTP:   &fetch.Config{ConnectTimeout: time.Second, StallTimeout: time.Second, MaxAttempts: 1},
		Reboot: func(context.Context) error { d.reboots++; return ErrRebooting },
		Health: func(context.Context) error {
			return map[bool]error{true: nil, false: errors.New("unhealthy")}[d.healthy]
		},
		PowerLoss: func(p string) error { d.points = append(d.points, p); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	d.a = a
	return d
}

// state returns the persisted state with phase and a pending install of
// 1.1.0 into slot b.
func (d *restartDevice) state(t *testing.T, phase Phase, p *Pending) *State {
	t.Helper()
	s, err := LoadState(d.a.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		p = &Pending{Product: "thermostat", Version: "1.1.0", SecurityVersion: 2, Target: "thermostat/1.1.0", Length: 9,
			SHA256: strings.Repeat("ab", 32), Slot: slot.B, From: slot.A, FromVersion: "1.0.0"}
	}
	s.Phase, s.Pending = phase, p
	return s
}

func TestRestartEntries(t *testing.T) {
	ctx := context.Background()
	arm := func(t *testing.T, d *restartDevice) {
		if err := d.a.slots.Arm(ctx, slot.B); err != nil {
			t.Fatal(err)
		}
	}
	boot := func(t *testing.T, d *restartDevice) {
		if _, err := fileslot.Boot(d.dir); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		phase     Phase
		pending   func(p *Pending)
		boot      func(t *testing.T, d *restartDevice) // the bootloader's state
		unhealthy bool
		err       error // wanted from resume (errors.Is)
		phaseNow  Phase
		version   string       // running afterwards
		failed    report.Class // error class recorded for 1.1.0
		reboots   int
		points    []string // power-loss points passed, in order
	}{
		{name: "writing with saved progress stays", phase: PhaseWriting,
			pending:  func(p *Pending) { p.Progress = &transfer.Progress{Route: transfer.RouteSlot} },
			phaseNow: PhaseWriting, version: "1.0.0", points: []string{"restart-writing"}},
		{name: "writing without saved progress is forgotten", phase: PhaseWriting,
			phaseNow: PhaseIdle, version: "1.0.0", points: []string{"restart-writing", "idle-after-interrupted-write"}},
		{name: "arming in the old slot arms and reboots", phase: PhaseArming, err: ErrRebooting,
			phaseNow: PhaseRebooting, version: "1.0.0", reboots: 1, points: []string{"restart-arming", "after-arm", "rebooting"}},
		{name: "arming on trial in the new slot runs the trial", phase: PhaseArming,
			boot:     func(t *testing.T, d *restartDevice) { arm(t, d); boot(t, d) },
			phaseNow: PhaseIdle, version: "1.1.0", points: []string{"restart-arming", "committing", "after-commit", "idle-after-commit"}},
		{name: "rebooting on trial, unhealthy, reverts", phase: PhaseRebooting, unhealthy: true, err: ErrRebooting,
			boot:     func(t *testing.T, d *restartDevice) { arm(t, d); boot(t, d) },
			phaseNow: PhaseReverting, version: "1.0.0", reboots: 1, points: []string{"restart-rebooting", "reverting", "after-revert"}},
		{name: "rebooting in the new slot without trial commits", phase: PhaseRebooting,
			boot: func(t *testing.T, d *restartDevice) {
				arm(t, d)
				boot(t, d)
				if err := d.a.slots.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			},
			phaseNow: PhaseIdle, version: "1.1.0", points: []string{"restart-rebooting", "after-commit", "idle-after-commit"}},
		{name: "rebooting before the reboot reboots", phase: PhaseRebooting, err: ErrRebooting,
			boot:     arm,
			phaseNow: PhaseRebooting, version: "1.0.0", reboots: 1, points: []string{"restart-rebooting"}},
		{name: "rebooting after the bootloader fell back fails the release", phase: PhaseRebooting,
			boot:     func(t *testing.T, d *restartDevice) { arm(t, d); boot(t, d); boot(t, d) },
			phaseNow: PhaseIdle, version: "1.0.0", failed: report.ClassBootFallback, points: []string{"restart-rebooting", "idle-after-rollback"}},
		{name: "committing in the new slot commits", phase: PhaseCommitting,
			boot:     func(t *testing.T, d *restartDevice) { arm(t, d); boot(t, d) },
			phaseNow: PhaseIdle, version: "1.1.0", points: []string{"restart-committing", "after-commit", "idle-after-commit"}},
		{name: "committing in the old slot fails the release", phase: PhaseCommitting,
			phaseNow: PhaseIdle, version: "1.0.0", failed: report.ClassBootFallback, points: []string{"restart-committing", "idle-after-rollback"}},
		{name: "reverting in the new slot reverts and reboots", phase: PhaseReverting, err: ErrRebooting,
			boot:     func(t *testing.T, d *restartDevice) { arm(t, d); boot(t, d) },
			phaseNow: PhaseReverting, version: "1.0.0", reboots: 1, points: []string{"restart-reverting", "after-revert"}},
		{name: "reverting back in the old slot records the failure", phase: PhaseReverting,
			pending: func(p *Pending) {
				p.Failure = &Failure{Version: "1.1.0", ErrorClass: report.ClassHealthCheck, Reason: "unhealthy"}
			},
			phaseNow: PhaseIdle, version: "1.0.0", failed: report.ClassHealthCheck, points: []string{"restart-reverting", "idle-after-rollback"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newRestartDevice(t)
			d.healthy = !tc.unhealthy
			if tc.boot != nil {
				tc.boot(t, d)
			}
			s := d.state(t, tc.phase, nil)
			if tc.pending != nil {
				tc.pending(s.Pending)
			}
			err := d.a.resume(ctx, s)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("resume: %v, want %v", err, tc.err)
			}
			got, lerr := LoadState(d.a.cfg.DataDir)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if s.Phase != tc.phaseNow || (tc.phaseNow != PhaseWriting && got.Phase != tc.phaseNow) {
				t.Errorf("phase %s (persisted %s), want %s", s.Phase, got.Phase, tc.phaseNow)
			}
			if (s.Phase == PhaseIdle) != (s.Pending == nil) {
				t.Errorf("phase %s with pending %+v", s.Phase, s.Pending)
			}
			if s.Version != tc.version {
				t.Errorf("running %s, want %s", s.Version, tc.version)
			}
			if f, ok := s.Failed["1.1.0"]; ok != (tc.failed != "") || ok && f.ErrorClass != tc.failed {
				t.Errorf("failed %+v, want class %q", s.Failed, tc.failed)
			}
			if d.reboots != tc.reboots {
				t.Errorf("%d reboots, want %d", d.reboots, tc.reboots)
			}
			if !slices.Equal(d.points, tc.points) {
				t.Errorf("power-loss points %v, want %v", d.points, tc.points)
			}
		})
	}
}

func TestResumeRefusesBrokenState(t *testing.T) {
	d := newRestartDevice(t)
	s := d.state(t, "flying", nil)
	if err := d.a.resume(context.Background(), s); err == nil || !strings.Contains(err.Error(), `unknown phase "flying"`) {
		t.Fatalf("unknown phase: %v", err)
	}
	s = d.state(t, PhaseArming, nil)
	s.Pending = nil
	if err := d.a.resume(context.Background(), s); err == nil || !strings.Contains(err.Error(), "names no release") {
		t.Fatalf("arming without a release: %v", err)
	}
	if _, err := os.Stat(d.a.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
}
