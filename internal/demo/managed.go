package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/sim"
	"github.com/uptrust/uptrust/internal/store"
)

// ManagedOptions configure a managed demo run (RunManaged).
type ManagedOptions struct {
	// Devices is how many devices enrol before the rollout (default 30).
	Devices int
	// ImageBytes is the size of the firmware images (default 64 KiB).
	ImageBytes int
	// Waves, MaxFailure, MinSuccess and Soak are the rollout's flags as
	// `uptrust rollout start` takes them (defaults 10%,40%,100%, 20%, 2
	// and 0s). The plan needs at least three waves: the second one holds
	// the failing devices, the third is never reached.
	Waves, MaxFailure, MinSuccess, Soak string
	// Dir is the working directory; a temporary one when empty (removed
	// afterwards).
	Dir string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

func (o *ManagedOptions) defaults() {
	if o.Devices == 0 {
		o.Devices = 30
	}
	if o.ImageBytes == 0 {
		o.ImageBytes = 64 << 10
	}
	if o.Waves == "" {
		o.Waves = "10%,40%,100%"
	}
	if o.MaxFailure == "" {
		o.MaxFailure = "20%"
	}
	if o.MinSuccess == "" {
		o.MinSuccess = "2"
	}
	if o.Soak == "" {
		o.Soak = "0s"
	}
}

// ManagedDevice is one device of the managed demo.
type ManagedDevice struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Wave is the device's wave in the rollout, 1-based.
	Wave int `json:"wave"`
	// Failing says the demo made its health check fail.
	Failing bool   `json:"failing"`
	Before  string `json:"before"`
	After   string `json:"after"`
	// Offered says the server offered the device the release: its history
	// holds an event about it.
	Offered bool `json:"offered"`
	// Events are the kinds of the device's events about the release, in
	// order (downloading once however often it reported progress).
	Events []string `json:"events"`
}

// ManagedSummary is the managed demo's result.
type ManagedSummary struct {
	Devices int    `json:"devices"`
	Release string `json:"release"`
	Rollout string `json:"rollout"`
	// Phase is the rollout's phase at the end: halted when the demo went
	// as designed.
	Phase string `json:"phase"`
	// Reason is why the rollout is halted, in the decision loop's words.
	Reason string `json:"reason"`
	// HaltedWave is the 1-based wave whose failure ratio halted the
	// rollout (0 when it did not halt), FailurePercent that ratio and
	// Threshold the plan's maximum.
	HaltedWave     int     `json:"halted_wave"`
	FailurePercent float64 `json:"failure_percent"`
	Threshold      string  `json:"threshold"`
	// Waves are the counts per wave (project.RolloutStatus).
	Waves []rollout.WaveStatus `json:"waves"`
	// NeverOffered counts the devices of the waves after the halted one
	// that were never offered the release and still run the old one.
	NeverOffered int `json:"never_offered"`
	// Decisions are the decision loop's steps, as the audit log has them.
	Decisions []string        `json:"decisions"`
	Seconds   float64         `json:"seconds"`
	Results   []ManagedDevice `json:"results"`
}

// managedDemo is a running managed demo: the project, the server's
// device handler and the devices by ID.
type managedDemo struct {
	p       *project.Project
	h       *managed.Handler
	srv     *server.Server
	say     func(string, ...any)
	url     string
	dir     string
	token   string
	factory []byte
	roots   [2][]byte
	devs    []*sim.Device
	ids     map[*sim.Device]string
}

