package replicatest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/replicatest"
	"github.com/uptrust/uptrust/internal/testbin"
)

// devices is the simulated fleet behind one replica: each device checks
// the fleet timestamp (conditional GET, 200 or 304) and POSTs an
// installed report (202), until the load ends or its first failure (a
// device behind a load balancer would then go to another replica; here it
// stops, so that at most one report per device is in flight at a kill).
type devices struct {
	replica  string
	checks   atomic.Int64 // answered 200 or 304
	acked    atomic.Int64 // reports answered 2xx
	unsure   atomic.Int64 // reports sent without a 2xx answer: may or may not be counted
	mu       sync.Mutex
	failures []string
}

func (d *devices) fail(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures = append(d.failures, fmt.Sprintf(format, args...))
}

func (d *devices) failed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.failures...)
}

// run runs n devices against addr until ctx ends; wg counts them.
func (d *devices) run(ctx context.Context, wg *sync.WaitGroup, c *http.Client, addr string, n int) {
	ts := "http://" + addr + deviceapi.FleetBase + "/metadata/timestamp.json"
	rep := "http://" + addr + deviceapi.ReportsPath
	body := []byte(`{"product":"` + replicatest.Product + `","version":"` + replicatest.Version + `","outcome":"installed"}`)
	for range n {
		wg.Go(func() {
			etag := ""
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts, nil)
				if etag != "" {
					req.Header.Set("If-None-Match", etag)
				}
				resp, err := c.Do(req)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					d.fail("check: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
					d.fail("check: %s", resp.Status)
					return
				}
				if e := resp.Header.Get("ETag"); e != "" {
					etag = e
				}
				d.checks.Add(1)
				// A report is sent whole even when the load ends meanwhile,
				// so that its answer is known.
				req, _ = http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, rep, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err = c.Do(req)
				if err != nil {
					d.unsure.Add(1)
					d.fail("report: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					d.unsure.Add(1)
					d.fail("report: %s", resp.Status)
					return
				}
				d.acked.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(40 * time.Millisecond):
				}
			}
		})
	}
}

// change is a rollout change the management API answered 200.
type change struct {
	admin, requestID string
	percent          int
}

// operator changes the rollout's percent through the management APIs of
// the replicas it knows, in turn: GET for the ETag, PATCH with If-Match.
// A replica that does not answer is dropped.
type operator struct {
	c     *http.Client
	token string
	mu    sync.Mutex
	admin []string // replicas' admin addresses in use
	acked []change
	// unsure counts PATCHes sent without an answer (may or may not be
	// applied).
	unsure int
	next   int
	errs   []error // what step returned, while the load ran
}

func (o *operator) add(admin string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.admin = append(o.admin, admin)
}

func (o *operator) ackedChanges() []change {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]change(nil), o.acked...)
}

