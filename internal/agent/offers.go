package agent

import (
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
)

// Offer is one version the fleet repository offers for the device's
// product, with what both repositories say about it: plain values, read
// from one refresh (see gatherOffers), that choose judges without any I/O.
//
// The errors are kept apart because choose meets them in a fixed order: a
// lower candidate's broken rollout rule must not hide that a higher one
// failed on this device before, and so on.
type Offer struct {
	Version string
	// Agree is set when the two repositories do not list the target
	// identically (wraps errMismatch); every field below is then zero.
	Agree error
	// Release is the release repository's entry (its custom holds the
	// manifest); Fleet the fleet repository's.
	Release, Fleet *metadata.TargetFiles
	// Manifest is the decoded release manifest; ManifestErr says why it
	// does not decode.
	Manifest    *release.Manifest
	ManifestErr error
	// Rollout is the fleet's rollout rule; nil when the fleet lists the
	// target without one. RolloutErr says why it does not decode.
	Rollout    *rollout.Rule
	RolloutErr error
	// Delta is the delta the manifest lists from the running version, or
	// nil.
	Delta *deltaOffer
	// Window is the maintenance window the fleet view sets for the
	// release (window.go), nil for none; WindowRollout the rollout the
	// view names. WindowErr says why the window does not parse.
	Window        *rollout.Window
	WindowRollout string
	WindowErr     error
}

// gatherOffers reads, for every version the fleet offers for product
// (highest first, see repos.offered), what choose needs: the entries of
// both repositories, the manifest, the rollout rule and the delta from the
// running version.
func gatherOffers(r *repos, product, running string) []Offer {
	var out []Offer
	for _, v := range r.offered(product) {
		o := Offer{Version: v}
		o.Release, o.Fleet, o.Agree = r.agreed(release.TargetName(product, v))
		if o.Agree != nil {
			o.Release, o.Fleet = nil, nil
			out = append(out, o)
			continue
		}
		o.Manifest, o.ManifestErr = release.ManifestFromCustom(o.Release.Custom)
		if o.ManifestErr == nil {
			o.Delta = offerDelta(r, o.Manifest, running)
		}
		o.Rollout, o.RolloutErr = fleetRollout(o.Fleet)
		o.Window, o.WindowRollout, o.WindowErr = fleetWindow(o.Fleet)
		out = append(out, o)
	}
	return out
}

// fleetRollout decodes the rollout rule of a fleet target; nil when it has
// none.
func fleetRollout(fleet *metadata.TargetFiles) (*rollout.Rule, error) {
	if fleet.Custom == nil {
		return nil, nil
	}
	r, err := rollout.RuleFromCustom(*fleet.Custom)
	if err != nil {
		return nil, fmt.Errorf("fleet rollout rule: %w", err)
	}
	return r, nil
}

// versions lists the offers' versions, in their order.
func versions(offers []Offer) []string {
	var out []string
	for _, o := range offers {
		out = append(out, o.Version)
	}
	return out
}
