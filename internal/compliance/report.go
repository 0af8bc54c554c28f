package compliance

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"
)

// Assessment says what the report is, at the top of the text and in the
// JSON.
const Assessment = "self-assessment by the manufacturer with uptrust's help, not a conformity assessment: " +
	"verdicts rest on the project's own data and on what the manufacturer attests; uptrust has not checked attested facts"

// Standard is one text the report evaluates.
type Standard struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	// Scope says which provisions of it the report covers.
	Scope string `json:"scope"`
}

// Standards lists the texts and versions the rules follow.
var Standards = []Standard{
	{"ETSI EN 303 645", "Cyber Security for Consumer Internet of Things: Baseline Requirements", "V2.1.1 (2020-06)", "clause 5.3, keep software updated"},
	{"EU CRA", "Cyber Resilience Act, Regulation (EU) 2024/2847", "OJ L, 2024/2847, 20.11.2024", "update-related requirements of Annex I and Article 13(8), (9), (19)"},
	{"UK PSTI", "Product Security and Telecommunications Infrastructure (Security Requirements for Relevant Connectable Products) Regulations 2023, SI 2023/1007", "as made", "Schedule 1 paragraphs 2 and 3"},
}

// Report is the whole compliance report of one product, in the order it is
// printed.
type Report struct {
	Product    string     `json:"product"`
	Time       time.Time  `json:"time"`
	Uptrust    string     `json:"uptrust_version"`
	Assessment string     `json:"assessment"`
	Standards  []Standard `json:"standards"`
	Summary    Tally      `json:"summary"`
	// ShallsNotMet are the binding provisions not met; a CI gate fails on
	// any.
	ShallsNotMet []string `json:"shalls_not_met"`
	Provisions   []Result `json:"provisions"`
}

// NewReport evaluates f into a report.
func NewReport(f *Facts) Report {
	results := Evaluate(f)
	return Report{
		Product: f.Product, Time: f.Now, Uptrust: Version(), Assessment: Assessment, Standards: Standards,
		Summary: tally(results), ShallsNotMet: nonNil(ShallsNotMet(results)), Provisions: results,
	}
}

// Tally counts the verdicts of a report, in the order of the verdicts.
type Tally struct {
	Met           int `json:"met"`
	NotMet        int `json:"not_met"`
	NotYet        int `json:"not_yet_demonstrable"`
	Attested      int `json:"attested"`
	NotApplicable int `json:"not_applicable"`
}

func tally(results []Result) Tally {
	c := Counts(results)
	return Tally{Met: c[Met], NotMet: c[NotMet], NotYet: c[NotYet], Attested: c[Attested], NotApplicable: c[NotApplicable]}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Version is the version of this uptrust build: the module version and
// the VCS revision the binary was built from, as far as Go recorded them.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+modified"
			}
		}
	}
	if rev != "" {
		v += " " + short(rev) + dirty
	}
	return v
}

// WriteText prints the report for reading.
func (r Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "compliance of %s at %s (uptrust %s)\n", r.Product, when(r.Time), r.Uptrust)
	fmt.Fprintf(w, "This is a %s.\n", Assessment)
	for _, s := range r.Standards {
		fmt.Fprintf(w, "  %s %s: %s\n", s.ID, s.Version, s.Scope)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVERDICT\tFORCE\tPROVISION / EVIDENCE")
	for _, p := range r.Provisions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\n", p.ID, p.Status, p.Force, p.Title, p.Source)
		if p.Condition != "" {
			fmt.Fprintf(tw, "\t\t\tapplies %s\n", p.Condition)
		}
		for _, e := range p.Evidence {
			fmt.Fprintf(tw, "\t\t\t- %s\n", e)
		}
		for _, wn := range p.Warnings {
			fmt.Fprintf(tw, "\t\t\t! warning: %s\n", wn)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("compliance: %w", err)
	}
	fmt.Fprintf(w, "\n%s\n", Summary(r.Provisions))
	if len(r.ShallsNotMet) > 0 {
		_, err := fmt.Fprintf(w, "shall provisions not met: %s\n", strings.Join(r.ShallsNotMet, ", "))
		return err
	}
	_, err := fmt.Fprintln(w, "no shall provision is not met: each is met, attested, not applicable or not yet demonstrable")
	return err
}
