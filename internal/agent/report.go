package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

// maxQueued bounds the report queue; the oldest reports go first.
const maxQueued = 64

// reportQueue keeps reports as files until the server accepted them.
// A report's file name is derived from its content, so enqueueing the same
// report twice (a step repeated after power loss) stores it once.
type reportQueue struct {
	dir string
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9.-]`)

func (q *reportQueue) add(r report.Report) error {
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return fmt.Errorf("agent: report queue: %w", err)
	}
	name := strings.Join([]string{r.Product, r.Version, string(r.Outcome), string(r.ErrorClass)}, "_")
	name = unsafeChars.ReplaceAllString(strings.ToLower(name), "-") + ".json"
	b, _ := json.Marshal(r)
	if err := atomicfile.WriteFile(filepath.Join(q.dir, name), b, 0o600); err != nil {
		return fmt.Errorf("agent: report queue: %w", err)
	}
	return q.trim()
}

// pending lists queued report files, oldest first.
func (q *reportQueue) pending() ([]string, error) {
	entries, err := os.ReadDir(q.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: report queue: %w", err)
	}
	type item struct {
		name string
		mod  int64
	}
	var items []item
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		items = append(items, item{e.Name(), info.ModTime().UnixNano()})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].mod < items[j].mod })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = filepath.Join(q.dir, it.name)
	}
	return out, nil
}

func (q *reportQueue) trim() error {
	files, err := q.pending()
	if err != nil {
		return err
	}
	for len(files) > maxQueued {
		os.Remove(files[0])
		files = files[1:]
	}
	return nil
}

// enqueue queues a report if reports are enabled; failures are logged, not
// fatal: a report is never worth aborting an install for.
func (a *Agent) enqueue(_ context.Context, product, version string, outcome report.Outcome, class report.Class) {
	if !a.cfg.ReportsEnabled() {
		return
	}
	if err := a.queue.add(report.Report{Product: product, Version: version, Outcome: outcome, ErrorClass: class}); err != nil {
		a.log.Warn("queueing report", "err", err)
	}
}

// FlushReports sends the queued reports; a report is removed once the
// server accepted it (2xx) or refused it as malformed (4xx other than 429).
//
// Timing: a report is never sent right after the requests of the check
// that queued it, where a network observer or a CDN log would link its
// outcome to the address that fetched. Run sends queued reports at a
// random moment between two checks (reportDelay); a one-shot check sends
// what earlier checks queued before its own requests. Each report goes on
// its own connection, opened for it and closed after it, never one a
// check used.
func (a *Agent) FlushReports(ctx context.Context) {
	files, err := a.queue.pending()
	if err != nil {
		a.log.Warn("report queue", "err", err)
		return
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		err = a.reports.PostJSON(ctx, a.cfg.Server+deviceapi.ReportsPath, b)
		if err != nil && !isPermanentReject(err) {
			a.log.Info("report not delivered; will retry", "err", err)
			return
		}
		if err != nil {
			a.log.Warn("report refused by the server; dropped", "err", err)
		}
		if a.cfg.Managed() {
			a.sendEvent(ctx, b)
		}
		os.Remove(f)
	}
}

// deviceEventsPath is where a managed device sends its update events.
const deviceEventsPath = "/api/device/v1/events"

// sendEvent sends the outcome of a queued report as the managed device's
// own update event, signed with its key, so the server's per-device
// history has it. It is best effort (postEvent): a failure is logged and
// the event is not retried (the anonymous report was delivered already).
func (a *Agent) sendEvent(ctx context.Context, reportJSON []byte) {
	var r report.Report
	if err := json.Unmarshal(reportJSON, &r); err != nil || r.ErrorClass == report.ClassNotApplicable {
		// A release not for this device is no failure: the check sent it
		// as skipped (incompatible_hardware) already.
		return
	}
	e := deviceEvent{Version: r.Version, ErrorClass: string(r.ErrorClass)}
	switch r.Outcome {
	case report.OutcomeInstalled:
		e.Kind = "succeeded"
	case report.OutcomeRolledBack:
		e.Kind = "rolled_back"
	default:
		e.Kind = "failed"
		e.Message = string(r.Outcome)
		if e.ErrorClass == "" {
			e.ErrorClass = "other"
		}
	}
	a.postEvent(ctx, e)
}

// isPermanentReject is a 4xx answer other than 429: resending the same
// report cannot succeed.
func isPermanentReject(err error) bool {
	var se *fetch.StatusError
	return errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 && se.StatusCode != 429
}

// reportDelay draws when, within wait (the time until the next check),
// Run sends the queued reports: uniformly between a minute after the check
// and a minute before the next one (or anywhere in wait when it is shorter
// than three minutes).
func reportDelay(wait time.Duration) time.Duration {
	lo, hi := time.Minute, wait-time.Minute
	if hi <= lo {
		lo, hi = 0, wait
	}
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rand.Int64N(int64(hi-lo)))
}
