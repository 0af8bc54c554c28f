// Package compliance says, for a product of an uptrust project, what can be
// shown about the update provisions of ETSI EN 303 645 V2.1.1 (§5.3), the
// update-related requirements of the EU Cyber Resilience Act (Regulation
// (EU) 2024/2847, Annex I and Article 13) and the UK PSTI security
// requirements (SI 2023/1007, Schedule 1), with the evidence behind each
// verdict. It is a self-assessment aid, not a conformity assessment.
//
// It has two halves. Gather reads a project into Facts — signed metadata,
// support and market declarations, releases, rollouts and when they reached
// every device, attestations, key files — and never writes or loads a key.
// Evaluate is pure: Facts in, Results out, so each rule can be shown to flip
// between verdicts from a hand-made Facts value.
//
// Verdicts are honest about what uptrust can know:
//   - met: computed from the project, with the evidence;
//   - not met: the project shows it is not, or a fact outside uptrust that
//     the provision needs has not been attested;
//   - not yet demonstrable: nothing to judge yet (no release, no security
//     release, no rollout that reached every device);
//   - attested: the part uptrust can see holds, and the manufacturer
//     recorded the rest (uptrust compliance attest); never shown as met;
//   - not applicable: the provision's condition does not hold, with why.
package compliance

import (
	"fmt"
	"strings"
	"time"
)

// Status is a verdict. Values are wire strings.
type Status string

// Verdicts.
const (
	Met           Status = "met"
	NotMet        Status = "not met"
	NotYet        Status = "not yet demonstrable"
	Attested      Status = "attested"
	NotApplicable Status = "not applicable"
)

// statuses in summary order.
var statuses = []Status{Met, NotMet, NotYet, Attested, NotApplicable}

// Force is how binding a provision is. Values are wire strings.
type Force string

// Forces. A conditional provision binds only where its Condition holds;
// when it does not, its verdict is not applicable.
const (
	Shall             Force = "shall"
	ConditionalShall  Force = "conditional shall"
	Should            Force = "should"
	ConditionalShould Force = "conditional should"
)

// Binding reports whether the force is a shall, conditional or not.
func (f Force) Binding() bool { return f == Shall || f == ConditionalShall }

// Result is the verdict on one provision.
type Result struct {
	// ID is the provision's short id: "5.3-13", "CRA-I-2c", "PSTI-3".
	ID string `json:"id"`
	// Source cites the provision.
	Source string `json:"source"`
	Force  Force  `json:"force"`
	// Condition is when a conditional provision applies.
	Condition string `json:"condition,omitempty"`
	Title     string `json:"title"`
	Status    Status `json:"verdict"`
	// Evidence are the facts the verdict rests on, computed from the
	// project, and for not applicable the reason.
	Evidence []string `json:"evidence"`
	// Attestation is the manufacturer's record behind an attested
	// verdict.
	Attestation *Attestation `json:"attestation,omitempty"`
	// Warnings are problems that do not change the verdict yet.
	Warnings []string `json:"warnings,omitempty"`

	// outside is set by a check when the verdict also rests on a fact
	// outside uptrust: a met computed part then needs an attestation.
	outside bool
}

// Evaluate judges every provision, in the order of IDs.
func Evaluate(f *Facts) []Result {
	out := make([]Result, 0, len(rules))
	for _, r := range rules {
		res := Result{ID: r.id, Source: r.source, Force: r.force, Condition: r.condition, Title: r.title}
		r.check(f, &res)
		if res.Status == "" {
			panic(fmt.Sprintf("compliance: rule %s gave no verdict", r.id))
		}
		if res.outside && r.attest == "" {
			panic(fmt.Sprintf("compliance: rule %s rests on a fact outside uptrust but says nothing to attest", r.id))
		}
		if res.outside && res.Status == Met {
			applyAttestation(f, r, &res)
		}
		out = append(out, res)
	}
	return out
}

// applyAttestation turns the met computed part of res into attested when
// the manufacturer attested the rest, and into not met when not.
func applyAttestation(f *Facts, r rule, res *Result) {
	a := f.attestation(r.id)
	if a == nil {
		res.Status = NotMet
		res.add("not attested: uptrust cannot see whether %s; record the evidence with uptrust compliance attest %s %s --url URL --note TEXT [--by NAME]",
			r.attest, f.Product, r.id)
		return
	}
	res.Status = Attested
	res.Attestation = a
	by := a.By
	if by == "" {
		by = "an unnamed attester"
	}
	res.add("attested by %s on %s: %s (%s); uptrust has not checked it", by, when(a.Time), a.Note, a.URL)
}

// IDs lists the provision ids Evaluate reports, in order.
func IDs() []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.id
	}
	return out
}

// Attestable lists the ids whose verdict rests on a fact outside uptrust,
// with what the manufacturer attests for each, in report order.
func Attestable() []AttestableItem {
	var out []AttestableItem
	for _, r := range rules {
		if r.attest != "" {
			out = append(out, AttestableItem{ID: r.id, Title: r.title, Attest: r.attest})
		}
	}
	return out
}

// AttestableItem is a provision that can be attested.
type AttestableItem struct {
	ID, Title string
	// Attest says what the attestation must show.
	Attest string
}

// CheckItem returns nil when id can be attested, else an error that says
// why not and lists the ids that can.
func CheckItem(id string) error {
	var ids []string
	for _, a := range Attestable() {
		if a.ID == id {
			return nil
		}
		ids = append(ids, a.ID)
	}
	for _, r := range rules {
		if r.id == id {
			return fmt.Errorf("compliance: %s is judged from the project alone and cannot be attested; items that can: %s", id, strings.Join(ids, ", "))
		}
	}
	return fmt.Errorf("compliance: no provision %q; items that can be attested: %s", id, strings.Join(ids, ", "))
}

// Counts counts verdicts per status.
func Counts(results []Result) map[Status]int {
	out := map[Status]int{}
	for _, r := range results {
		out[r.Status]++
	}
	return out
}

// Summary counts verdicts: "N met, M not met, K not yet demonstrable, A
// attested, L not applicable".
func Summary(results []Result) string {
	c := Counts(results)
	parts := make([]string, len(statuses))
	for i, s := range statuses {
		parts[i] = fmt.Sprintf("%d %s", c[s], s)
	}
	return strings.Join(parts, ", ")
}

// ShallsNotMet lists the ids of binding provisions (shall, conditional
// shall) whose verdict is not met.
func ShallsNotMet(results []Result) []string {
	var out []string
	for _, r := range results {
		if r.Force.Binding() && r.Status == NotMet {
			out = append(out, r.ID)
		}
	}
	return out
}

// Attestation is the standing attestation of one item, as the report shows
// it.
type Attestation struct {
	Item string    `json:"item"`
	URL  string    `json:"url"`
	Note string    `json:"note"`
	By   string    `json:"by"`
	Time time.Time `json:"time"`
}
