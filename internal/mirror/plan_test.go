package mirror

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/server"
)

var repos = []string{"/repo/release", "/repo/fleet"}

// pubContent is a publication of both repositories at version v with the
// given payloads (URL path → file), without touching the disk.
func pubContent(v int, payloads map[string]server.PayloadFile) *server.Content {
	c := &server.Content{Metadata: map[string][]byte{}, Payloads: payloads}
	if c.Payloads == nil {
		c.Payloads = map[string]server.PayloadFile{}
	}
	for _, b := range repos {
		md := b + "/metadata/"
		c.Metadata[md+"1.root.json"] = []byte(`{"root":1}`)
		c.Metadata[md+"root.json"] = []byte(`{"root":1}`)
		c.Metadata[md+fmt.Sprintf("%d.targets.json", v)] = fmt.Appendf(nil, `{"targets":%d}`, v)
		c.Metadata[md+fmt.Sprintf("%d.snapshot.json", v)] = fmt.Appendf(nil, `{"snapshot":%d}`, v)
		c.Metadata[md+"timestamp.json"] = timestampDoc(v, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	c.Metadata[fmt.Sprintf("/repo/release/metadata/%d.products/thermostat.json", v)] = fmt.Appendf(nil, `{"product":%d}`, v)
	return c
}

func timestampDoc(v int, expires time.Time) []byte {
	return fmt.Appendf(nil, `{"signed":{"_type":"timestamp","version":%d,"expires":%q},"signatures":[]}`, v, expires.Format(time.RFC3339))
}

// checkOrder asserts the publication order of steps, classifying paths on
// its own: payloads first, then delegated targets, targets, snapshots,
// versioned roots, root.json, the timestamps in repos order, removals last.
func checkOrder(t *testing.T, steps []Step, repos []string) {
	t.Helper()
	rankOf := func(s Step) int {
		name := s.Path[strings.LastIndex(s.Path, "/metadata/")+len("/metadata/"):]
		switch {
		case s.Op == OpPutPayload:
			return 0
		case s.Op == OpRemove:
			return 7
		case name == "timestamp.json":
			return 6
		case name == "root.json":
			return 5
		case strings.HasSuffix(name, ".root.json"):
			return 4
		case strings.HasSuffix(name, ".snapshot.json"):
			return 3
		case strings.HasSuffix(name, ".targets.json"):
			return 2
		case strings.Contains(name, ".products/"):
			return 1
		}
		t.Fatalf("unexpected step %s", s)
		return 0
	}
	var ts []string
	for i := 1; i < len(steps); i++ {
		if a, b := rankOf(steps[i-1]), rankOf(steps[i]); a > b {
			t.Errorf("step %d (%s) comes after %d (%s)", i, steps[i], i-1, steps[i-1])
		}
	}
	for _, s := range steps {
		if s.Op == OpPutMetadata && strings.HasSuffix(s.Path, "/timestamp.json") {
			ts = append(ts, strings.TrimSuffix(s.Path, "/metadata/timestamp.json"))
		}
	}
	if !slices.Equal(ts, repos) {
		t.Errorf("timestamps published in order %v, want %v", ts, repos)
	}
}

func TestPlanOrder(t *testing.T) {
	payloads := map[string]server.PayloadFile{
		"/repo/release/targets/thermostat/" + strings.Repeat("a", 64) + ".1.1.0": {Path: "/blobs/a", Size: 3, SHA256: strings.Repeat("a", 64)},
		"/repo/release/targets/thermostat/" + strings.Repeat("b", 64) + ".1.2.0": {Path: "/blobs/b", Size: 3, SHA256: strings.Repeat("b", 64)},
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// The previous mirror had version 1; version 2 replaces it.
	first, err := makePlan(pubContent(1, nil), State{}, now, 0, repos)
	if err != nil {
		t.Fatal(err)
	}
	p, err := makePlan(pubContent(2, payloads), first.state, now, 0, repos)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, p.steps, repos)
	var removed []string
	for _, s := range p.steps {
		if s.Op == OpRemove {
			removed = append(removed, s.Path)
		}
	}
	want := []string{"/repo/fleet/metadata/1.snapshot.json", "/repo/fleet/metadata/1.targets.json",
		"/repo/release/metadata/1.products/thermostat.json", "/repo/release/metadata/1.snapshot.json", "/repo/release/metadata/1.targets.json"}
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if len(p.steps) != len(pubContent(2, payloads).Metadata)+len(payloads)+len(want) {
		t.Errorf("%d steps, want one per published file and one per removal:\n%v", len(p.steps), p.steps)
	}

	// The order of the repositories decides the order of the timestamps,
	// and nothing else.
	rev := []string{"/repo/fleet", "/repo/release"}
	q, err := makePlan(pubContent(2, payloads), first.state, now, 0, rev)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, q.steps, rev)
}

func TestPlanGrace(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	grace := 24 * time.Hour
	old := "/repo/release/metadata/1.snapshot.json"
	p1, err := makePlan(pubContent(1, nil), State{}, now, grace, repos)
	if err != nil {
		t.Fatal(err)
	}
	hasRemove := func(p plan) bool {
		return slices.ContainsFunc(p.steps, func(s Step) bool { return s.Op == OpRemove && s.Path == old })
	}
	p2, err := makePlan(pubContent(2, nil), p1.state, now, grace, repos)
	if err != nil {
		t.Fatal(err)
	}
	if hasRemove(p2) || !p2.state.Files[old].Unpublished.Equal(now) {
		t.Fatalf("just unpublished: remove %v, state %+v; want kept and dated %v", hasRemove(p2), p2.state.Files[old], now)
	}
	// Later syncs keep the first date.
	p3, err := makePlan(pubContent(2, nil), p2.state, now.Add(grace-time.Second), grace, repos)
	if err != nil {
		t.Fatal(err)
	}
	if hasRemove(p3) || !p3.state.Files[old].Unpublished.Equal(now) {
		t.Fatalf("within grace: remove %v, state %+v", hasRemove(p3), p3.state.Files[old])
	}
	p4, err := makePlan(pubContent(2, nil), p3.state, now.Add(grace), grace, repos)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p4.state.Files[old]; !hasRemove(p4) || ok {
		t.Fatalf("grace over: remove %v, still in state %v", hasRemove(p4), ok)
	}
	// A file published again is no longer dated.
	c := pubContent(2, nil)
	c.Metadata[old] = pubContent(1, nil).Metadata[old]
	p5, err := makePlan(c, p3.state, now.Add(grace), grace, repos)
	if err != nil {
		t.Fatal(err)
	}
	if f := p5.state.Files[old]; hasRemove(p5) || !f.Unpublished.IsZero() {
		t.Fatalf("published again: remove %v, state %+v", hasRemove(p5), f)
	}
}

func TestPlanRejects(t *testing.T) {
	sha := strings.Repeat("c", 64)
	for name, change := range map[string]func(c *server.Content){
		"dot-dot":         func(c *server.Content) { c.Metadata["/repo/release/metadata/../../../etc/passwd"] = nil },
		"outside /repo/":  func(c *server.Content) { c.Metadata["/etc/passwd"] = nil },
		"empty element":   func(c *server.Content) { c.Metadata["/repo/release//metadata/2.root.json"] = nil },
		"dot file":        func(c *server.Content) { c.Metadata["/repo/release/metadata/.uptrust-tmp-1"] = nil },
		"backslash":       func(c *server.Content) { c.Metadata[`/repo/release/metadata/a\b.json`] = nil },
		"file and dir":    func(c *server.Content) { c.Metadata["/repo/release/metadata/2.products"] = nil },
		"not metadata":    func(c *server.Content) { c.Metadata["/repo/release/x.json"] = nil },
		"payload outside": func(c *server.Content) { c.Payloads["/repo/release/"+sha] = server.PayloadFile{SHA256: sha} },
		"no timestamp":    func(c *server.Content) { delete(c.Metadata, "/repo/fleet/metadata/timestamp.json") },
		"both kinds": func(c *server.Content) {
			c.Payloads["/repo/release/metadata/root.json"] = server.PayloadFile{SHA256: sha}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := pubContent(2, nil)
			change(c)
			if _, err := makePlan(c, State{}, time.Now(), 0, repos); err == nil || !strings.HasPrefix(err.Error(), "mirror: ") {
				t.Fatalf("makePlan: %v, want a mirror error", err)
			}
		})
	}
	if _, err := makePlan(nil, State{}, time.Now(), 0, repos); err == nil {
		t.Fatal("nil content accepted")
	}
}