// step makes one change through the next replica; an error means the
// replica did not answer or answered other than 200.
func (o *operator) step(ctx context.Context, percent int) error {
	o.mu.Lock()
	if len(o.admin) == 0 {
		o.mu.Unlock()
		return errors.New("no replica left")
	}
	o.next %= len(o.admin)
	admin := o.admin[o.next]
	o.next++
	o.mu.Unlock()
	u := "http://" + admin + "/api/v1/rollouts/" + replicatest.Product
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+o.token)
	resp, err := o.c.Do(req)
	if err != nil {
		o.drop(admin)
		return fmt.Errorf("GET %s: %w", u, err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" {
		return fmt.Errorf("GET %s: %s, ETag %q", u, resp.Status, etag)
	}
	req, _ = http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPatch, u, strings.NewReader(fmt.Sprintf(`{"percent":%d}`, percent)))
	req.Header.Set("Authorization", "Bearer "+o.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", etag)
	resp, err = o.c.Do(req)
	if err != nil {
		o.mu.Lock()
		o.unsure++
		o.mu.Unlock()
		o.drop(admin)
		return fmt.Errorf("PATCH %s: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		o.mu.Lock()
		o.unsure++
		o.mu.Unlock()
		return fmt.Errorf("PATCH %s: %s", u, resp.Status)
	}
	o.mu.Lock()
	o.acked = append(o.acked, change{admin: admin, requestID: resp.Header.Get("X-Request-Id"), percent: percent})
	o.mu.Unlock()
	return nil
}

func (o *operator) drop(admin string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, a := range o.admin {
		if a == admin {
			o.admin = append(o.admin[:i], o.admin[i+1:]...)
			return
		}
	}
}

// waitFor polls cond every 50 ms until it holds; it fails t when ctx ends
// first, naming what.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool, state func() string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; %s", what, ctx.Err(), state())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestKillUnderDeviceLoad: two replicas on one PostgreSQL database and one
// blobs directory serve simulated devices (update checks and reports)
// while an operator changes the rollout through both management APIs in
// turn. The re-signing lease holder is SIGKILLed; the load goes on; a
// replica is restarted and takes its share. Then: every report answered
// 2xx is counted in the database (and at most the unanswered ones more),
// every rollout change answered 200 is in the audit log as ok with its
// request id, the rollout in the store is the last change, `uptrust audit
// verify` finds the chain intact, the survivor and the restarted replica
// answered every device request, the survivor took the lease over, and
// all replicas end up serving the same fleet timestamp as the database.
func TestKillUnderDeviceLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	dir, dsn := replicaProject(t, ctx)
	a := startReplica(t, ctx, dir, "a")
	b := startReplica(t, ctx, dir, "b")
	victim, survivor := holderOf(t, ctx, dsn, a, b)
	// The admin token of init may not change rollouts: an operator's may.
	res := testbin.Run(t, exec.CommandContext(ctx, filepath.Join(binDir, "uptrust"), "token", "create",
		"--role", "operator", "--name", "ops", "--expires", "1d", "--dir", dir))
	if res.Code != 0 || strings.TrimSpace(res.Stdout) == "" {
		t.Fatalf("token create: %v", res)
	}
	c := &http.Client{Timeout: 20 * time.Second}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	fleet := map[string]*devices{}
	for _, r := range []*replicatest.Replica{a, b} {
		fleet[r.Name] = &devices{replica: r.Name}
		fleet[r.Name].run(loadCtx, &wg, c, r.Addr, 3)
	}
	op := &operator{c: c, token: strings.TrimSpace(res.Stdout)}
	op.add(a.AdminAddr)
	op.add(b.AdminAddr)
	var opWG sync.WaitGroup
	opWG.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			if err := op.step(loadCtx, 10+i%91); err != nil && loadCtx.Err() == nil {
				op.mu.Lock()
				op.errs = append(op.errs, err)
				op.mu.Unlock()
			}
			select {
			case <-loadCtx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})

	sd := fleet[survivor.Name]
	state := func() string {
		var b strings.Builder
		for _, d := range fleet {
			f := d.failed()
			fmt.Fprintf(&b, "devices of %s: %d checks, %d reports, %d failures %.3q; ", d.replica, d.checks.Load(), d.acked.Load(), len(f), f)
		}
		op.mu.Lock()
		fmt.Fprintf(&b, "operator: %d changes, %d errors %.3v", len(op.acked), len(op.errs), op.errs)
		op.mu.Unlock()
		return b.String()
	}
	waitFor(t, ctx, "load on both replicas before the kill", func() bool {
		return fleet[a.Name].acked.Load() >= 100 && fleet[b.Name].acked.Load() >= 100 && len(op.ackedChanges()) >= 4
	}, state)
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	reportsAtKill, changesAtKill := sd.acked.Load(), len(op.ackedChanges())
	t.Logf("killed %s (lease holder) after %d reports to it, %d to %s, %d rollout changes",
		victim.Name, fleet[victim.Name].acked.Load(), reportsAtKill, survivor.Name, changesAtKill)
	if _, err := survivor.WaitResign(ctx, 0); err != nil {
		t.Fatalf("%s did not take re-signing over under load: %v", survivor.Name, err)
	}
	waitFor(t, ctx, "load on the survivor after the kill", func() bool {
		return sd.acked.Load() >= reportsAtKill+100 && len(op.ackedChanges()) >= changesAtKill+4
	}, state)

	// A restarted replica joins: devices and the operator use it too.
	r := startReplica(t, ctx, dir, "restarted")
	rd := &devices{replica: r.Name}
	fleet[r.Name] = rd
	rd.run(loadCtx, &wg, c, r.Addr, 3)
	op.add(r.AdminAddr)
	waitFor(t, ctx, "load on the restarted replica", func() bool {
		n := 0
		for _, ch := range op.ackedChanges() {
			if ch.admin == r.AdminAddr {
				n++
			}
		}
		return rd.acked.Load() >= 100 && n >= 2
	}, state)
	stopLoad()
	wg.Wait()
	opWG.Wait()
	// A last change, answered, so that the store's rollout is known.
	const final = 42
	if err := op.step(ctx, final); err != nil {
		t.Fatalf("last rollout change: %v", err)
	}

	for _, d := range []*devices{sd, rd} {
		if f := d.failed(); len(f) != 0 {
			t.Errorf("devices of %s (alive throughout) saw %d failures, first: %s", d.replica, len(f), f[0])
		}
	}
	for _, err := range op.errs {
		if !strings.Contains(err.Error(), victim.AdminAddr) {
			t.Errorf("operator error against a live replica: %v", err)
		}
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var acked, unsure int64
	for _, d := range fleet {
		acked += d.acked.Load()
		unsure += d.unsure.Load()
	}
	var counted int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(count), 0) FROM report_counts`).Scan(&counted); err != nil {
		t.Fatal(err)
	}
	t.Logf("reports: %d answered 2xx, %d unanswered, %d counted in the database", acked, unsure, counted)
	if counted < acked || counted > acked+unsure {
		t.Errorf("report counts: %d in the database, want %d acknowledged (+ at most %d unanswered)", counted, acked, unsure)
	}

	changes := op.ackedChanges()
	ok := map[string]string{}
	rows, err := conn.Query(ctx, `SELECT request_id, outcome FROM audit WHERE action = 'rollout.change'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, outcome string
		if err := rows.Scan(&id, &outcome); err != nil {
			t.Fatal(err)
		}
		ok[id] = outcome
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rollout changes: %d answered 200, %d unanswered, %d rollout.change audit entries", len(changes), op.unsure, len(ok))
	for _, ch := range changes {
		if ch.requestID == "" {
			t.Errorf("change to %d%% through %s answered without X-Request-Id", ch.percent, ch.admin)
		} else if ok[ch.requestID] != "ok" {
			t.Errorf("change to %d%% through %s (request %s) answered 200 but audited as %q", ch.percent, ch.admin, ch.requestID, ok[ch.requestID])
		}
	}
	var percent int
	if err := conn.QueryRow(ctx, `SELECT percent FROM rollouts WHERE product = $1`, replicatest.Product).Scan(&percent); err != nil {
		t.Fatal(err)
	}
	if percent != final {
		t.Errorf("rollout in the store at %d%%, want the last change's %d%%", percent, final)
	}
	res = testbin.Run(t, exec.CommandContext(ctx, filepath.Join(binDir, "uptrust"), "audit", "verify", "--dir", dir))
	if res.Code != 0 || !strings.Contains(res.Stdout, "intact") {
		t.Errorf("audit verify after the kill: %v", res)
	}

	if h, err := replicatest.ResignLeaseHolder(ctx, dsn); err != nil || (h != survivor.LeaseHolder && h != r.LeaseHolder) {
		t.Errorf("resign lease %q (%v), want %s's %q (or the restarted replica's)", h, err, survivor.Name, survivor.LeaseHolder)
	}
	// Both live replicas serve the database's latest fleet timestamp
	// (generation poll), the last change included.
	waitFor(t, ctx, "both live replicas serving the latest fleet timestamp", func() bool {
		v, err := replicatest.LatestFleetTimestampVersion(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []*replicatest.Replica{survivor, r} {
			ts, err := replicatest.FleetTimestamp(ctx, c, x.Addr)
			if err != nil {
				t.Fatal(err)
			}
			if ts.Version != v {
				return false
			}
		}
		return true
	}, func() string { return "" })
}
