package rollout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Shares are fractions of a rollout's selected devices in steps of 1/Buckets
// (0.01 %): 100 is 1 %, 10000 is 100 %. Waves and the failure threshold are
// held as shares so that every comparison is exact integer arithmetic.

// Plan is an operator's plan for a rollout in waves. It is a value: the
// store keeps it with the rollout and Decide reads it.
type Plan struct {
	// Waves are cumulative shares of the selected devices (see Buckets),
	// strictly increasing, the last one Buckets (100 %). Wave k (0-based)
	// offers the release to the devices whose wave bucket is below Waves[k].
	Waves []int `json:"waves"`
	// MaxFailure is the highest tolerated failure ratio of any wave, as a
	// share (500 is 5 %). A wave whose ratio is strictly above it halts the
	// rollout.
	MaxFailure int `json:"max_failure"`
	// MinSuccess is how many devices of a wave must have succeeded before
	// the next wave starts (a smaller wave needs all its devices; see
	// Decide). Zero means the soak time alone gates the waves.
	MinSuccess int `json:"min_success"`
	// Soak is how long a wave runs before the next may start.
	Soak time.Duration `json:"soak_ns"`
	// Start is when the first wave starts. Nothing happens before it.
	Start time.Time `json:"start"`
	// Window, when not nil, is the maintenance window the devices install
	// in. It is carried to the devices and does not gate the waves: a wave
	// whose devices may not install yet gathers no successes and waits.
	Window *Window `json:"window,omitempty"`
}

// PlanFlags are the flag strings of `uptrust rollout start`, as typed.
// Empty Start means now; empty Window means none.
type PlanFlags struct {
	Waves      string // "1%,10%,50%,100%"
	MaxFailure string // "5%"
	MinSuccess string // "20"
	Soak       string // "1h"
	Start      string // RFC 3339, e.g. "2026-12-08T02:00:00+01:00"
	Window     string // "Mon-Fri 02:00-04:00 Europe/Berlin"
}

// ParsePlan parses the flags of `uptrust rollout start` into a validated
// plan. now is the start when f.Start is empty. The error names the flag
// and the bad part.
func ParsePlan(f PlanFlags, now time.Time) (Plan, error) {
	var p Plan
	var err error
	if p.Waves, err = ParseWaves(f.Waves); err != nil {
		return Plan{}, err
	}
	if p.MaxFailure, err = parseShare(f.MaxFailure); err != nil {
		return Plan{}, fmt.Errorf("rollout: --max-failure: %w", err)
	}
	if p.MinSuccess, err = parseMinSuccess(f.MinSuccess); err != nil {
		return Plan{}, err
	}
	if p.Soak, err = parseSoak(f.Soak); err != nil {
		return Plan{}, err
	}
	p.Start = now
	if s := strings.TrimSpace(f.Start); s != "" {
		if p.Start, err = time.Parse(time.RFC3339, s); err != nil {
			return Plan{}, fmt.Errorf("rollout: --start %q is not an RFC 3339 time such as 2026-12-08T02:00:00+01:00", s)
		}
	}
	if s := strings.TrimSpace(f.Window); s != "" {
		w, err := ParseWindow(s)
		if err != nil {
			return Plan{}, err
		}
		p.Window = &w
	}
	if err := p.Validate(); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// ParseWaves parses "1%,10%,50%,100%" into cumulative shares and checks
// them as Validate does.
func ParseWaves(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("rollout: --waves is empty; give cumulative percentages such as 1%,10%,50%,100%")
	}
	parts := strings.Split(s, ",")
	waves := make([]int, 0, len(parts))
	for i, part := range parts {
		v, err := parseShare(part)
		if err != nil {
			return nil, fmt.Errorf("rollout: --waves: wave %d: %w", i+1, err)
		}
		waves = append(waves, v)
	}
	if err := validateWaves(waves); err != nil {
		return nil, err
	}
	return waves, nil
}

