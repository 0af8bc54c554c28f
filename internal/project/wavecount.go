package project

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// Counting a rollout's waves incrementally.
//
// The decision loop counts every active rollout every DecideEvery, and
// the straightforward count reads every accepted device of the product
// and their latest events each time (1.5 s at 100,000 devices). The
// counter below keeps, per product and in memory, what counting needs —
// each accepted device's selection facts, the rollout that owns it and
// its wave bucket there, per rollout each device's latest event for its
// version, and the counts per wave themselves, moved device by device as
// devices change (fleetTally.place) — and brings it up to date at each
// count by reading only what changed since the previous count:
//
//   - devices whose Updated is at or after the previous read's start
//     minus countOverlap (enrolment, acceptance, decommissioning, an
//     inventory report and a mode change all set Updated);
//   - the audit entries of erasures (ActionDeviceErase, written in the
//     erasure's transaction, by any replica) after the last one seen;
//   - at most every countVerify, the number of accepted devices of the
//     product, as a check (it costs a pass over an index): the cache
//     after the deltas holds every accepted device, so anything but
//     equality (a write the overlap missed) reloads in full;
//   - the product's groups and tags when some rollout's filter looks at
//     them and the store generation moved (labels change through
//     store.Update, which bumps it);
//   - the product's events received at or after the previous read's
//     start minus countOverlap (store.DeviceEventsSince), merged by the
//     per-device Seq: the latest event overall is the one with the
//     highest Seq;
//   - the product's rollouts (a handful of rows) at every count: when
//     their ids, phases or filters change, every device's owner is
//     computed again, in memory.
//
// Why not a table of members (rollout, device, wave) counted by one GROUP
// BY: ownership is not a property of one rollout — a device belongs to
// the newest active, paused or halted rollout whose filter selects it,
// and filters look at inventory, groups and tags that change at any time
// — so such a table would need the same change tracking to stay right,
// plus a migration, erasure, export and retention of a new table of
// personal data. Counts are derived data; the rows they derive from stay
// the only truth, and nothing new is stored.
//
// Correctness: counts equal the straightforward count (TestWaveCountsMatch,
// on SQLite and PostgreSQL, against a random fleet under a fake clock): a
// late enrolment joins its wave at the next count, a device counts once
// by its latest event for the version since the rollout was created,
// skips are never failures, and an erased device leaves the counts (and
// this memory) at the next count. What a delta could miss — a write
// committed more than countOverlap after its own timestamp (clocks of
// replicas further apart than that), events purged by the retention of
// another replica — is corrected by a full reload at least every
// countResync; a purge of device events through this Project reloads at
// once.
// The first count after a start or a lease change reads everything once.

const (
	// countOverlap is how far before the previous read's start a delta
	// reads again: a margin for transactions that commit after the time
	// they write, and for the clocks of replicas.
	countOverlap = time.Minute
	// countResync bounds how long a product's counts are kept by deltas
	// alone before a full reload.
	countResync = 10 * time.Minute
	// countVerify is how often the number of accepted devices is checked.
	countVerify = time.Minute
)

// waveCounter is the per-product cache of the counts; its zero value is
// empty and ready.
type waveCounter struct {
	mu       sync.Mutex
	products map[string]*fleetTally
	// epoch changes when something this Project did (a purge of device
	// events) calls for full reloads.
	epoch int64
	// reloads counts full reloads of a product (for tests and profiling).
	reloads int64
}

// fleetTally is what counting needs of one product's accepted devices.
type fleetTally struct {
	epoch    int64
	loaded   time.Time // start of the last full load
	cursor   time.Time // start of the last read of devices
	verified time.Time // start of the last check of the number of devices
	// eraseSeq is the audit Seq of the last erasure seen.
	eraseSeq int64
	// labels: the facts hold groups and tags, read at store generation
	// labelGen.
	labels   bool
	labelGen int64
	devices  map[string]*tallyDevice
	// claims is the key of the rollouts the owners were computed for;
	// plans are those rollouts' plans.
	claims   string
	plans    map[string]rollout.Plan
	rollouts map[string]*rolloutTally
}

// tallyDevice is one accepted device. When stale is false, owner is the
// rollout owning it under fleetTally.claims ("" for none) and bucket its
// rollout.WaveBucket there. The device is counted in wave inWave of
// rollout inRollout ("" for none) with the kind of event inKind (see
// fleetTally.place).
type tallyDevice struct {
	facts  rollout.Facts
	owner  string
	bucket int
	stale  bool

	inRollout, inKind string
	inWave            int
}

// rolloutTally holds each device's latest event for the rollout's
// version since it was created, as read up to cursor, and the counts per
// wave of the devices placed in it.
type rolloutTally struct {
	cursor time.Time
	latest map[string]latestEvent
	counts []rollout.Counts
}

