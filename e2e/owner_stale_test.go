package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/report"
)

// TestOwnerStaleMetadata: a device that gets no fresh signed metadata for
// longer than stale_after (14 days by default) warns that it may be cut
// off from updates and tells the owner once; fresh metadata ends it.
func TestOwnerStaleMetadata(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	events := notifyHook(t, d)
	fake := clock.NewFake(time.Now())
	d.Clock = fake
	w.cycle(d)
	if st := status(t, d); st.MetadataStale || st.LastRefresh == nil || len(st.Warnings) != 0 {
		t.Fatalf("status after a good check: %+v", st)
	}

	w.proxy.on(contains("/repo/"), func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusServiceUnavailable) })
	fake.Advance(13 * 24 * time.Hour)
	w.cycle(d)
	if st := status(t, d); st.MetadataStale || len(only(events(), agent.EventMetadataStale)) != 0 {
		t.Fatalf("stale after 13 days: %+v", st)
	}
	fake.Advance(2 * 24 * time.Hour)
	for range 2 {
		if chk := w.cycle(d); chk.Action != "error" || chk.ErrorClass != report.ClassNetwork {
			t.Fatalf("check with the server unreachable: %+v", chk)
		}
	}
	st := w.assertRunning(d, "1.0.0")
	if !st.MetadataStale || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "(15 days): the device may be cut off from updates") {
		t.Fatalf("status after 15 days without fresh metadata: %+v", st)
	}
	e := only(events(), agent.EventMetadataStale)
	if len(e) != 1 || e[0].LastRefresh == nil || !e[0].LastRefresh.Equal(*st.LastRefresh) || !strings.Contains(e[0].Message, "cut off from updates") {
		t.Fatalf("metadata-stale events: %+v", events())
	}

	// The server is back (and the clock agrees with its signatures again).
	w.proxy.clear()
	fake.Set(time.Now())
	w.cycle(d)
	if st := status(t, d); st.MetadataStale || len(st.Warnings) != 0 {
		t.Fatalf("status after fresh metadata: %+v", st)
	}
}
