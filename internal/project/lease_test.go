package project_test

import (
	"os"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestResignLease: two servers' project handles on one database (an
// uptrust.db file, then a real PostgreSQL). Only the holder of the resign
// lease re-signs, even when metadata is due; when the holder stops
// renewing (it died), the other takes over exactly once the lease has
// expired, ResignLeaseTTL after the last renewal.
func TestResignLease(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := t.Context()
			clk := clock.NewFake(t0)
			o := project.InitOptions{Dev: true, Options: project.Options{Clock: clk}}
			if db == "postgres" {
				o.Database = pgtest.URL(t)
			}
			a, err := project.Init(ctx, t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			b, err := project.Open(ctx, a.Dir, project.Options{Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			if a.LeaseHolder() == b.LeaseHolder() || a.LeaseHolder() == "" {
				t.Fatalf("lease holders %q and %q, want two different ids", a.LeaseHolder(), b.LeaseHolder())
			}
			versions := func() [2]int64 {
				return [2]int64{latest(t, a, deviceapi.RepoRelease, repo.RoleTimestamp).Version,
					latest(t, a, deviceapi.RepoFleet, repo.RoleTimestamp).Version}
			}
			resign := func(p *project.Project, who string, want bool) {
				t.Helper()
				before := versions()
				changed, err := p.ResignDue(ctx)
				if err != nil {
					t.Fatalf("%s: ResignDue at t0+%v: %v", who, clk.Now().Sub(t0), err)
				}
				after := versions()
				if changed != want || (after != before) != want {
					t.Fatalf("%s: ResignDue at t0+%v = %v, timestamps v%v -> v%v; want re-signed %v",
						who, clk.Now().Sub(t0), changed, before, after, want)
				}
			}
			half := a.Lifetimes().Timestamp / 2

			// a's tick just before the timestamps fall due: nothing to
			// re-sign, but a takes the lease.
			clk.Advance(half - 5*time.Second)
			resign(a, "a", false)
			// Due now, but the lease is a's: b leaves them alone; a
			// re-signs on its next tick.
			clk.Advance(6 * time.Second)
			resign(b, "b", false)
			resign(a, "a", true)

			// a renews on a tick, then dies. b keeps ticking: refused
			// until the lease expires, then it takes over and re-signs.
			clk.Advance(half - 5*time.Second)
			resign(a, "a", false)
			lastRenewal := clk.Now()
			clk.Advance(6 * time.Second)
			resign(b, "b", false)
			clk.Advance(lastRenewal.Add(project.ResignLeaseTTL).Sub(clk.Now()) - time.Millisecond)
			resign(b, "b", false)
			clk.Advance(time.Millisecond)
			resign(b, "b", true)
			// b holds and renews it now; a back from the dead does not
			// re-sign.
			clk.Advance(half - 5*time.Second)
			resign(b, "b", false)
			clk.Advance(6 * time.Second)
			resign(a, "a", false)
			resign(b, "b", true)

			// A released lease is free at once.
			if err := b.ReleaseResignLease(ctx); err != nil {
				t.Fatal(err)
			}
			clk.Advance(half + time.Second)
			resign(a, "a", true)
		})
	}
}
