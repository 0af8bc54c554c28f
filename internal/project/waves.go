package project

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// Managed rollouts in waves: the pure core (internal/rollout) wired to the
// store.
//
// A managed rollout offers one published release of a managed product to
// the devices its selection filter selects (rollout.ParseSelector), in
// cumulative waves (rollout.Plan). Selection and ownership are evaluated
// lazily, per device, when the device's view is computed (AssignDevice)
// and when the decision loop counts (Tick): no device list is ever stored,
// so devices that enrol, join a group or report new inventory after the
// rollout started take part by the same rules.
//
// Supersession: a device is in at most one rollout of its product at a
// time: the newest (highest Seq) rollout that selects it and is active,
// paused or halted owns it (rollout.Owner). A scheduled rollout owns
// nothing before its start; an aborted or complete one owns nothing. A
// device that no rollout owns runs the release of the newest complete
// rollout that selects it, if any (the last release completed for it).
//
// Persistence before action: every state change (operator actions and the
// decision loop's steps) is written together with its audit entry in one
// store.Update, which also bumps the store generation so device views
// recompute; nothing reads a state that was not committed. A server
// killed between two decisions reads the persisted state on restart and
// decides again from there (rollout.Decide is deterministic).
//
// Counting: a wave's counts are its owned, accepted devices, each counted
// once by its latest event for the rollout's version received since the
// rollout was created (store.LatestDeviceEvents). Skips, owners' choices
// included, are never failures. The counts are kept up to date
// incrementally in memory (wavecount.go).

// Audit actions of managed rollouts and device labels.
const (
	ActionWavesStart   = "rollout.waves.start"
	ActionWavesPause   = "rollout.pause"
	ActionWavesResume  = "rollout.resume"
	ActionWavesAbort   = "rollout.abort"
	ActionWavesDecide  = "rollout.decide"
	ActionDeviceLabel  = "device.label.add"
	ActionDeviceUnlabl = "device.label.remove"
)

// ManagedRollout is a managed rollout as the project reads it.
type ManagedRollout struct {
	ID, Product, Version string
	Seq                  int64
	// Selection is the filter as given; Selector is it parsed.
	Selection string
	Selector  rollout.Selector
	Plan      rollout.Plan
	State     rollout.State
	Created   time.Time
	Updated   time.Time
}

// RolloutStatus is a managed rollout with the status of each wave.
type RolloutStatus struct {
	Rollout ManagedRollout
	Waves   []rollout.WaveStatus
}

func decodeRollout(r store.ManagedRollout) (ManagedRollout, error) {
	m := ManagedRollout{ID: r.ID, Product: r.Product, Version: r.Version, Seq: r.Seq, Selection: r.Selection, Created: r.Created, Updated: r.Updated}
	var err error
	if m.Selector, err = rollout.ParseSelector(r.Selection); err != nil {
		return m, fmt.Errorf("project: rollout %s: stored selection: %w", r.ID, err)
	}
	if err := json.Unmarshal(r.Plan, &m.Plan); err != nil {
		return m, fmt.Errorf("project: rollout %s: stored plan: %w", r.ID, err)
	}
	if err := json.Unmarshal(r.State, &m.State); err != nil {
		return m, fmt.Errorf("project: rollout %s: stored state: %w", r.ID, err)
	}
	return m, nil
}