// add adds n devices with the latest event kind to wave w.
func (rt *rolloutTally) add(w int, kind string, n int) {
	c := &rt.counts[w]
	c.Members += n
	switch kind {
	case store.EventSucceeded:
		c.Succeeded += n
	case store.EventFailed:
		c.Failed += n
	case store.EventRolledBack:
		c.RolledBack += n
	case store.EventSkipped:
		c.Skipped += n
	case store.EventOffered, store.EventDownloading, store.EventInstalling, store.EventRebooting:
		c.Offered += n
	}
}

// place moves device id's contribution to the counts where it belongs
// now: the wave of its owner, when the owner's events are tallied, with
// its latest event there. Every change of a device's owner, bucket or
// latest event is followed by a place, so each rollout's counts are the
// sum over the devices placed in it.
func (ft *fleetTally) place(id string, d *tallyDevice) {
	r, w, k := "", 0, ""
	if rt := ft.rollouts[d.owner]; d.owner != "" && rt != nil {
		if wave := ft.plans[d.owner].WaveOf(d.bucket); wave >= 0 && wave < len(rt.counts) {
			r, w, k = d.owner, wave, rt.latest[id].kind
		}
	}
	if r == d.inRollout && w == d.inWave && k == d.inKind {
		return
	}
	ft.unplace(d)
	if r != "" {
		ft.rollouts[r].add(w, k, 1)
	}
	d.inRollout, d.inWave, d.inKind = r, w, k
}

// unplace removes device d's contribution from the counts.
func (ft *fleetTally) unplace(d *tallyDevice) {
	if d.inRollout != "" {
		ft.rollouts[d.inRollout].add(d.inWave, d.inKind, -1)
	}
	d.inRollout, d.inWave, d.inKind = "", 0, ""
}

type latestEvent struct {
	seq  int64
	kind string
}

// invalidate makes the next count of every product reload in full.
func (c *waveCounter) invalidate() {
	c.mu.Lock()
	c.epoch++
	c.mu.Unlock()
}

// claimsKey identifies what ownership depends on among rs.
func claimsKey(rs []ManagedRollout) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s\x00%d\x00%s\x00%s\n", r.ID, r.Seq, r.State.Phase, r.Selector.String())
	}
	return b.String()
}

// waveCounts counts the devices m owns per wave by their latest event for
// m's version since m was created, with the cache described above.
func (p *Project) waveCounts(ctx context.Context, m ManagedRollout) ([]rollout.Counts, error) {
	fail := func(err error) ([]rollout.Counts, error) {
		return nil, fmt.Errorf("project: counting rollout %s: %w", m.ID, err)
	}
	rs, err := p.Store.ManagedRollouts(ctx, m.Product)
	if err != nil {
		return fail(err)
	}
	all, err := decodeRollouts(rs)
	if err != nil {
		return fail(err)
	}
	// The rollout as persisted by the caller may be newer than the list.
	for i := range all {
		if all[i].ID == m.ID {
			all[i] = m
		}
	}
	c := &p.counts
	c.mu.Lock()
	defer c.mu.Unlock()
	ft, err := p.refreshFleet(ctx, m.Product, all)
	if err != nil {
		c.products[m.Product] = nil // read again in full next time
		return fail(err)
	}
	rt, err := p.refreshEvents(ctx, ft, m)
	if err != nil {
		c.products[m.Product] = nil
		return fail(err)
	}
	return slices.Clone(rt.counts), nil
}

