package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/server"
)

// TestReportFloodFromOneAddress: while one client (127.0.0.2) floods the
// report endpoint of a server at its default limits, half of it about
// invented products and versions, real devices update and their outcome
// reports are counted, and nothing invented reaches the database.
func TestReportFloodFromOneAddress(t *testing.T) {
	w := offered(t, worldOptions{defaultReportLimits: true})
	ctx, stop := context.WithCancel(context.Background())
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	flood := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 8}}
	var sent, accepted atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				body := `{"product":"thermostat","version":"1.1.0","outcome":"rolled_back","error_class":"health-check"}`
				if n%2 == 0 {
					body = fmt.Sprintf(`{"product":"junk%d-%d","version":"%d","outcome":"failed"}`, i, n, n)
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.direct+deviceapi.ReportsPath, bytes.NewReader([]byte(body)))
				resp, err := flood.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				}
			}
		})
	}
	defer func() { stop(); wg.Wait() }()
	// Let the flood spend more than the server's whole burst first.
	for deadline := time.Now().Add(30 * time.Second); sent.Load() < 4*server.DefaultReportBurst; {
		if time.Now().After(deadline) {
			t.Fatalf("the flood sent only %d reports in 30 s", sent.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"flood-a", "flood-b", "flood-c"} {
		d := w.device(name, 0)
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
	}
	stop()
	wg.Wait()

	counts, err := w.p.Store.ReportCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	installed := int64(0)
	for _, c := range counts {
		if c.Product != product || (c.Version != "1.1.0" && c.Version != "1.0.0") {
			t.Errorf("an invented report was stored: %+v", c)
		}
		if c.Outcome == "installed" && c.Version == "1.1.0" {
			installed += c.Count
		}
	}
	if installed != 3 {
		t.Errorf("%d installed reports counted, want the 3 devices' (flood: %d sent, %d accepted; counters %+v)",
			installed, sent.Load(), accepted.Load(), counts)
	}
	if max := int64(server.DefaultReportClientBurst) + 60*server.DefaultReportClientRate; accepted.Load() > max {
		t.Errorf("the flood got %d reports in, more than one address's share", accepted.Load())
	}
}