func decodeRollouts(rs []store.ManagedRollout) ([]ManagedRollout, error) {
	out := make([]ManagedRollout, 0, len(rs))
	for _, r := range rs {
		m, err := decodeRollout(r)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// newRolloutID returns a random rollout id: "r" and 8 random bytes in hex.
func newRolloutID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "r" + hex.EncodeToString(b), nil
}

// checkSelection refuses a filter that names a group or tag no device of
// the product has, or an inventory field the product does not declare.
func checkSelection(ctx context.Context, r store.Reader, product string, sel rollout.Selector) error {
	for _, kind := range []string{store.LabelGroup, store.LabelTag} {
		for _, name := range sel.Names(kind) {
			ls, err := r.DeviceLabels(ctx, store.LabelFilter{Product: product, Kind: kind, Name: name})
			if err != nil {
				return err
			}
			if len(ls) == 0 {
				return invalidf("--select: unknown %s %q: no device of %s is in it (uptrust device %s add)", kind, name, product, kind)
			}
		}
	}
	pol, err := devicePolicy(ctx, r, product)
	if err != nil {
		return err
	}
	for _, f := range sel.Names("inventory") {
		if !slices.Contains(pol.Inventory, f) {
			return invalidf("--select: inventory field %q is not declared by %s (declared: %s)", f, product, strings.Join(pol.Inventory, ", "))
		}
	}
	return nil
}

// StartManagedRollout creates a rollout in waves of a published release of
// a managed product, selecting devices by filter (rollout.ParseSelector
// syntax; "" selects all), and takes its first decision at once (a plan
// starting now is active in wave 1 when this returns; the decision loop
// takes every later step). Bad input — an
// anonymous product, an unpublished version, a bad filter, an unknown
// group or tag, an undeclared inventory field, an invalid plan — is
// refused with an error naming it, and nothing is written.
func (p *Project) StartManagedRollout(ctx context.Context, product, version, filter string, plan rollout.Plan) (ManagedRollout, error) {
	fail := func(err error) (ManagedRollout, error) {
		return ManagedRollout{}, fmt.Errorf("project: start rollout of %s %s: %w", product, version, err)
	}
	if err := p.CheckProduct(ctx, product); err != nil {
		return fail(err)
	}
	if err := requireManaged(ctx, p.Store, product); err != nil {
		return fail(err)
	}
	if _, err := p.Store.Release(ctx, product, version); errors.Is(err, store.ErrNotFound) {
		return fail(fmt.Errorf("release %s is not published (uptrust release add): %w", version, store.ErrNotFound))
	} else if err != nil {
		return fail(err)
	}
	sel, err := rollout.ParseSelector(filter)
	if err != nil {
		return fail(invalidf("%v", err))
	}
	if err := plan.Validate(); err != nil {
		return fail(invalidf("%v", err))
	}
	id, err := newRolloutID()
	if err != nil {
		return fail(err)
	}
	now := p.Clock.Now().UTC()
	// The first decision is taken with the start, in the same transaction
	// and audit entry: a plan starting now is active in wave 1 at once.
	// Later steps are the decision loop's (Tick).
	state, step, err := rollout.Decide(plan, rollout.NewState(), make([]rollout.Counts, len(plan.Waves)), now)
	if err != nil {
		return fail(invalidf("%v", err))
	}
	if step.Action != rollout.ActionStart {
		state = rollout.NewState()
	}
	planJSON, _ := json.Marshal(plan)
	stateJSON, _ := json.Marshal(state)
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		if err := checkSelection(ctx, tx, product, sel); err != nil {
			return err
		}
		if err := tx.AddManagedRollout(ctx, store.ManagedRollout{ID: id, Product: product, Version: version, Selection: sel.String(),
			Plan: planJSON, State: stateJSON, Created: now, Updated: now}); err != nil {
			return err
		}
		detail := fmt.Sprintf("id %s; waves %s; max failure %s; min success %d; soak %s; start %s",
			id, formatWaves(plan.Waves), rollout.FormatShare(plan.MaxFailure), plan.MinSuccess, plan.Soak, plan.Start.UTC().Format(time.RFC3339))
		if plan.Window != nil {
			detail += "; window " + plan.Window.String()
		}
		if s := sel.String(); s != "" {
			detail += "; select " + s
		}
		if step.Action == rollout.ActionStart {
			detail += "; " + step.Reason
		}
		return audit(ctx, tx, now, ActionWavesStart, product+"/"+version, detail)
	})
	if err != nil {
		return fail(err)
	}
	return p.ManagedRollout(ctx, id)
}

