// Package rollout decides, without I/O, whether a device takes part in a
// staged rollout.
//
// Anonymous mode: the server publishes one rule per product (release,
// percent, halted); every device computes its own bucket from a random seed
// it keeps locally and never sends. The bucket is derived per product and
// version, so the early devices of one release are not the early devices of
// the next, and nothing links a device across releases.
//
// Managed mode: the server knows each device and runs a rollout in waves
// that halt themselves. The pieces, all pure, for the store, the API and the
// CLI to wire:
//
//   - Plan (plan.go): the operator's plan, parsed from the flags of
//     `uptrust rollout start P VERSION --waves 1%,10%,50%,100%
//     --max-failure 5% --min-success 20 --soak 1h [--start TIME]
//     [--window SPEC]` by ParsePlan.
//   - WaveBucket, Plan.WaveOf, Plan.WaveRange, Admits (members.go): which
//     devices are in which wave, and whether one may be offered the release.
//   - Decide, Pause, Resume, Abort (decide.go): the next State and Step of a
//     rollout from its plan, its state, the counts per wave and the time.
//     The caller persists the state Decide returns before acting on it.
//   - Status (status.go): the per-wave status view for the API and the CLI.
//   - Window (window.go): the maintenance window devices install in.
//   - Owner (supersede.go): which of a product's rollouts owns a device.
package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// Buckets is the resolution of a rollout: percent is applied in steps of
// 1/Buckets of the fleet.
const Buckets = 10000

// Rule is the public rollout of one release, as carried in the fleet
// repository's target custom metadata under "uptrust"."rollout".
type Rule struct {
	Percent int       `json:"percent"`
	Halted  bool      `json:"halted"`
	Start   time.Time `json:"start"`
}

// Validate checks a rule.
func (r Rule) Validate() error {
	if r.Percent < 0 || r.Percent > 100 {
		return fmt.Errorf("rollout: percent %d out of range 0..100", r.Percent)
	}
	return nil
}

// Bucket maps a device seed, product and version to 0..Buckets-1 uniformly.
func Bucket(seed []byte, product, version string) int {
	h := sha256.New()
	h.Write(seed)
	h.Write([]byte{0})
	h.Write([]byte(product))
	h.Write([]byte{0})
	h.Write([]byte(version))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return int(binary.BigEndian.Uint64(sum[:8]) % Buckets)
}

// Decision is the outcome of Admit.
type Decision struct {
	Admitted bool
	// Reason explains a refusal in words an owner understands.
	Reason string
}

// Admit decides whether a device with the given bucket takes the release now.
func Admit(r Rule, bucket int) Decision {
	switch {
	case r.Halted:
		return Decision{Reason: "the rollout of this release is halted"}
	case bucket < r.Percent*Buckets/100:
		return Decision{Admitted: true}
	default:
		return Decision{Reason: fmt.Sprintf("the release is offered to %d%% of devices and this device is not among them yet", r.Percent)}
	}
}