func TestMetadataRank(t *testing.T) {
	for p, want := range map[string]int{
		"/repo/release/metadata/timestamp.json":              rankTimestamp,
		"/repo/release/metadata/root.json":                   rankUnversioned,
		"/repo/release/metadata/12.root.json":                rankRoot,
		"/repo/release/metadata/3.snapshot.json":             rankSnapshot,
		"/repo/release/metadata/3.targets.json":              rankTargets,
		"/repo/release/metadata/3.products/thermostat.json":  rankDelegated,
		"/repo/release/metadata/products/3.thermostat.json":  rankUnversioned,
		"/repo/release/metadata/.json":                       rankUnversioned,
		"/repo/release/metadata/3json":                       rankUnversioned,
		"/repo/release/metadata/3.":                          rankDelegated,
		"/repo/release/metadata/products/timestamp.json.old": rankUnversioned,
	} {
		got, err := metadataRank(p)
		if err != nil || got != want {
			t.Errorf("metadataRank(%s) = %d, %v; want %d", p, got, err, want)
		}
	}
	if _, err := metadataRank("/repo/release/targets/x"); err == nil {
		t.Error("a targets path has a metadata rank")
	}
	if !isVersioned("/repo/fleet/metadata/2.targets.json") || isVersioned("/repo/fleet/metadata/timestamp.json") || isVersioned("/repo/fleet/metadata/root.json") {
		t.Error("isVersioned is wrong")
	}
}