// refreshFleet brings the product's tally up to date (p.counts.mu held)
// and computes the owner of every device whose facts or rollouts changed.
func (p *Project) refreshFleet(ctx context.Context, product string, all []ManagedRollout) (*fleetTally, error) {
	c := &p.counts
	if c.products == nil {
		c.products = map[string]*fleetTally{}
	}
	labels := needsLabels(all)
	now := p.Clock.Now()
	ft := c.products[product]
	full := ft == nil || ft.epoch != c.epoch || labels && !ft.labels ||
		now.Sub(ft.loaded) >= countResync || now.Before(ft.loaded)
	if !full {
		ds, err := p.Store.Devices(ctx, store.DeviceFilter{Product: product, UpdatedSince: ft.cursor.Add(-countOverlap)})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.State != store.DeviceAccepted {
				if td := ft.devices[d.ID]; td != nil {
					ft.unplace(td)
					delete(ft.devices, d.ID)
				}
				continue
			}
			td := ft.devices[d.ID]
			if td == nil {
				td = &tallyDevice{}
				ft.devices[d.ID] = td
			}
			td.facts.Inventory, td.stale = d.Inventory, true
		}
		es, err := p.Store.AuditQuery(ctx, store.AuditFilter{Action: ActionDeviceErase, Outcome: store.OutcomeOK, AfterSeq: ft.eraseSeq})
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if td := ft.devices[e.Object]; td != nil {
				ft.unplace(td)
				delete(ft.devices, e.Object)
			}
			for _, rt := range ft.rollouts { // nothing of it stays in memory
				delete(rt.latest, e.Object)
			}
			ft.eraseSeq = max(ft.eraseSeq, e.Seq)
		}
		if now.Sub(ft.verified) >= countVerify || now.Before(ft.verified) {
			n, err := p.Store.DeviceCount(ctx, product, store.DeviceAccepted)
			if err != nil {
				return nil, err
			}
			full = n != int64(len(ft.devices)) // a write the overlap missed
			ft.verified = now
		}
		ft.cursor = now
	}
	if full {
		c.reloads++
		ft = &fleetTally{epoch: c.epoch, loaded: now, cursor: now, verified: now, labelGen: -1, rollouts: map[string]*rolloutTally{}}
		es, err := p.Store.AuditQuery(ctx, store.AuditFilter{Action: ActionDeviceErase, Outcome: store.OutcomeOK, Newest: true, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(es) > 0 {
			ft.eraseSeq = es[0].Seq
		}
		ds, err := p.Store.Devices(ctx, store.DeviceFilter{Product: product, State: store.DeviceAccepted})
		if err != nil {
			return nil, err
		}
		ft.devices = make(map[string]*tallyDevice, len(ds))
		for _, d := range ds {
			ft.devices[d.ID] = &tallyDevice{facts: rollout.Facts{Inventory: d.Inventory}, stale: true}
		}
		c.products[product] = ft
	}
	if labels {
		if err := p.refreshLabels(ctx, ft, product); err != nil {
			return nil, err
		}
	}
	key := claimsKey(all)
	everyone := key != ft.claims
	ft.claims = key
	ft.plans = make(map[string]rollout.Plan, len(all))
	for _, r := range all {
		ft.plans[r.ID] = r.Plan
	}
	claims := make([]rollout.Claim, len(all))
	for i, r := range all {
		claims[i] = rollout.Claim{ID: r.ID, Seq: r.Seq, Phase: r.State.Phase}
	}
	for id, d := range ft.devices {
		if !everyone && !d.stale {
			continue
		}
		for i, r := range all {
			claims[i].Selects = r.Selector.Matches(d.facts)
		}
		owner, _ := rollout.Owner(claims)
		if owner != d.owner {
			d.owner, d.bucket = owner, 0
			if owner != "" {
				d.bucket = rollout.WaveBucket(owner, id)
			}
		}
		d.stale = false
		ft.place(id, d)
	}
	return ft, nil
}

// refreshLabels reads the product's groups and tags again when the store
// generation moved since they were read, marking the devices whose labels
// changed.
func (p *Project) refreshLabels(ctx context.Context, ft *fleetTally, product string) error {
	gen, err := p.Store.Generation(ctx)
	if err != nil {
		return err
	}
	if ft.labels && gen == ft.labelGen {
		return nil
	}
	ls, err := p.Store.DeviceLabels(ctx, store.LabelFilter{Product: product})
	if err != nil {
		return err
	}
	next := map[string]rollout.Facts{}
	for _, l := range ls {
		fa := next[l.Device]
		if l.Kind == store.LabelGroup {
			fa.Groups = append(fa.Groups, l.Name)
		} else {
			fa.Tags = append(fa.Tags, l.Name)
		}
		next[l.Device] = fa
	}
	for id, d := range ft.devices {
		fa := next[id]
		if !equalStrings(d.facts.Groups, fa.Groups) || !equalStrings(d.facts.Tags, fa.Tags) {
			d.facts.Groups, d.facts.Tags, d.stale = fa.Groups, fa.Tags, true
		}
	}
	ft.labels, ft.labelGen = true, gen
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// refreshEvents brings m's latest events up to date (p.counts.mu held):
// in full (store.LatestDeviceEvents since m was created) the first time,
// then by the product's events received since the previous read minus
// countOverlap (store.DeviceEventsSince, by device_events_by_time),
// keeping per device the highest Seq of m's version at or after m's
// creation.
func (p *Project) refreshEvents(ctx context.Context, ft *fleetTally, m ManagedRollout) (*rolloutTally, error) {
	now := p.Clock.Now()
	rt := ft.rollouts[m.ID]
	var evs []store.DeviceEvent
	var err error
	if rt == nil {
		evs, err = p.Store.LatestDeviceEvents(ctx, store.OutcomeFilter{Product: m.Product, Version: m.Version, Since: m.Created})
	} else {
		evs, err = p.Store.DeviceEventsSince(ctx, m.Product, rt.cursor.Add(-countOverlap))
	}
	if err != nil {
		return nil, err
	}
	first := rt == nil
	if first {
		rt = &rolloutTally{latest: make(map[string]latestEvent, len(evs)), counts: make([]rollout.Counts, len(m.Plan.Waves))}
		ft.rollouts[m.ID] = rt
	}
	for _, e := range evs {
		if e.Version != m.Version || e.Time.Before(m.Created) {
			continue
		}
		if cur, ok := rt.latest[e.Device]; !ok || e.Seq > cur.seq {
			rt.latest[e.Device] = latestEvent{seq: e.Seq, kind: e.Kind}
			if d := ft.devices[e.Device]; d != nil && !first {
				ft.place(e.Device, d)
			}
		}
	}
	if first { // place the devices m owns
		for id, d := range ft.devices {
			if d.owner == m.ID {
				ft.place(id, d)
			}
		}
	}
	rt.cursor = now
	return rt, nil
}
