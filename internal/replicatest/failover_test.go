package replicatest_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/replicatest"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
	"github.com/uptrust/uptrust/internal/testbin"
)

var binDir string

// pgRun runs the tests under pgtest.Main, which stops the PostgreSQL
// server when they end; testbin.Main builds the binaries around it.
type pgRun struct{ m *testing.M }

func (r pgRun) Run() int { return pgtest.Main(r.m) }

func TestMain(m *testing.M) { testbin.Main(pgRun{m}, "", &binDir) }

// testTimeout bounds each test; it is an upper bound for a hung test, not
// a measurement (bench/failover measures).
const testTimeout = 3 * time.Minute

// tsLife is the timestamp lifetime of the test projects: re-signing is
// due 5 s after each signature, so the lease holder re-signs every few
// ticks and a survivor finds it due as soon as it takes the lease over
// (at least ResignLeaseTTL = 10 s after the dead holder's last renewal).
const tsLife = 10 * time.Second

// replicaProject makes a project on a new PostgreSQL database and returns
// its directory and database URL.
func replicaProject(t *testing.T, ctx context.Context) (dir, dsn string) {
	t.Helper()
	dsn = pgtest.URL(t)
	dir = filepath.Join(t.TempDir(), "proj")
	if err := replicatest.NewProject(ctx, filepath.Join(binDir, "uptrust"), dir, dsn, tsLife, nil); err != nil {
		t.Fatal(err)
	}
	return dir, dsn
}

// startReplica starts a replica that the test's cleanup kills if still
// running (with its log on failure).
func startReplica(t *testing.T, ctx context.Context, dir, name string) *replicatest.Replica {
	t.Helper()
	r, err := replicatest.Start(ctx, filepath.Join(binDir, "uptrust"), dir, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", r.Name, r.Log())
		}
	})
	return r
}

// holderOf waits until the resign lease names one of the replicas and
// that replica has re-signed, and returns it and the other one.
func holderOf(t *testing.T, ctx context.Context, dsn string, a, b *replicatest.Replica) (holder, other *replicatest.Replica) {
	t.Helper()
	for {
		h, err := replicatest.ResignLeaseHolder(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		switch h {
		case a.LeaseHolder:
			holder, other = a, b
		case b.LeaseHolder:
			holder, other = b, a
		}
		if holder != nil {
			if _, err := holder.WaitResign(ctx, 0); err != nil {
				t.Fatal(err)
			}
			return holder, other
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no replica took the resign lease (holder %q; replicas %q, %q): %v", h, a.LeaseHolder, b.LeaseHolder, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestReplicaFailover: two `uptrust serve` processes on one PostgreSQL
// database and one blobs directory. Exactly one holds the resign lease and
// re-signs (the other logs no re-sign while it lives); after a SIGKILL of
// the holder, the other takes the lease, re-signs, and serves a fleet
// timestamp with a higher version and a later expiry than the dead
// holder served last.
func TestReplicaFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	dir, dsn := replicaProject(t, ctx)
	a := startReplica(t, ctx, dir, "a")
	b := startReplica(t, ctx, dir, "b")
	if a.LeaseHolder == "" || a.LeaseHolder == b.LeaseHolder {
		t.Fatalf("lease holder ids %q and %q: want two distinct ones in the serving records", a.LeaseHolder, b.LeaseHolder)
	}
	holder, survivor := holderOf(t, ctx, dsn, a, b)
	// A second re-sign by the holder: the lease is renewed, not taken
	// once, and the other replica still has not re-signed.
	n, err := holder.WaitResign(ctx, holder.Resigns())
	if err != nil {
		t.Fatal(err)
	}
	if got := survivor.Resigns(); got != 0 {
		t.Fatalf("%s re-signed %d times while %s held the lease (%d re-signs): two re-signers", survivor.Name, got, holder.Name, n)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	last, err := replicatest.FleetTimestamp(ctx, c, holder.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := survivor.WaitResign(ctx, 0); err != nil {
		t.Fatalf("%s never re-signed after %s was killed: %v", survivor.Name, holder.Name, err)
	}
	if h, err := replicatest.ResignLeaseHolder(ctx, dsn); err != nil || h != survivor.LeaseHolder {
		t.Fatalf("after the takeover the lease is %q (%v), want %s's %q", h, err, survivor.Name, survivor.LeaseHolder)
	}
	// The survivor reloads after its re-sign; wait until it serves it.
	for {
		ts, err := replicatest.FleetTimestamp(ctx, c, survivor.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if ts.After(last) {
			t.Logf("%s served timestamp v%d expiring %s; the killed %s served v%d expiring %s",
				survivor.Name, ts.Version, ts.Expires, holder.Name, last.Version, last.Expires)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still serves v%d expiring %s, not newer than the killed holder's v%d expiring %s",
				survivor.Name, ts.Version, ts.Expires, last.Version, last.Expires)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := survivor.Stop(); err != nil {
		t.Errorf("%s did not stop cleanly: %v", survivor.Name, err)
	}
	// A clean stop gives the lease up.
	if h, err := replicatest.ResignLeaseHolder(ctx, dsn); err != nil || h != "" {
		t.Errorf("after %s stopped the lease is %q (%v), want none", survivor.Name, h, err)
	}
}