// ParseShare parses a percentage such as "5%", "0.5%" or "12.25%" into a
// share (500, 50, 1225). The % sign is required, so that "0.05" is never
// mistaken for 5 %; steps finer than 0.01 % and values outside 0..100 % are
// refused.
func ParseShare(s string) (int, error) {
	v, err := parseShare(s)
	if err != nil {
		return 0, fmt.Errorf("rollout: %w", err)
	}
	return v, nil
}

func parseShare(s string) (int, error) {
	s = strings.TrimSpace(s)
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return 0, fmt.Errorf("%q has no %% sign (write e.g. 5%%)", s)
	}
	num = strings.TrimSpace(num)
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("%q is out of range 0%%..100%%", s)
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || !allDigits(whole) || (hasDot && (frac == "" || !allDigits(frac))) {
		return 0, fmt.Errorf("%q is not a percentage such as 5%% or 0.5%%", s)
	}
	if len(frac) > 2 {
		return 0, fmt.Errorf("%q is finer than the 0.01%% step", s)
	}
	if len(whole) > 3 {
		return 0, fmt.Errorf("%q is out of range 0%%..100%%", s)
	}
	w, _ := strconv.Atoi(whole)
	f := 0
	if frac != "" {
		f, _ = strconv.Atoi(frac)
		if len(frac) == 1 {
			f *= 10
		}
	}
	v := w*100 + f
	if v > Buckets {
		return 0, fmt.Errorf("%q is out of range 0%%..100%%", s)
	}
	return v, nil
}

// FormatShare writes a share as a percentage: 500 is "5%", 1050 "10.5%",
// 1 "0.01%". ParseShare(FormatShare(v)) == v for 0 <= v <= Buckets.
func FormatShare(v int) string {
	if v < 0 {
		return "-" + FormatShare(-v)
	}
	s := strconv.Itoa(v / 100)
	if f := v % 100; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%02d", f), "0")
	}
	return s + "%"
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func parseMinSuccess(s string) (int, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("rollout: --min-success %q is not a whole number of devices", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("rollout: --min-success %d is negative", n)
	}
	return n, nil
}

func parseSoak(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("rollout: --soak %q is not a duration such as 30m or 1h", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("rollout: --soak %s is negative", s)
	}
	return d, nil
}

// Validate checks a plan: at least one wave, shares in 1..Buckets strictly
// increasing and ending at Buckets (100 %), MaxFailure within 0..100 %,
// MinSuccess and Soak not negative, a start time, and a valid window.
func (p Plan) Validate() error {
	if err := validateWaves(p.Waves); err != nil {
		return err
	}
	if p.MaxFailure < 0 || p.MaxFailure > Buckets {
		return fmt.Errorf("rollout: max failure %s is out of range 0%%..100%%", FormatShare(p.MaxFailure))
	}
	if p.MinSuccess < 0 {
		return fmt.Errorf("rollout: min success %d is negative", p.MinSuccess)
	}
	if p.Soak < 0 {
		return fmt.Errorf("rollout: soak %s is negative", p.Soak)
	}
	if p.Start.IsZero() {
		return errors.New("rollout: the plan has no start time")
	}
	if p.Window != nil {
		if err := p.Window.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func validateWaves(w []int) error {
	if len(w) == 0 {
		return errors.New("rollout: the plan has no waves")
	}
	for i, v := range w {
		if v <= 0 || v > Buckets {
			return fmt.Errorf("rollout: wave %d (%s) is out of range: each wave is above 0%% and at most 100%%", i+1, FormatShare(v))
		}
		if i > 0 && v <= w[i-1] {
			return fmt.Errorf("rollout: wave %d (%s) is not above wave %d (%s): waves are cumulative and must increase", i+1, FormatShare(v), i, FormatShare(w[i-1]))
		}
	}
	if last := w[len(w)-1]; last != Buckets {
		return fmt.Errorf("rollout: the last wave is %s; it must be 100%% so that every selected device is reached", FormatShare(last))
	}
	return nil
}

// waveName names wave k (0-based) for people: "wave 2 of 4 (10%)".
func (p Plan) waveName(k int) string {
	return fmt.Sprintf("wave %d of %d (%s)", k+1, len(p.Waves), FormatShare(p.Waves[k]))
}
