package project

import (
	"context"
	"fmt"

	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// CountReloads returns how many full reloads the incremental count made.
func (p *Project) CountReloads() int64 {
	p.counts.mu.Lock()
	defer p.counts.mu.Unlock()
	return p.counts.reloads
}

// WaveCounts returns the counts per wave of rollout id as the decision
// loop reads them (incremental) and as the straightforward computation
// does (every device and its latest event read again).
func (p *Project) WaveCounts(ctx context.Context, id string) (incremental, direct []rollout.Counts, err error) {
	m, err := p.ManagedRollout(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if incremental, err = p.waveCounts(ctx, m); err != nil {
		return nil, nil, err
	}
	direct, err = p.directWaveCounts(ctx, m)
	return incremental, direct, err
}

// fleetFacts are the accepted devices of a product with what selection
// filters look at.
type fleetFacts struct {
	devices []store.Device
	facts   map[string]rollout.Facts
}

func readFleet(ctx context.Context, r store.Reader, product string, labels bool) (fleetFacts, error) {
	ds, err := r.Devices(ctx, store.DeviceFilter{Product: product, State: store.DeviceAccepted})
	if err != nil {
		return fleetFacts{}, err
	}
	f := fleetFacts{devices: ds, facts: make(map[string]rollout.Facts, len(ds))}
	for _, d := range ds {
		f.facts[d.ID] = rollout.Facts{Inventory: d.Inventory}
	}
	if labels {
		ls, err := r.DeviceLabels(ctx, store.LabelFilter{Product: product})
		if err != nil {
			return fleetFacts{}, err
		}
		for _, l := range ls {
			fa, ok := f.facts[l.Device]
			if !ok {
				continue
			}
			if l.Kind == store.LabelGroup {
				fa.Groups = append(fa.Groups, l.Name)
			} else {
				fa.Tags = append(fa.Tags, l.Name)
			}
			f.facts[l.Device] = fa
		}
	}
	return f, nil
}

// directWaveCounts is the straightforward count the decision loop made
// before the incremental one (wavecount.go): every accepted device of the
// product and the latest events of the version, read at each count. Tests
// compare the two.
func (p *Project) directWaveCounts(ctx context.Context, m ManagedRollout) ([]rollout.Counts, error) {
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
	fleet, err := readFleet(ctx, p.Store, m.Product, needsLabels(all))
	if err != nil {
		return fail(err)
	}
	evs, err := p.Store.LatestDeviceEvents(ctx, store.OutcomeFilter{Product: m.Product, Version: m.Version, Since: m.Created})
	if err != nil {
		return fail(err)
	}
	latest := make(map[string]string, len(evs))
	for _, e := range evs {
		latest[e.Device] = e.Kind
	}
	counts := make([]rollout.Counts, len(m.Plan.Waves))
	for _, d := range fleet.devices {
		if id, ok := owner(all, fleet.facts[d.ID]); !ok || id != m.ID {
			continue
		}
		k := m.Plan.WaveOf(rollout.WaveBucket(m.ID, d.ID))
		if k < 0 {
			continue
		}
		c := &counts[k]
		c.Members++
		switch latest[d.ID] {
		case store.EventSucceeded:
			c.Succeeded++
		case store.EventFailed:
			c.Failed++
		case store.EventRolledBack:
			c.RolledBack++
		case store.EventSkipped:
			c.Skipped++
		case store.EventOffered, store.EventDownloading, store.EventInstalling, store.EventRebooting:
			c.Offered++
		}
	}
	return counts, nil
}
