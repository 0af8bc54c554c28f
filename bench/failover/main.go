// Command failover measures replica failover: how many seconds pass from
// the SIGKILL of the replica holding the re-signing lease to the first
// fleet timestamp, newer than any in the database at the kill, that the
// other replica serves.
//
// Each round: a new PostgreSQL database and project directory (the
// timestamp lifetime -tslife, short enough that re-signing is due as soon
// as a survivor takes the lease: the lease expires ResignLeaseTTL = 10 s
// after the dead holder's last renewal, so the last timestamp it signed is
// at least that old), two `uptrust serve` processes on them, wait until
// one holds the lease and has re-signed, wait a random part of the 3 s
// renewal tick (so the kill falls anywhere in the holder's cycle),
// SIGKILL the holder, then poll the survivor's
// /repo/fleet/metadata/timestamp.json every 20 ms.
//
// By design the figure is ResignLeaseTTL (10 s) minus the time since the
// holder's last renewal (0–3 s: it renews on every 3 s resign tick) plus
// the wait for the survivor's next tick (0–3 s): between 7 and 13 s, about
// 10 s on average, never more than TTL + tick = 13 s. Serving after the
// re-sign adds milliseconds (the re-signer reloads at once); the timestamp
// lifetime does not matter as long as it is at most 2 × TTL (re-signing is
// due at takeover).
//
// Usage (from the repository root):
//
//	go run ./bench/failover [-rounds 5] [-tslife 10s]
//
// Needs the PostgreSQL server binaries (apt-get install postgresql); it
// starts its own server as the tests do (internal/store/postgres/pgtest).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/uptrust/uptrust/internal/replicatest"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

func main() {
	rounds := flag.Int("rounds", 5, "kills to measure")
	tsLife := flag.Duration("tslife", 10*time.Second, "timestamp lifetime of the project (re-signing is due after half of it)")
	flag.Parse()
	if *rounds < 1 || *tsLife <= 0 {
		fmt.Fprintln(os.Stderr, "failover: -rounds and -tslife must be positive")
		os.Exit(2)
	}
	if err := run(*rounds, *tsLife); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func run(rounds int, tsLife time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "bench-failover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "uptrust")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/uptrust").CombinedOutput(); err != nil {
		return fmt.Errorf("building ./cmd/uptrust (run from the repository root): %v\n%s", err, out)
	}
	pgBin, err := pgtest.Binaries()
	if err != nil {
		return err
	}
	pg, err := pgtest.Start(ctx, pgBin)
	if err != nil {
		return err
	}
	defer pg.Stop()

	var served, resigned []float64
	for i := range rounds {
		s, r, err := round(ctx, pg, bin, filepath.Join(work, fmt.Sprintf("r%d", i)), fmt.Sprintf("r%d", i), tsLife)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		fmt.Printf("round %d: SIGKILL -> survivor's re-sign record %.2f s, -> newer timestamp served %.2f s\n", i+1, r, s)
		served, resigned = append(served, s), append(resigned, r)
	}
	fmt.Printf("rounds %d, timestamp lifetime %v: SIGKILL -> newer timestamp served by the other replica: median %.2f s, max %.2f s (re-sign record: median %.2f s, max %.2f s)\n",
		rounds, tsLife, median(served), slices.Max(served), median(resigned), slices.Max(resigned))
	return nil
}

// round runs one kill and returns the seconds from the SIGKILL to the
// survivor serving a newer timestamp and to its re-sign log record.
func round(ctx context.Context, pg *pgtest.Server, bin, dir, db string, tsLife time.Duration) (served, resigned float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := pg.CreateDatabase(ctx, db); err != nil {
		return 0, 0, err
	}
	dsn := pg.URL(db)
	if err := replicatest.NewProject(ctx, bin, dir, dsn, tsLife, nil); err != nil {
		return 0, 0, err
	}
	a, err := replicatest.Start(ctx, bin, dir, "a")
	if err != nil {
		return 0, 0, err
	}
	defer a.Kill()
	b, err := replicatest.Start(ctx, bin, dir, "b")
	if err != nil {
		return 0, 0, err
	}
	defer b.Kill()
	var holder, survivor *replicatest.Replica
	for holder == nil {
		h, err := replicatest.ResignLeaseHolder(ctx, dsn)
		if err != nil {
			return 0, 0, err
		}
		switch h {
		case a.LeaseHolder:
			holder, survivor = a, b
		case b.LeaseHolder:
			holder, survivor = b, a
		default:
			select {
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if _, err := holder.WaitResign(ctx, 0); err != nil {
		return 0, 0, err
	}
	if n := survivor.Resigns(); n != 0 {
		return 0, 0, fmt.Errorf("%s re-signed %d times while %s held the lease", survivor.Name, n, holder.Name)
	}
	time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Second))))
	killed := time.Now()
	if err := holder.Kill(); err != nil {
		return 0, 0, err
	}
	before, err := replicatest.LatestFleetTimestampVersion(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for {
		ts, err := replicatest.FleetTimestamp(ctx, c, survivor.Addr)
		if err != nil {
			return 0, 0, err
		}
		if ts.Version > before {
			served = time.Since(killed).Seconds()
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("%s serves v%d, never newer than v%d: %w", survivor.Name, ts.Version, before, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	at := survivor.ResignTimes()
	if len(at) == 0 {
		return 0, 0, fmt.Errorf("%s serves a newer timestamp but logged no re-sign", survivor.Name)
	}
	if err := survivor.Stop(); err != nil {
		return 0, 0, fmt.Errorf("stopping %s: %w", survivor.Name, err)
	}
	return served, at[0].Sub(killed).Seconds(), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