func formatWaves(w []int) string {
	s := make([]string, len(w))
	for i, v := range w {
		s[i] = rollout.FormatShare(v)
	}
	return strings.Join(s, ",")
}

// ManagedRollout reads the managed rollout id.
func (p *Project) ManagedRollout(ctx context.Context, id string) (ManagedRollout, error) {
	r, err := p.Store.ManagedRollout(ctx, id)
	if err != nil {
		return ManagedRollout{}, fmt.Errorf("project: rollout %s: %w", id, err)
	}
	return decodeRollout(r)
}

// ManagedRollouts lists a product's managed rollouts ("" for every
// product), oldest first.
func (p *Project) ManagedRollouts(ctx context.Context, product string) ([]ManagedRollout, error) {
	if err := p.CheckProduct(ctx, product); err != nil {
		return nil, err
	}
	rs, err := p.Store.ManagedRollouts(ctx, product)
	if err != nil {
		return nil, err
	}
	return decodeRollouts(rs)
}

// PauseRollout pauses the rollout id (rollout.Pause); reason may be empty.
func (p *Project) PauseRollout(ctx context.Context, id, reason string) (ManagedRollout, error) {
	return p.operate(ctx, id, ActionWavesPause, func(_ rollout.Plan, st rollout.State, _ time.Time) (rollout.State, error) {
		return rollout.Pause(st, reason)
	})
}

// ResumeRollout resumes a paused or halted rollout (rollout.Resume): its
// active wave soaks again from now. The next decision (Tick) checks the
// failure ratios again.
func (p *Project) ResumeRollout(ctx context.Context, id string) (ManagedRollout, error) {
	return p.operate(ctx, id, ActionWavesResume, func(pl rollout.Plan, st rollout.State, now time.Time) (rollout.State, error) {
		return rollout.Resume(pl, st, now)
	})
}

// AbortRollout stops the rollout id for good (rollout.Abort).
func (p *Project) AbortRollout(ctx context.Context, id, reason string) (ManagedRollout, error) {
	return p.operate(ctx, id, ActionWavesAbort, func(_ rollout.Plan, st rollout.State, _ time.Time) (rollout.State, error) {
		return rollout.Abort(st, reason)
	})
}

// operate applies an operator action to a rollout's state and persists it
// with its audit entry in one transaction. A phase that does not allow the
// action is an error wrapping rollout.ErrTransition; nothing is written.
func (p *Project) operate(ctx context.Context, id, action string, op func(rollout.Plan, rollout.State, time.Time) (rollout.State, error)) (ManagedRollout, error) {
	var out ManagedRollout
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		r, err := tx.ManagedRollout(ctx, id)
		if err != nil {
			return err
		}
		m, err := decodeRollout(r)
		if err != nil {
			return err
		}
		now := p.Clock.Now().UTC()
		next, err := op(m.Plan, m.State, now)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(next)
		if err := tx.PutManagedRolloutState(ctx, id, b, now); err != nil {
			return err
		}
		m.State, m.Updated = next, now
		out = m
		detail := fmt.Sprintf("id %s; %s -> %s", id, stateDetail(m.Plan, r.State), next.Phase)
		if next.Reason != "" {
			detail += ": " + next.Reason
		}
		return audit(ctx, tx, now, action, m.Product+"/"+m.Version, detail)
	})
	if err != nil {
		return out, fmt.Errorf("project: %s %s: %w", strings.TrimPrefix(action, "rollout."), id, err)
	}
	return out, nil
}

func stateDetail(pl rollout.Plan, raw []byte) string {
	var st rollout.State
	if json.Unmarshal(raw, &st) != nil {
		return "?"
	}
	if st.Phase == rollout.PhaseScheduled {
		return string(st.Phase)
	}
	return fmt.Sprintf("%s in wave %d of %d", st.Phase, st.Wave+1, len(pl.Waves))
}