// RunManaged runs the managed demo: a managed product with declared
// inventory on an embedded SQLite project, devices running the real agent
// in managed mode that enrol with a token and are accepted by the
// operator, and a rollout in waves whose second wave holds devices whose
// health check fails: they roll back, the decision loop (project.Tick,
// which `uptrust serve` runs every project.DecideEvery) halts the rollout
// by itself, and the devices of the later waves are never offered the
// release.
func RunManaged(ctx context.Context, o ManagedOptions) (*ManagedSummary, error) {
	start := time.Now()
	o.defaults()
	if o.Devices < 1 {
		return nil, fmt.Errorf("demo: --devices %d: need at least one device", o.Devices)
	}
	if o.ImageBytes < 1 {
		return nil, fmt.Errorf("demo: image size %d: want a positive size", o.ImageBytes)
	}
	plan, err := rollout.ParsePlan(rollout.PlanFlags{Waves: o.Waves, MaxFailure: o.MaxFailure, MinSuccess: o.MinSuccess, Soak: o.Soak}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if len(plan.Waves) < 3 {
		return nil, fmt.Errorf("demo: --waves %s: the managed demo needs at least three waves (the second fails, the third is never reached)", o.Waves)
	}
	if plan.Soak > 0 {
		return nil, fmt.Errorf("demo: --soak %s: the demo does not wait; use 0s", o.Soak)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	m := &managedDemo{say: func(format string, args ...any) { fmt.Fprintf(progress, "==> "+format+"\n", args...) }, ids: map[*sim.Device]string{}}
	m.dir = o.Dir
	if m.dir == "" {
		tmp, err := os.MkdirTemp("", "uptrust-demo-managed-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		m.dir = tmp
	}
	stop, err := m.setUp(ctx, o)
	if err != nil {
		return nil, err
	}
	defer stop()
	defer m.p.Close()

	m.say("%d devices start in managed mode: each makes its key, enrols with the token and waits", o.Devices)
	for range o.Devices {
		if err := m.enrol(ctx); err != nil {
			return nil, err
		}
	}
	if err := m.acceptPending(ctx); err != nil {
		return nil, err
	}

	next := update(m.factory)
	m.say("uptrust release add %s 1.1.0 update.img --kind security --security-version 2", product)
	if _, err := m.p.AddRelease(ctx, project.ReleaseSpec{Product: product, Version: "1.1.0", Payload: bytesReader(next), Kind: release.KindSecurity,
		SecurityVersion: 2, Notes: "Fixes a remote code execution in the MQTT client."}); err != nil {
		return nil, err
	}
	m.say("uptrust rollout start %s 1.1.0 --waves %s --max-failure %s --min-success %s --soak %s", product, o.Waves, o.MaxFailure, o.MinSuccess, o.Soak)
	ro, err := m.p.StartManagedRollout(ctx, product, "1.1.0", "", plan)
	if err != nil {
		return nil, err
	}
	// The selection takes in devices that enrol after the start: while a
	// wave the demo needs is empty, one more device enrols.
	for extra := 0; ; extra++ {
		byWave := m.byWave(ro)
		if len(byWave[0]) > 0 && len(byWave[1]) > 0 && len(byWave[len(plan.Waves)-1]) > 0 {
			break
		}
		if extra == 200 {
			return nil, errors.New("demo: 200 more devices left a wave empty")
		}
		if extra == 0 {
			m.say("a wave has no device yet: devices enrolling after the start join the rollout by the same rule; enrolling more")
		}
		if err := m.enrol(ctx); err != nil {
			return nil, err
		}
		if err := m.acceptPending(ctx); err != nil {
			return nil, err
		}
	}
	byWave := m.byWave(ro)
	failing := map[string]bool{}
	second := byWave[1]
	for _, d := range second[:(len(second)+1)/2] {
		failing[m.ids[d]] = true
		d.Health = func(context.Context) error { return errors.New("service thermostatd did not start") }
	}
	m.say("waves: %d, %d and %d devices; %d of wave 2 will fail their health check after installing",
		len(byWave[0]), len(byWave[1]), len(byWave[len(plan.Waves)-1]), len(failing))

	m.say("the decision loop starts the rollout: wave 1 is offered 1.1.0")
	if err := m.tick(ctx); err != nil {
		return nil, err
	}
	m.say("every device checks: wave 1 installs 1.1.0, the others are offered nothing")
	m.cycleAll(ctx)
	m.say("the decision loop: wave 1 succeeded, wave 2 opens")
	if err := m.tick(ctx); err != nil {
		return nil, err
	}
	m.say("every device checks: wave 2 installs; the failing devices roll back and report it")
	m.cycleAll(ctx)
	m.say("the decision loop judges wave 2")
	if err := m.tick(ctx); err != nil {
		return nil, err
	}
	m.say("every device checks again: nobody is offered 1.1.0 any more")
	m.cycleAll(ctx)
	return m.summary(ctx, ro.ID, failing, start)
}

// setUp creates the project, the managed product, the token and the
// server; stop stops the server.
func (m *managedDemo) setUp(ctx context.Context, o ManagedOptions) (stop func(), err error) {
	projDir := filepath.Join(m.dir, "project")
	m.say("uptrust init --dev --dir %s   (embedded SQLite)", projDir)
	if m.p, err = project.Init(ctx, projDir, project.InitOptions{Dev: true}); err != nil {
		return nil, err
	}
	fail := func(err error) (func(), error) {
		m.p.Close()
		return nil, err
	}
	until := time.Now().AddDate(5, 0, 0).Format(time.DateOnly)
	m.say("uptrust product add %s --hardware %s --support-until %s", product, hardware, until)
	if err := m.p.AddProduct(ctx, project.ProductSpec{Name: product, Model: "Thermostat T1", Hardware: []string{hardware}, SupportUntil: until, Contact: "security@example.com"}); err != nil {
		return fail(err)
	}
	m.say("uptrust product mode %s managed", product)
	if _, err := m.p.SetProductMode(ctx, product, store.ModeManaged); err != nil {
		return fail(err)
	}
	m.say("uptrust product inventory %s --fields version,hardware,slot", product)
	if _, err := m.p.SetInventoryFields(ctx, product, []string{"version", "hardware", "slot"}); err != nil {
		return fail(err)
	}
	m.factory = image(1, o.ImageBytes)
	m.say("uptrust release add %s 1.0.0 factory.img --kind feature --security-version 1", product)
	if _, err := m.p.AddRelease(ctx, project.ReleaseSpec{Product: product, Version: "1.0.0", Payload: bytesReader(m.factory), Kind: release.KindFeature, SecurityVersion: 1, Notes: "Factory image."}); err != nil {
		return fail(err)
	}
	m.say("uptrust enrollment-token create --product %s --uses %d --expires 1h", product, o.Devices+200)
	tok, err := m.p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: product, Uses: o.Devices + 200, TTL: time.Hour})
	if err != nil {
		return fail(err)
	}
	m.token = tok.Text
	for i, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		if m.roots[i], err = os.ReadFile(project.DeviceRootPath(projDir, name)); err != nil {
			return fail(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	m.h = managed.New(m.p)
	m.srv, err = server.New(server.Config{Source: m.p, Reports: m.p, Devices: m.h, PollEvery: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		ln.Close()
		return fail(err)
	}
	if err := m.reload(ctx); err != nil {
		ln.Close()
		return fail(err)
	}
	srvCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.srv.Run(srvCtx, ln, nil) }()
	m.url = "http://" + ln.Addr().String()
	m.say("uptrust serve --listen %s", ln.Addr())
	return func() { cancel(); <-done }, nil
}

// reload makes the server and its device cache read what changed, as its
// poll loop does every PollEvery.
func (m *managedDemo) reload(ctx context.Context) error {
	if err := m.srv.Reload(ctx); err != nil {
		return err
	}
	return m.h.Poll(ctx)
}

// enrol provisions one more device and runs its first check: it enrols
// and waits for the operator.
func (m *managedDemo) enrol(ctx context.Context) error {
	name := fmt.Sprintf("device-%02d", len(m.devs)+1)
	d, err := sim.New(filepath.Join(m.dir, "devices", name), sim.Spec{Name: name, Server: m.url, Product: product, Hardware: hardware,
		ReleaseRoot: m.roots[0], FleetRoot: m.roots[1], Factory: m.factory, Version: "1.0.0", SecurityVersion: 1,
		Mode: agent.ModeManaged, EnrollmentToken: m.token})
	if err != nil {
		return err
	}
	chk, err := d.Cycle(ctx)
	if err != nil {
		return fmt.Errorf("demo: %s: %w", name, err)
	}
	if chk.Action != agent.ActionPending {
		return fmt.Errorf("demo: %s after enrolling: %s (%s), want pending", name, chk.Action, chk.Reason)
	}
	e, err := agent.LoadEnrolment(d.Config.DataDir)
	if err != nil || e == nil || e.DeviceID == "" {
		return fmt.Errorf("demo: %s has no enrolment record (%v)", name, err)
	}
	m.devs = append(m.devs, d)
	m.ids[d] = e.DeviceID
	return nil
}

// acceptPending accepts every pending device, as the operator does with
// uptrust device list --state pending and uptrust device accept.
func (m *managedDemo) acceptPending(ctx context.Context) error {
	pending, err := m.p.Devices(ctx, store.DeviceFilter{State: store.DevicePending})
	if err != nil {
		return err
	}
	if len(pending) > 1 {
		m.say("uptrust device accept ID   (the operator accepts the %d pending devices)", len(pending))
	}
	for _, d := range pending {
		if _, err := m.p.AcceptDevice(ctx, d.ID); err != nil {
			return err
		}
	}
	return m.reload(ctx)
}

// byWave groups the devices by their wave in ro (0-based).
func (m *managedDemo) byWave(ro project.ManagedRollout) [][]*sim.Device {
	out := make([][]*sim.Device, len(ro.Plan.Waves))
	for _, d := range m.devs {
		k := ro.Plan.WaveOf(rollout.WaveBucket(ro.ID, m.ids[d]))
		out[k] = append(out[k], d)
	}
	return out
}

// tick runs the decision loop once and makes the server read its
// decisions.
func (m *managedDemo) tick(ctx context.Context) error {
	if _, err := m.p.Tick(ctx); err != nil {
		return err
	}
	return m.reload(ctx)
}

// cycleAll runs one update check on every device, four at a time. A
// device's error is in its status (the summary reads it), not fatal.
func (m *managedDemo) cycleAll(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, d := range m.devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, _ = d.Cycle(ctx)
		}()
	}
	wg.Wait()
}

func (m *managedDemo) summary(ctx context.Context, id string, failing map[string]bool, start time.Time) (*ManagedSummary, error) {
	st, err := m.p.RolloutStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	s := &ManagedSummary{Devices: len(m.devs), Release: st.Rollout.Version, Rollout: id, Phase: string(st.Rollout.State.Phase),
		Threshold: rollout.FormatShare(st.Rollout.Plan.MaxFailure), Waves: st.Waves}
	if st.Rollout.State.Phase == rollout.PhaseHalted {
		s.Reason = st.Rollout.State.Reason
		for _, w := range st.Waves {
			if w.Failing {
				s.HaltedWave, s.FailurePercent = w.Wave, w.FailurePercent
				break
			}
		}
	}
	audit, err := m.p.AuditQuery(ctx, store.AuditFilter{Action: project.ActionWavesDecide})
	if err != nil {
		return nil, err
	}
	for _, a := range audit {
		s.Decisions = append(s.Decisions, a.Detail)
	}
	for _, d := range m.devs {
		r, err := m.result(ctx, d, st.Rollout)
		if err != nil {
			return nil, err
		}
		r.Failing = failing[r.ID]
		if s.HaltedWave > 0 && r.Wave > s.HaltedWave && !r.Offered && r.After == "1.0.0" {
			s.NeverOffered++
		}
		s.Results = append(s.Results, r)
	}
	s.Seconds = time.Since(start).Seconds()
	return s, nil
}

// result is one device's outcome: its wave, what it runs and its history
// about the release.
func (m *managedDemo) result(ctx context.Context, d *sim.Device, ro project.ManagedRollout) (ManagedDevice, error) {
	id := m.ids[d]
	r := ManagedDevice{Name: d.Name, ID: id, Before: "1.0.0", Wave: ro.Plan.WaveOf(rollout.WaveBucket(ro.ID, id)) + 1}
	stat, err := d.Status(ctx)
	if err != nil {
		return r, fmt.Errorf("demo: status of %s: %w", d.Name, err)
	}
	r.After = stat.Version
	x, err := m.p.ExportDevice(ctx, id)
	if err != nil {
		return r, err
	}
	for _, e := range x.Events {
		if e.Version != ro.Version {
			continue
		}
		r.Offered = true
		if n := len(r.Events); n > 0 && r.Events[n-1] == e.Kind {
			continue
		}
		r.Events = append(r.Events, e.Kind)
	}
	return r, nil
}

// Text is the summary for people: what happened to the rollout and why,
// in plain words.
func (s *ManagedSummary) Text() string {
	out := fmt.Sprintf("%d managed devices enrolled and accepted; rollout %s of %s in %d waves.\n", s.Devices, s.Rollout, s.Release, len(s.Waves))
	for _, w := range s.Waves {
		c := w.Counts
		out += fmt.Sprintf("  wave %d (%s): %-7s %2d devices: %d succeeded, %d failed, %d rolled back, %d offered without outcome, %d skipped; failure ratio %s\n",
			w.Wave, w.Share, w.State, c.Members, c.Succeeded, c.Failed, c.RolledBack, c.Offered, c.Skipped, strconv.FormatFloat(w.FailurePercent, 'f', 1, 64)+"%")
	}
	if s.Phase != string(rollout.PhaseHalted) {
		return out + fmt.Sprintf("The rollout did not halt: it is %s.\n", s.Phase)
	}
	out += fmt.Sprintf("The rollout halted itself in wave %d: %.1f%% of its devices that finished failed or rolled back, above the %s allowed.\n",
		s.HaltedWave, s.FailurePercent, s.Threshold)
	out += fmt.Sprintf("The decision loop recorded in the audit log: %s.\n", s.Reason)
	out += fmt.Sprintf("%d devices of the later waves were never offered %s and still run 1.0.0.\n", s.NeverOffered, s.Release)
	return out
}
