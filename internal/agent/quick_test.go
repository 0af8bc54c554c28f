package agent

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/devicetest"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/units"
)

// repoLog counts the /repo/ requests that reach the server behind a
// devicetest.Server and records their If-None-Match; when forge is set it
// answers every conditional request 304 itself (a network attacker).
type repoLog struct {
	mu    sync.Mutex
	next  http.Handler
	reqs  []string // path, with " inm" when it carried If-None-Match
	forge bool
}

func (l *repoLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	inm := r.Header.Get("If-None-Match")
	l.mu.Lock()
	line := r.URL.Path
	if inm != "" {
		line += " inm"
	}
	if strings.HasPrefix(r.URL.Path, "/repo/") {
		l.reqs = append(l.reqs, line)
	}
	forge := l.forge
	l.mu.Unlock()
	if forge && inm != "" {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	l.next.ServeHTTP(w, r)
}

// take returns the requests since the last take.
func (l *repoLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

// quickWorld is a managed world with an accepted device whose /repo/
// requests are logged, after its first (full) check.
func quickWorld(t *testing.T, change func(*Config)) (*testWorld, *devicetest.Server, *testDevice, *repoLog) {
	t.Helper()
	w, ds := managedWorld(t, "version")
	ds.Initial = EnrolAccepted
	l := &repoLog{next: ds.Next}
	ds.Next = l
	d := managedDevice(t, w, ds, ModeManaged, change)
	chk, err := d.managedCheck()
	if err != nil || chk.Action != "none" {
		t.Fatalf("first check: %+v, %v", chk, err)
	}
	if reqs := l.take(); len(reqs) < 4 {
		t.Fatalf("the first check made %d /repo/ requests, want the full workflow: %v", len(reqs), reqs)
	}
	if f := d.state().FullRefresh; f == nil || f.Validator == "" || !f.Expires.After(time.Now()) {
		t.Fatalf("full refresh recorded: %+v", f)
	}
	return w, ds, d, l
}

// An unchanged view: the check is the conditional request alone, and the
// server answers 304. A changed view (a rollout) runs the whole workflow
// and installs.
func TestManagedConditionalCheck(t *testing.T) {
	w, _, d, l := quickWorld(t, nil)
	chk, err := d.managedCheck()
	if err != nil || chk.Action != "none" || !strings.Contains(chk.Reason, "304") {
		t.Fatalf("second check: %+v, %v", chk, err)
	}
	if reqs := l.take(); len(reqs) != 1 || reqs[0] != "/repo/fleet/metadata/timestamp.json inm" {
		t.Fatalf("second check's /repo/ requests: %v, want the conditional fleet timestamp alone", reqs)
	}
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	installs(t, d, "1.1.0")
	if reqs := l.take(); len(reqs) < 4 {
		t.Fatalf("the check of a changed view made %d /repo/ requests: %v", len(reqs), reqs)
	}
}

// The full workflow runs when the last full refresh is too old, when
// trusted metadata expires within the bound, or when something is pending.
func TestManagedConditionalDue(t *testing.T) {
	for name, change := range map[string]func(*State){
		"overdue":  func(s *State) { s.FullRefresh.At = s.FullRefresh.At.Add(-DefaultFullCheckEvery) },
		"expiring": func(s *State) { s.FullRefresh.Expires = time.Now().Add(DefaultFullCheckEvery / 2) },
		"future":   func(s *State) { s.FullRefresh.At = time.Now().Add(time.Hour) },
		"waiting":  func(s *State) { s.Waiting = []Waiting{{Version: "1.1.0", Since: time.Now()}} },
	} {
		t.Run(name, func(t *testing.T) {
			_, _, d, l := quickWorld(t, nil)
			s := d.state()
			change(s)
			if err := saveState(d.cfg.DataDir, s); err != nil {
				t.Fatal(err)
			}
			if _, err := d.managedCheck(); err != nil {
				t.Fatal(err)
			}
			reqs := l.take()
			if len(reqs) < 4 {
				t.Fatalf("%d /repo/ requests, want the full workflow: %v", len(reqs), reqs)
			}
			for _, r := range reqs {
				if strings.HasSuffix(r, " inm") {
					t.Errorf("a due full check sent a conditional request: %v", reqs)
				}
			}
		})
	}
}

// A full_check_every shorter than a minute, or not below stale_after
// (conditional checks do not renew the last refresh), is refused; anonymous mode
// refuses it (it sends no validator).
func TestFullCheckEveryConfig(t *testing.T) {
	w, ds := managedWorld(t)
	d := managedDevice(t, w, ds, ModeManaged, nil)
	for _, tc := range []struct {
		mode  string
		every time.Duration
		want  string
	}{
		{ModeManaged, time.Second, "full_check_every 1s is too short"},
		{ModeManaged, 14 * 24 * time.Hour, "full_check_every 336h0m0s is not below stale_after 336h0m0s"},
		{ModeAnonymous, time.Hour, "full_check_every is set but mode is \"anonymous\""},
	} {
		cfg := *d.cfg
		cfg.Mode, cfg.KeyFile, cfg.FullCheckEvery = tc.mode, "", units.Duration(tc.every)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want %q", tc.mode, tc.every, err, tc.want)
		}
	}
}

// A forged 304 (the attacker answers every conditional request) ends the
// check with nothing done: the published release is not installed and
// nothing else is fetched. Once the full refresh is due the device sees
// past the forgery and installs the release the repositories sign.
func TestManagedForged304InstallsNothing(t *testing.T) {
	w, _, d, l := quickWorld(t, nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	l.mu.Lock()
	l.forge = true
	l.mu.Unlock()
	chk, err := d.cycle()
	if err != nil || chk.Action != "none" {
		t.Fatalf("check under forged 304s: %+v, %v", chk, err)
	}
	if s := d.state(); s.Version != "1.0.0" || s.Phase != PhaseIdle || s.Pending != nil {
		t.Fatalf("state under forged 304s: %s %s %+v", s.Version, s.Phase, s.Pending)
	}
	if reqs := l.take(); len(reqs) != 1 {
		t.Fatalf("/repo/ requests under forged 304s: %v, want the conditional one alone", reqs)
	}
	s := d.state()
	s.FullRefresh.At = s.FullRefresh.At.Add(-DefaultFullCheckEvery)
	if err := saveState(d.cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	installs(t, d, "1.1.0")
}

// Anonymous devices never send a validator.
func TestAnonymousSendsNoValidator(t *testing.T) {
	w, ds := managedWorld(t)
	l := &repoLog{next: ds.Next}
	ds.Next = l
	d := managedDevice(t, w, ds, ModeAnonymous, nil)
	for range 2 {
		if _, err := d.managedCheck(); err != nil {
			t.Fatal(err)
		}
	}
	reqs := l.take()
	if len(reqs) < 8 {
		t.Fatalf("two anonymous checks made %d /repo/ requests: %v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if strings.HasSuffix(r, " inm") {
			t.Fatalf("an anonymous device sent If-None-Match: %v", reqs)
		}
	}
	if d.state().FullRefresh != nil {
		t.Error("an anonymous device recorded a full refresh")
	}
}

func TestConditionalAllowed(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ok := &FullRefresh{At: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour), Validator: `"x"`}
	for _, tc := range []struct {
		name    string
		f       *FullRefresh
		pending bool
		want    bool
	}{
		{"fresh", ok, false, true},
		{"none", nil, false, false},
		{"no validator", &FullRefresh{At: ok.At, Expires: ok.Expires}, false, false},
		{"pending", ok, true, false},
		{"overdue", &FullRefresh{At: now.Add(-time.Hour), Expires: ok.Expires, Validator: `"x"`}, false, false},
		{"expiring", &FullRefresh{At: ok.At, Expires: now.Add(time.Hour), Validator: `"x"`}, false, false},
		{"clock back", &FullRefresh{At: now.Add(time.Second), Expires: ok.Expires, Validator: `"x"`}, false, false},
	} {
		if got, why := ConditionalAllowed(tc.f, tc.pending, now, time.Hour); got != tc.want || (!got && why == "") {
			t.Errorf("%s: %v (%q), want %v", tc.name, got, why, tc.want)
		}
	}
}
