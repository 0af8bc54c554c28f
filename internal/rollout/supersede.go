package rollout

// Supersession: a device is in at most one active rollout per product.
//
// Rule: among a product's rollouts that have started and are not over
// (phase active, paused or halted) and whose selection includes the device,
// the newest — the highest Seq, the order in which the rollouts were created
// — owns the device. So a newer rollout supersedes an older one for every
// device it selects, and the older keeps only the devices the newer does not
// select. Consequences, all by the same rule:
//
//   - A scheduled rollout owns nothing until its start time: creating next
//     week's rollout does not stall this week's.
//   - A paused or halted newer rollout still owns its devices: they wait for
//     it rather than fall back to the older release.
//   - When the newer rollout is aborted or complete it owns nothing any more,
//     and a device it selected that an older rollout still in progress also
//     selects goes back to that older rollout. (What a device outside every
//     active rollout should run — the last release completed for it — is the
//     caller's to decide.)
//   - A device that enrols later, or whose inventory changes, is owned by
//     whichever rollout the rule names at that time.
//
// The wave counts of a rollout (Counts.Members and the rest) count only the
// devices it owns.

// Claim is one of a product's rollouts as seen from one device.
type Claim struct {
	// ID identifies the rollout.
	ID string
	// Seq orders the product's rollouts by creation, newer higher. It is
	// unique within a product; equal Seqs are ordered by ID, higher newer,
	// so that the result never depends on the order of the claims.
	Seq int64
	// Phase is the rollout's current phase.
	Phase Phase
	// Selects reports whether the rollout's selection includes the device.
	Selects bool
}

// owns reports whether the phase lets a rollout own devices.
func (p Phase) owns() bool {
	return p == PhaseActive || p == PhasePaused || p == PhaseHalted
}

// Owner returns the ID of the rollout that owns a device among the claims
// of one product's rollouts, by the rule above, and false when none does.
func Owner(claims []Claim) (string, bool) {
	best := -1
	for i, c := range claims {
		if !c.Selects || !c.Phase.owns() {
			continue
		}
		if best < 0 || c.Seq > claims[best].Seq || (c.Seq == claims[best].Seq && c.ID > claims[best].ID) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return claims[best].ID, true
}
