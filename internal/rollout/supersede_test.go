package rollout

import (
	"math/rand/v2"
	"testing"
)

func TestOwner(t *testing.T) {
	old := Claim{ID: "r1", Seq: 1, Phase: PhaseActive, Selects: true}
	for _, tc := range []struct {
		name   string
		claims []Claim
		want   string // "" for none
	}{
		{"no rollouts", nil, ""},
		{"one rollout selecting the device", []Claim{old}, "r1"},
		{"one rollout not selecting it", []Claim{{ID: "r1", Seq: 1, Phase: PhaseActive}}, ""},
		{"newer selecting it supersedes", []Claim{old, {ID: "r2", Seq: 2, Phase: PhaseActive, Selects: true}}, "r2"},
		{"order of the claims does not matter", []Claim{{ID: "r2", Seq: 2, Phase: PhaseActive, Selects: true}, old}, "r2"},
		{"older keeps devices the newer does not select", []Claim{old, {ID: "r2", Seq: 2, Phase: PhaseActive}}, "r1"},
		{"paused newer still owns", []Claim{old, {ID: "r2", Seq: 2, Phase: PhasePaused, Selects: true}}, "r2"},
		{"halted newer still owns", []Claim{old, {ID: "r2", Seq: 2, Phase: PhaseHalted, Selects: true}}, "r2"},
		{"scheduled newer owns nothing yet", []Claim{old, {ID: "r2", Seq: 2, Phase: PhaseScheduled, Selects: true}}, "r1"},
		{"aborted newer gives the device back", []Claim{old, {ID: "r2", Seq: 2, Phase: PhaseAborted, Selects: true}}, "r1"},
		{"complete newer owns nothing", []Claim{old, {ID: "r2", Seq: 2, Phase: PhaseComplete, Selects: true}}, "r1"},
		{"complete alone owns nothing", []Claim{{ID: "r1", Seq: 1, Phase: PhaseComplete, Selects: true}}, ""},
		{"newest of three", []Claim{old, {ID: "r3", Seq: 3, Phase: PhaseActive, Selects: true}, {ID: "r2", Seq: 2, Phase: PhaseActive, Selects: true}}, "r3"},
		{"equal seq: higher id", []Claim{{ID: "b", Seq: 5, Phase: PhaseActive, Selects: true}, {ID: "a", Seq: 5, Phase: PhaseActive, Selects: true}}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Owner(tc.claims)
			if ok != (tc.want != "") || got != tc.want {
				t.Fatalf("Owner = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// Property: the owner, if any, selects the device, is in a phase that owns
// devices, is newer than every other such claim, and does not depend on
// the order of the claims.
func TestOwnerProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	phases := []Phase{PhaseScheduled, PhaseActive, PhasePaused, PhaseHalted, PhaseAborted, PhaseComplete}
	for i := 0; i < 5000; i++ {
		claims := make([]Claim, rng.IntN(6))
		for j := range claims {
			claims[j] = Claim{ID: string(rune('a' + j)), Seq: int64(rng.IntN(4)), Phase: phases[rng.IntN(len(phases))], Selects: rng.IntN(2) == 0}
		}
		id, ok := Owner(claims)
		var owner *Claim
		for j := range claims {
			if claims[j].ID == id {
				owner = &claims[j]
			}
		}
		for _, c := range claims {
			eligible := c.Selects && (c.Phase == PhaseActive || c.Phase == PhasePaused || c.Phase == PhaseHalted)
			if eligible && !ok {
				t.Fatalf("%+v: no owner although %s is eligible", claims, c.ID)
			}
			if eligible && ok && (c.Seq > owner.Seq || (c.Seq == owner.Seq && c.ID > owner.ID)) {
				t.Fatalf("%+v: owner %s but %s is newer", claims, id, c.ID)
			}
		}
		if ok && (owner == nil || !owner.Selects || !owner.Phase.owns()) {
			t.Fatalf("%+v: owner %q does not qualify", claims, id)
		}
		rng.Shuffle(len(claims), func(a, b int) { claims[a], claims[b] = claims[b], claims[a] })
		if id2, ok2 := Owner(claims); id2 != id || ok2 != ok {
			t.Fatalf("owner depends on the order: %q then %q", id, id2)
		}
	}
}
