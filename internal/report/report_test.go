package report

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// The JSON of a report is what agents in the field send: field names,
// outcome and class values must not change.
func TestReportJSON(t *testing.T) {
	for _, tc := range []struct {
		r    Report
		want string
	}{
		{Report{Product: "thermostat", Version: "1.1.0", Outcome: OutcomeInstalled},
			`{"product":"thermostat","version":"1.1.0","outcome":"installed"}`},
		{Report{Product: "thermostat", Version: "1.1.0", Outcome: OutcomeRolledBack, ErrorClass: ClassHealthCheck},
			`{"product":"thermostat","version":"1.1.0","outcome":"rolled_back","error_class":"health-check"}`},
		{Report{Product: "p", Version: "2", Outcome: OutcomeFailed, ErrorClass: ClassNetwork},
			`{"product":"p","version":"2","outcome":"failed","error_class":"network"}`},
		{Report{Product: "p", Version: "2", Outcome: OutcomeRejected, ErrorClass: ClassRollbackSecurity},
			`{"product":"p","version":"2","outcome":"rejected","error_class":"rollback-security-version"}`},
	} {
		b, err := json.Marshal(tc.r)
		if err != nil || string(b) != tc.want {
			t.Errorf("marshal %+v = %s, %v; want %s", tc.r, b, err, tc.want)
		}
		var back Report
		if err := json.Unmarshal(b, &back); err != nil || back != tc.r {
			t.Errorf("unmarshal %s = %+v, %v; want %+v", b, back, err, tc.r)
		}
	}
}

func TestOutcomes(t *testing.T) {
	want := []Outcome{"installed", "rolled_back", "failed", "rejected"}
	got := Outcomes()
	if len(got) != len(want) {
		t.Fatalf("Outcomes() = %q, want %q", got, want)
	}
	for i, o := range got {
		if o != want[i] || !o.Valid() {
			t.Errorf("Outcomes()[%d] = %q (valid %v), want %q", i, o, o.Valid(), want[i])
		}
	}
	for _, o := range []Outcome{"", "Installed", "rolled-back", "updated", "installed "} {
		if o.Valid() {
			t.Errorf("Outcome(%q).Valid() = true", o)
		}
	}
}

// classFile lists the Class constants declared in class.go, read from the
// source so that a new constant cannot be missed.
func classFile(t *testing.T) []Class {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "class.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []Class
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			v := sp.(*ast.ValueSpec)
			for i, n := range v.Names {
				lit, ok := v.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("class.go: constant %s is not a literal", n.Name)
				}
				val, _ := strconv.Unquote(lit.Value)
				out = append(out, Class(val))
			}
		}
	}
	return out
}

// Every class the agent sends passes the server's checks, is declared
// and counted as itself, and no two classes share a value; Classes lists
// every constant but ClassOther.
func TestClassesAreAccepted(t *testing.T) {
	seen := map[Class]bool{}
	for _, c := range Classes() {
		if seen[c] {
			t.Errorf("class %q declared twice", c)
		}
		seen[c] = true
		r := Report{Product: "thermostat", Version: "1.0.0", Outcome: OutcomeRejected, ErrorClass: c}
		if err := r.Validate(); err != nil {
			t.Errorf("class %q: %v", c, err)
		}
		if !c.Declared() || r.Counted() != r {
			t.Errorf("class %q: declared %v, counted as %+v", c, c.Declared(), r.Counted())
		}
	}
	consts := classFile(t)
	if len(consts) != len(seen)+1 {
		t.Errorf("class.go declares %d classes, Classes() lists %d and ClassOther", len(consts), len(seen))
	}
	for _, c := range consts {
		if !seen[c] && c != ClassOther {
			t.Errorf("class %q is missing from Classes()", c)
		}
	}
}

// A class this package does not declare is counted as ClassOther; an
// empty class stays empty.
func TestCountedUndeclaredClass(t *testing.T) {
	r := Report{Product: "p", Version: "1", Outcome: OutcomeFailed, ErrorClass: "from-a-newer-agent"}
	if got := r.Counted(); got.ErrorClass != ClassOther || got.Product != "p" || got.Outcome != OutcomeFailed {
		t.Errorf("Counted = %+v, want class %q", got, ClassOther)
	}
	r.ErrorClass = ""
	if got := r.Counted(); got != r {
		t.Errorf("Counted = %+v, want %+v", got, r)
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", MaxFieldLen)
	for _, r := range []Report{
		{Product: "thermostat", Version: "1.1.0+b7", Outcome: OutcomeRolledBack, ErrorClass: "health_check"},
		{Product: "p", Version: "1", Outcome: OutcomeInstalled},
		{Product: "P.x_y-z", Version: "1.0~rc1", Outcome: OutcomeFailed, ErrorClass: "io"},
		{Product: long, Version: long, Outcome: OutcomeRejected, ErrorClass: Class(long)},
	} {
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", r, err)
		}
	}
	for _, tc := range []struct {
		name   string
		r      Report
		detail string
	}{
		{"bad outcome", Report{Product: "p", Version: "1", Outcome: "exploded"},
			`invalid report: outcome must be one of "installed", "rolled_back", "failed", "rejected"`},
		{"no outcome", Report{Product: "p", Version: "1"}, "outcome is required"},
		{"no product", Report{Version: "1", Outcome: OutcomeInstalled}, "product is required"},
		{"no version", Report{Product: "p", Outcome: OutcomeInstalled}, "version is required"},
		{"long product", Report{Product: long + "a", Version: "1", Outcome: OutcomeInstalled}, "product is longer than 64 bytes"},
		{"long class", Report{Product: "p", Version: "1", Outcome: OutcomeFailed, ErrorClass: Class(long + "a")}, "error_class is longer than"},
		{"bad charset", Report{Product: "p q", Version: "1", Outcome: OutcomeInstalled}, "outside its allowed set"},
		{"plus in product", Report{Product: "p+q", Version: "1", Outcome: OutcomeInstalled}, "product contains a character outside"},
		{"free text error", Report{Product: "p", Version: "1", Outcome: OutcomeFailed, ErrorClass: "disk full at /home/alice"}, "error_class contains"},
		{"leading dot", Report{Product: ".p", Version: "1", Outcome: OutcomeInstalled}, "product must start with"},
		{"leading dash class", Report{Product: "p", Version: "1", Outcome: OutcomeFailed, ErrorClass: "-x"}, "error_class must start with"},
		{"non-ASCII", Report{Product: "p", Version: "1é", Outcome: OutcomeInstalled}, "version contains"},
	} {
		err := tc.r.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.detail) || !strings.HasPrefix(err.Error(), "invalid report: ") {
			t.Errorf("%s: Validate = %v, want an error containing %q", tc.name, err, tc.detail)
		}
	}
}
