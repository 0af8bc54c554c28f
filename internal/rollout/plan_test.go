package rollout

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var planNow = time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)

func goodFlags() PlanFlags {
	return PlanFlags{Waves: "1%,10%,50%,100%", MaxFailure: "5%", MinSuccess: "20", Soak: "1h"}
}

func TestParsePlan(t *testing.T) {
	p, err := ParsePlan(goodFlags(), planNow)
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{Waves: []int{100, 1000, 5000, 10000}, MaxFailure: 500, MinSuccess: 20, Soak: time.Hour, Start: planNow}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("ParsePlan = %+v, want %+v", p, want)
	}

	f := goodFlags()
	f.Start = "2026-12-08T02:00:00+01:00"
	f.Window = "Mon-Fri 02:00-04:00 Europe/Berlin"
	f.Waves = " 0.5% , 12.25%,100% "
	p, err = ParsePlan(f, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Start.Equal(time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("start = %v", p.Start)
	}
	if p.Window == nil || p.Window.String() != "Mon-Fri 02:00-04:00 Europe/Berlin" {
		t.Errorf("window = %v", p.Window)
	}
	if !reflect.DeepEqual(p.Waves, []int{50, 1225, 10000}) {
		t.Errorf("waves = %v", p.Waves)
	}

	// A persisted plan reads back the same.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if q.Window == nil || q.Window.String() != p.Window.String() || !q.Start.Equal(p.Start) || !reflect.DeepEqual(q.Waves, p.Waves) ||
		q.MaxFailure != p.MaxFailure || q.MinSuccess != p.MinSuccess || q.Soak != p.Soak {
		t.Errorf("round trip %s gave %+v", b, q)
	}
	if err := q.Validate(); err != nil {
		t.Errorf("round-tripped plan invalid: %v", err)
	}
}

func TestParsePlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*PlanFlags)
		want string // substring of the error
	}{
		{"waves empty", func(f *PlanFlags) { f.Waves = "" }, "--waves is empty"},
		{"waves not increasing", func(f *PlanFlags) { f.Waves = "10%,5%,100%" }, "wave 2 (5%) is not above wave 1 (10%)"},
		{"waves equal", func(f *PlanFlags) { f.Waves = "10%,10%,100%" }, "wave 2 (10%) is not above wave 1 (10%)"},
		{"waves not ending at 100", func(f *PlanFlags) { f.Waves = "1%,10%,50%" }, "the last wave is 50%; it must be 100%"},
		{"wave above 100", func(f *PlanFlags) { f.Waves = "1%,150%" }, `wave 2: "150%" is out of range`},
		{"wave zero", func(f *PlanFlags) { f.Waves = "0%,100%" }, "wave 1 (0%) is out of range"},
		{"wave negative", func(f *PlanFlags) { f.Waves = "-1%,100%" }, `wave 1: "-1%" is out of range`},
		{"wave without percent sign", func(f *PlanFlags) { f.Waves = "1,100%" }, `wave 1: "1" has no % sign`},
		{"wave not a number", func(f *PlanFlags) { f.Waves = "1%,x%,100%" }, `wave 2: "x%" is not a percentage`},
		{"wave empty item", func(f *PlanFlags) { f.Waves = "1%,,100%" }, `wave 2: "" has no % sign`},
		{"wave too fine", func(f *PlanFlags) { f.Waves = "0.125%,100%" }, `"0.125%" is finer than the 0.01% step`},
		{"max failure out of range", func(f *PlanFlags) { f.MaxFailure = "101%" }, `--max-failure: "101%" is out of range`},
		{"max failure ratio form", func(f *PlanFlags) { f.MaxFailure = "0.05" }, `--max-failure: "0.05" has no % sign`},
		{"max failure dot only", func(f *PlanFlags) { f.MaxFailure = "5.%" }, `--max-failure: "5.%" is not a percentage`},
		{"min success negative", func(f *PlanFlags) { f.MinSuccess = "-3" }, "--min-success -3 is negative"},
		{"min success not a number", func(f *PlanFlags) { f.MinSuccess = "many" }, `--min-success "many" is not a whole number`},
		{"soak negative", func(f *PlanFlags) { f.Soak = "-1h" }, "--soak -1h is negative"},
		{"soak not a duration", func(f *PlanFlags) { f.Soak = "1 day" }, `--soak "1 day" is not a duration`},
		{"start not RFC 3339", func(f *PlanFlags) { f.Start = "tomorrow" }, `--start "tomorrow" is not an RFC 3339 time`},
		{"window bad day", func(f *PlanFlags) { f.Window = "Mon-Fry 02:00-04:00 UTC" }, `unknown day "Fry"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFlags()
			tc.edit(&f)
			p, err := ParsePlan(f, planNow)
			if err == nil {
				t.Fatalf("ParsePlan(%+v) = %+v, want an error", f, p)
			}
			if !strings.HasPrefix(err.Error(), "rollout: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want it to start with \"rollout: \" and contain %q", err, tc.want)
			}
		})
	}
}

func TestPlanValidate(t *testing.T) {
	good := Plan{Waves: []int{100, 10000}, MaxFailure: 500, MinSuccess: 1, Soak: time.Minute, Start: planNow}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Plan)
		want string
	}{
		{"no waves", func(p *Plan) { p.Waves = nil }, "no waves"},
		{"max failure negative", func(p *Plan) { p.MaxFailure = -1 }, "max failure -0.01% is out of range"},
		{"max failure above 100", func(p *Plan) { p.MaxFailure = Buckets + 1 }, "max failure 100.01% is out of range"},
		{"min success negative", func(p *Plan) { p.MinSuccess = -1 }, "min success -1 is negative"},
		{"soak negative", func(p *Plan) { p.Soak = -time.Second }, "soak -1s is negative"},
		{"no start", func(p *Plan) { p.Start = time.Time{} }, "no start time"},
		{"zero window", func(p *Plan) { p.Window = &Window{} }, "window: no time zone"},
		{"wave above 100", func(p *Plan) { p.Waves = []int{100, Buckets + 1} }, "wave 2 (100.01%) is out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			p.Waves = append([]int(nil), good.Waves...)
			tc.edit(&p)
			if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate(%+v) = %v; want an error containing %q", p, err, tc.want)
			}
		})
	}
}

// Every share prints as a percentage that parses back to it.
func TestShareRoundTrip(t *testing.T) {
	for v := 0; v <= Buckets; v++ {
		s := FormatShare(v)
		got, err := ParseShare(s)
		if err != nil || got != v {
			t.Fatalf("ParseShare(FormatShare(%d) = %q) = %d, %v", v, s, got, err)
		}
	}
	for s, want := range map[string]int{"5%": 500, "0.5%": 50, "0.05%": 5, "100%": 10000, "100.00%": 10000, "007%": 700, "1.5 %": 150} {
		if got, err := ParseShare(s); err != nil || got != want {
			t.Errorf("ParseShare(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"100.01%", "1000%", "%", ".5%", "5", "+5%", "5e1%", "1_0%"} {
		if got, err := ParseShare(s); err == nil || !strings.HasPrefix(err.Error(), "rollout: ") {
			t.Errorf("ParseShare(%q) = %d, %v; want a rollout error", s, got, err)
		}
	}
}
