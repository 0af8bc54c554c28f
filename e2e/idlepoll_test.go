package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/release"
)

// recorder lists the repository requests the proxy forwards, in order.
type recorder struct {
	mu    sync.Mutex
	paths []string
}

func (p *proxy) record() *recorder {
	rec := &recorder{}
	p.on(func(path string) bool { return strings.HasPrefix(path, "/repo/") }, func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.paths = append(rec.paths, r.URL.Path)
		rec.mu.Unlock()
		p.rp.ServeHTTP(w, r)
	})
	return rec
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.paths
	r.paths = nil
	return out
}

// An idle device whose repositories did not change polls the two
// timestamps and nothing else: the delegated product role and the support
// declaration come from its trusted local copies (issue 12, item 9). The
// probe for the next root version (a 404 here) stays: the TUF client
// workflow (spec 5.3.3) requires it on every check, it is how a device
// learns of a key rotation or a revoked key.
func TestIdlePollIsTheTimestampsAlone(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("idle", 0)
	rec := w.proxy.record()
	if chk := w.cycle(d); chk.Action != "none" {
		t.Fatalf("first check: %+v", chk)
	}
	t.Logf("first check: %v", rec.take())
	w.cycle(d)
	got := rec.take()
	want := []string{
		"/repo/release/metadata/2.root.json", "/repo/release/metadata/timestamp.json",
		"/repo/fleet/metadata/2.root.json", "/repo/fleet/metadata/timestamp.json",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("an idle poll requested %q, want %q", got, want)
	}
	w.assertRunning(d, "1.0.0")
}

// A changed support declaration (a new product role, snapshot and
// timestamp) is still fetched after idle polls served from local copies,
// and so is a new release in the product role.
func TestIdlePollStillFetchesChanges(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("idle", 0)
	rec := w.proxy.record()
	w.cycle(d)
	w.cycle(d)
	rec.take()

	until := time.Now().AddDate(5, 0, 0).Format(time.DateOnly)
	if _, err := w.p.ExtendSupport(context.Background(), product, until); err != nil {
		t.Fatal(err)
	}
	w.reload()
	w.cycle(d)
	got := rec.take()
	for _, want := range []func(string) bool{contains("/repo/release/metadata/"), contains(".products/" + product + ".json"), suffix(".support.json")} {
		if !slices.ContainsFunc(got, want) {
			t.Fatalf("after a new support declaration the check requested only %q", got)
		}
	}
	if st := status(t, d); st.SupportUntil != until {
		t.Fatalf("device has support until %q, want %q", st.SupportUntil, until)
	}

	w.publish("1.1.0", 1, release.KindFeature)
	w.rollout("1.1.0", 100)
	w.cycle(d)
	if got := rec.take(); !slices.ContainsFunc(got, contains(".products/"+product+".json")) {
		t.Fatalf("after a new release the check did not fetch the product role: %q", got)
	}
	w.assertRunning(d, "1.1.0")
}