// RolloutStatus returns the rollout id with its counts and state per wave.
func (p *Project) RolloutStatus(ctx context.Context, id string) (RolloutStatus, error) {
	m, err := p.ManagedRollout(ctx, id)
	if err != nil {
		return RolloutStatus{}, err
	}
	counts, err := p.waveCounts(ctx, m)
	if err != nil {
		return RolloutStatus{}, err
	}
	ws, err := rollout.Status(m.Plan, m.State, counts)
	if err != nil {
		return RolloutStatus{}, fmt.Errorf("project: status of rollout %s: %w", id, err)
	}
	return RolloutStatus{Rollout: m, Waves: ws}, nil
}

func needsLabels(rs []ManagedRollout) bool {
	for _, r := range rs {
		if r.Selector.NeedsLabels() {
			return true
		}
	}
	return false
}

// owner returns the rollout among rs that owns a device with facts fa.
func owner(rs []ManagedRollout, fa rollout.Facts) (string, bool) {
	claims := make([]rollout.Claim, len(rs))
	for i, r := range rs {
		claims[i] = rollout.Claim{ID: r.ID, Seq: r.Seq, Phase: r.State.Phase, Selects: r.Selector.Matches(fa)}
	}
	return rollout.Owner(claims)
}

// Tick runs the decision loop once, when this server holds the re-signing
// lease (only one replica decides): for every rollout not aborted or
// complete it counts the waves and takes rollout.Decide's steps, each
// persisted with its audit entry before the next. It returns how many
// steps it took. `uptrust serve` calls it periodically.
func (p *Project) Tick(ctx context.Context) (int, error) {
	held, err := p.Store.AcquireLease(ctx, ResignLease, p.LeaseHolder(), ResignLeaseTTL, p.Clock.Now())
	if err != nil || !held {
		return 0, err
	}
	rs, err := p.Store.ManagedRollouts(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("project: decision loop: %w", err)
	}
	steps := 0
	var errs []error
	for _, r := range rs {
		var st rollout.State
		if err := json.Unmarshal(r.State, &st); err != nil {
			errs = append(errs, fmt.Errorf("project: rollout %s: stored state: %w", r.ID, err))
			continue
		}
		if st.Phase.Terminal() {
			continue
		}
		n, err := p.decideRollout(ctx, r.ID)
		steps += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return steps, errors.Join(errs...)
}

// DecideEvery is how often `uptrust serve` runs the decision loop (Tick,
// through ResignDue). Waves soak for minutes or hours; counting more often
// would only load the database.
const DecideEvery = 10 * time.Second

// tickDue runs Tick when DecideEvery has passed since this Project last
// did (at once on the first call).
func (p *Project) tickDue(ctx context.Context) (int, error) {
	now := p.Clock.Now()
	p.waves.mu.Lock()
	due := p.waves.lastTick.IsZero() || now.Sub(p.waves.lastTick) >= DecideEvery || now.Before(p.waves.lastTick)
	if due {
		p.waves.lastTick = now
	}
	p.waves.mu.Unlock()
	if !due {
		return 0, nil
	}
	return p.Tick(ctx)
}

// decideRollout takes Decide's steps for one rollout until it stays,
// persisting each step with its audit entry in one transaction. A step is
// written only if the rollout's state is still the one it was decided
// from (an operator action in between wins; the next tick decides again).
func (p *Project) decideRollout(ctx context.Context, id string) (int, error) {
	steps := 0
	for range 64 { // Decide reaches a fixed point within len(waves)+1 steps
		raw, err := p.Store.ManagedRollout(ctx, id)
		if err != nil {
			return steps, fmt.Errorf("project: rollout %s: %w", id, err)
		}
		m, err := decodeRollout(raw)
		if err != nil {
			return steps, err
		}
		if m.State.Phase.Terminal() {
			return steps, nil
		}
		counts, err := p.waveCounts(ctx, m)
		if err != nil {
			return steps, err
		}
		now := p.Clock.Now().UTC()
		next, step, err := rollout.Decide(m.Plan, m.State, counts, now)
		if err != nil {
			return steps, fmt.Errorf("project: deciding rollout %s: %w", id, err)
		}
		if !step.Changed() {
			return steps, nil
		}
		from := raw.State
		to, _ := json.Marshal(next)
		stale := false
		err = p.Store.Update(ctx, func(tx store.Tx) error {
			cur, err := tx.ManagedRollout(ctx, id)
			if err != nil {
				return err
			}
			if string(cur.State) != string(from) {
				stale = true
				return nil
			}
			if err := tx.PutManagedRolloutState(ctx, id, to, now); err != nil {
				return err
			}
			c := counts[step.Wave]
			detail := fmt.Sprintf("id %s; %s: %s; wave %d counts: %d members, %d succeeded, %d failed, %d rolled back, %d skipped",
				id, step.Action, step.Reason, step.Wave+1, c.Members, c.Succeeded, c.Failed, c.RolledBack, c.Skipped)
			if step.Action == rollout.ActionHalt {
				detail += "; threshold " + rollout.FormatShare(m.Plan.MaxFailure)
			}
			return tx.AddAudit(ctx, auditEntry(ctx, now, ActionWavesDecide, m.Product+"/"+m.Version, store.OutcomeOK, detail))
		})
		if err != nil {
			return steps, fmt.Errorf("project: persisting the decision on rollout %s: %w", id, err)
		}
		if stale {
			return steps, nil
		}
		steps++
	}
	return steps, nil
}

// rolloutCache keeps, for one store generation, each product's decoded
// rollouts and (when a filter looks at them) its devices' groups and tags,
// so that AssignDevice reads them once per change of anything served
// rather than once per device. Everything cached changes only through
// store.Update, which changes the generation.
type rolloutCache struct {
	mu  sync.Mutex
	gen int64
	by  map[string]*productWaves
	// lastTick is when tickDue last ran Tick.
	lastTick time.Time
}

// productWaves is what AssignDevice needs of one product.
type productWaves struct {
	rollouts []ManagedRollout
	// labels maps a device to its groups and tags; nil when no rollout
	// looks at them.
	labels map[string]rollout.Facts
}

func (p *Project) productWaves(ctx context.Context, product string) (*productWaves, error) {
	gen, err := p.Store.Generation(ctx)
	if err != nil {
		return nil, err
	}
	c := &p.waves
	c.mu.Lock()
	if c.gen == gen && c.by != nil {
		if pw, ok := c.by[product]; ok {
			c.mu.Unlock()
			return pw, nil
		}
	}
	c.mu.Unlock()
	raw, err := p.Store.ManagedRollouts(ctx, product)
	if err != nil {
		return nil, err
	}
	pw := &productWaves{}
	if pw.rollouts, err = decodeRollouts(raw); err != nil {
		return nil, err
	}
	if needsLabels(pw.rollouts) {
		ls, err := p.Store.DeviceLabels(ctx, store.LabelFilter{Product: product})
		if err != nil {
			return nil, err
		}
		pw.labels = map[string]rollout.Facts{}
		for _, l := range ls {
			fa := pw.labels[l.Device]
			if l.Kind == store.LabelGroup {
				fa.Groups = append(fa.Groups, l.Name)
			} else {
				fa.Tags = append(fa.Tags, l.Name)
			}
			pw.labels[l.Device] = fa
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.by == nil {
		c.gen, c.by = gen, map[string]*productWaves{}
	}
	c.by[product] = pw
	return pw, nil
}

// AssignDevice returns the release dev should run now, as its product's
// managed rollouts decide it, and true when it is offered one: the
// rollout that owns the device (see the supersession rule above) admits
// it — the rollout is active and the device's wave (rollout.WaveBucket,
// Plan.WaveOf) has started — or, when no rollout owns it, the newest
// complete rollout selecting it. A device owned by a scheduled, paused,
// halted or aborted rollout, one no rollout selects, and a device not
// accepted get false and a zero Assignment. It reads the store generation
// and nothing else per device: the product's rollouts, and its devices'
// groups and tags when some rollout's filter looks at them, are read once
// per store generation (see rolloutCache).
func (p *Project) AssignDevice(ctx context.Context, dev store.Device) (rollout.Assignment, bool, error) {
	if dev.State != store.DeviceAccepted {
		return rollout.Assignment{}, false, nil
	}
	pw, err := p.productWaves(ctx, dev.Product)
	if err != nil {
		return rollout.Assignment{}, false, fmt.Errorf("project: assign device %s: %w", dev.ID, err)
	}
	rs := pw.rollouts
	if len(rs) == 0 {
		return rollout.Assignment{}, false, nil
	}
	fa := pw.labels[dev.ID] // zero when no rollout looks at labels
	fa.Inventory = dev.Inventory
	var chosen *ManagedRollout
	if id, ok := owner(rs, fa); ok {
		for i := range rs {
			if rs[i].ID == id {
				chosen = &rs[i]
			}
		}
	} else {
		for i := len(rs) - 1; i >= 0; i-- { // newest first: rs is in Seq order
			if rs[i].State.Phase == rollout.PhaseComplete && rs[i].Selector.Matches(fa) {
				chosen = &rs[i]
				break
			}
		}
	}
	if chosen == nil {
		return rollout.Assignment{}, false, nil
	}
	bucket := rollout.WaveBucket(chosen.ID, dev.ID)
	if !rollout.Admits(chosen.Plan, chosen.State, bucket) || p.Clock.Now().Before(chosen.Plan.Start) {
		return rollout.Assignment{}, false, nil
	}
	a := rollout.Assignment{RolloutID: chosen.ID, Version: chosen.Version, Wave: chosen.Plan.WaveOf(bucket) + 1, Start: chosen.Plan.Start}
	if chosen.Plan.Window != nil {
		a.Window = chosen.Plan.Window.String()
	}
	return a, true, nil
}

// AddDeviceLabel puts device id in the static group name (kind
// store.LabelGroup) or gives it the tag name (store.LabelTag). Names are
// lower-case letters, digits and dashes. The change bumps the store
// generation: selections that look at groups and tags change.
func (p *Project) AddDeviceLabel(ctx context.Context, id, kind, name string) error {
	return p.label(ctx, id, kind, name, true)
}

// RemoveDeviceLabel removes device id from a group or a tag; a label the
// device does not have is an error wrapping store.ErrNotFound.
func (p *Project) RemoveDeviceLabel(ctx context.Context, id, kind, name string) error {
	return p.label(ctx, id, kind, name, false)
}

func (p *Project) label(ctx context.Context, id, kind, name string, add bool) error {
	verb, action := "add", ActionDeviceLabel
	if !add {
		verb, action = "remove", ActionDeviceUnlabl
	}
	fail := func(err error) error {
		return fmt.Errorf("project: %s %s %q for device %s: %w", verb, kind, name, id, err)
	}
	if kind != store.LabelGroup && kind != store.LabelTag {
		return fail(invalidf("unknown label kind %q (group or tag)", kind))
	}
	if err := release.ValidName(kind, name); err != nil {
		return fail(invalidf("%v", err))
	}
	return wrapNil(fail, p.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Device(ctx, id); err != nil {
			return err
		}
		now := p.Clock.Now().UTC()
		var err error
		if add {
			err = tx.AddDeviceLabel(ctx, store.DeviceLabel{Device: id, Kind: kind, Name: name, Added: now})
		} else {
			err = tx.DeleteDeviceLabel(ctx, id, kind, name)
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, now, action, id, kind+" "+name)
	}))
}

func wrapNil(wrap func(error) error, err error) error {
	if err == nil {
		return nil
	}
	return wrap(err)
}

// DeviceLabels lists the groups and tags of a product's devices (kind ""
// for both).
func (p *Project) DeviceLabels(ctx context.Context, product, kind string) ([]store.DeviceLabel, error) {
	if err := p.CheckProduct(ctx, product); err != nil {
		return nil, err
	}
	return p.Store.DeviceLabels(ctx, store.LabelFilter{Product: product, Kind: kind})
}
