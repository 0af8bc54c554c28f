package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

// TestReportsLeaveLaterOnTheirOwnConnection: the report of an install does
// not leave right after the check's requests, where a log would link the
// outcome to the address that fetched; it leaves later (here: when the
// agent flushes its queue, as `run` does at a random moment before the next
// check), on a connection no check request used.
func TestReportsLeaveLaterOnTheirOwnConnection(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	type request struct{ path, conn string }
	var (
		mu   sync.Mutex
		seen []request
	)
	w.proxy.on(func(string) bool { return true }, func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, request{r.URL.Path, r.RemoteAddr})
		mu.Unlock()
		w.proxy.rp.ServeHTTP(rw, r)
	})
	ctx := context.Background()
	for {
		a, err := d.Agent()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Check(ctx); !errors.Is(err, agent.ErrRebooting) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if _, err := d.Boot(); err != nil {
			t.Fatal(err)
		}
	}
	w.assertRunning(d, "1.1.0")
	if n := w.reportCount(report.OutcomeInstalled, ""); n != 0 {
		t.Fatalf("%d installed reports reached the server with the check's requests", n)
	}
	a, err := d.Agent()
	if err != nil {
		t.Fatal(err)
	}
	a.FlushReports(ctx)
	if n := w.reportCount(report.OutcomeInstalled, ""); n != 1 {
		t.Fatalf("%d installed reports after the flush, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	checkConns := map[string]bool{}
	var reportConns []string
	for _, r := range seen {
		if strings.HasSuffix(r.path, deviceapi.ReportsPath) {
			reportConns = append(reportConns, r.conn)
		} else {
			checkConns[r.conn] = true
		}
	}
	if len(reportConns) != 1 || checkConns[reportConns[0]] {
		t.Fatalf("report connections %v, check connections %v: want one report on a connection of its own", reportConns, checkConns)
	}
}
