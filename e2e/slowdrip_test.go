package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/report"
)

// dripHandler answers with an endless body, one byte every interval, each
// in time to beat the stall timeout, until the client goes away.
func dripHandler(interval time.Duration) func(http.ResponseWriter, *http.Request) {
	return func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(http.StatusOK)
		for {
			if _, err := rw.Write([]byte(" ")); err != nil {
				return
			}
			rw.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(interval):
			}
		}
	}
}

// TestSlowDripMetadataEndsTheCheck: a server that sends timestamp.json one
// byte at a time, each in time to beat the stall timeout, no longer holds
// the check for hours: the metadata deadline ends it as a network failure.
func TestSlowDripMetadataEndsTheCheck(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	d.HTTP.MetadataTimeout = time.Second
	w.proxy.on(contains("timestamp.json"), dripHandler(100*time.Millisecond))
	chk := w.cycle(d)
	if chk.Action != "error" || chk.ErrorClass != report.ClassNetwork || !strings.Contains(chk.Reason, "took longer than 1s") {
		t.Fatalf("check against a dripping server: %+v", chk)
	}
}

// TestSlowDripPayloadIsCut: a payload that trickles in is cut by the
// minimum transfer rate, its progress kept, and the next check, against an
// honest server, finishes it.
func TestSlowDripPayloadIsCut(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publishBig("1.1.0", 2, bigSize)
	d := w.device("d", 0)
	d.HTTP.MinRate, d.HTTP.MinRateWindow = 64<<10, 500*time.Millisecond
	w.proxy.on(isPayload("1.1.0"), dripHandler(100*time.Millisecond))
	chk := w.cycle(d)
	if chk.Action != "error" || chk.ErrorClass != report.ClassNetwork || !strings.Contains(chk.Reason, "too slow") {
		t.Fatalf("check against a dripping server: %+v", chk)
	}
	w.proxy.clear()
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}

// TestStaleNoticeBeforeTheCheckEnds: the owner hears that the metadata is
// stale at the start of a check, so even a check that never ends (here:
// stopped while the server holds it) tells them.
func TestStaleNoticeBeforeTheCheckEnds(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	events := notifyHook(t, d)
	fake := clock.NewFake(time.Now())
	d.Clock = fake
	w.cycle(d)
	fake.Advance(15 * 24 * time.Hour)
	w.proxy.on(contains("/repo/"), dripHandler(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d.Cycle(ctx)
	if e := only(events(), agent.EventMetadataStale); len(e) != 1 {
		t.Fatalf("metadata-stale events after a check that did not end: %+v", events())
	}
}
