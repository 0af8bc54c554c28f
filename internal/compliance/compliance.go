// Package compliance says whether a product's current configuration in an
// uptrust project meets the update provisions of ETSI EN 303 645 V2.1.1
// (§5.3), the update-related essential requirements of the EU Cyber
// Resilience Act (Regulation (EU) 2024/2847, Annex I and Article 13(8)) and
// the UK PSTI security requirements (SI 2023/1007, Schedule 1), with the
// evidence behind each verdict.
//
// It has two halves. Gather reads a project into Facts — signed metadata,
// support declaration, releases, rollouts, key files — and never writes or
// loads a key. Evaluate is pure: Facts in, Results out, so each rule can be
// shown to flip between met and not met from a hand-made Facts value.
//
// A verdict is about what uptrust can see and enforce. Provisions that also
// depend on things outside it (a label on the device, a shop page, the
// manufacturer's vulnerability handling) say so in their evidence; they are
// never reported met on a hard-coded basis alone.
package compliance

import "fmt"

// Status is a verdict. Values are wire strings.
type Status string

// Verdicts.
const (
	Met           Status = "met"
	NotMet        Status = "not met"
	NotApplicable Status = "not applicable"
)

// Result is the verdict on one provision.
type Result struct {
	// ID is the provision's short id: "5.3-13", "CRA-I-2c", "PSTI-3".
	ID string `json:"-"`
	// Source cites the provision.
	Source string `json:"source"`
	// Level is its force: "shall", "should", or "essential requirement".
	Level  string `json:"level"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Evidence are the facts the verdict rests on, computed from the
	// project.
	Evidence []string `json:"evidence"`
	// Warnings are problems that do not change the verdict yet.
	Warnings []string `json:"warnings,omitempty"`
}

// Evaluate judges every provision, in the order of IDs.
func Evaluate(f *Facts) []Result {
	out := make([]Result, 0, len(rules))
	for _, r := range rules {
		res := Result{ID: r.id, Source: r.source, Level: r.level, Title: r.title}
		r.check(f, &res)
		if res.Status == "" {
			panic(fmt.Sprintf("compliance: rule %s gave no verdict", r.id))
		}
		out = append(out, res)
	}
	return out
}

// IDs lists the provision ids Evaluate reports, in order.
func IDs() []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.id
	}
	return out
}

// Summary counts verdicts: "N met, M not met, K not applicable".
func Summary(results []Result) string {
	var met, notMet, na int
	for _, r := range results {
		switch r.Status {
		case Met:
			met++
		case NotMet:
			notMet++
		case NotApplicable:
			na++
		}
	}
	return fmt.Sprintf("%d met, %d not met, %d not applicable", met, notMet, na)
}
