// Command api measures the management API on SQLite and on PostgreSQL in
// one run: requests per second and latency percentiles of rollout list,
// release list and audit log queries, with a project of -releases releases
// (over -products products, one rollout each) and an audit log of -audit
// entries, the same on each store. Clients run concurrently over
// keep-alive connections on loopback against the real handler,
// authenticated with a real token the project created.
//
// PostgreSQL is the server at -database when given; otherwise the command
// starts a throwaway one as the tests do (package pgtest: initdb in a
// temporary directory, a unix socket there, run as "nobody" when root,
// fsync off) and stops it at the end. -stores sqlite or -stores postgres
// measures one store only.
//
//	go run ./bench/api -duration 10s -clients 4
//	go run ./bench/api -stores postgres -database 'postgres://uptrust@/bench?host=/tmp/pg&sslmode=disable'
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "measuring time per query")
	clients := flag.Int("clients", 4, "concurrent clients")
	products := flag.Int("products", 10, "products")
	releases := flag.Int("releases", 1000, "releases in all")
	audit := flag.Int("audit", 10000, "audit entries in all (at least what publishing writes)")
	stores := flag.String("stores", "sqlite,postgres", "stores to measure, in order: sqlite, postgres or both")
	database := flag.String("database", "", "postgres:// `URL` of an empty database to use for postgres (default: start a throwaway server)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config{duration: *duration, clients: *clients, products: *products, releases: *releases, audits: *audit}
	fmt.Printf("%d clients, %s per query; %d products, %d releases, %d audit entries\n", cfg.clients, cfg.duration, cfg.products, cfg.releases, cfg.audits)
	fmt.Printf("%-9s %-48s %9s %9s %9s\n", "STORE", "QUERY", "REQ/S", "P50", "P99")
	for _, st := range strings.Split(*stores, ",") {
		var err error
		switch st {
		case "sqlite":
			err = run(ctx, cfg, st, "")
		case "postgres":
			err = runPostgres(ctx, cfg, *database)
		default:
			err = fmt.Errorf("-stores: unknown store %q (want sqlite, postgres)", st)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "api bench:", st+":", err)
			os.Exit(1)
		}
	}
}

type config struct {
	duration                    time.Duration
	clients, products, releases int
	audits                      int
}

// runPostgres measures on the database at url, or on a throwaway server.
func runPostgres(ctx context.Context, cfg config, url string) error {
	if url != "" {
		return run(ctx, cfg, "postgres", url)
	}
	bin, err := pgtest.Binaries()
	if err != nil {
		return err
	}
	srv, err := pgtest.Start(ctx, bin)
	if err != nil {
		return err
	}
	defer srv.Stop()
	if err := srv.CreateDatabase(ctx, "apibench"); err != nil {
		return err
	}
	return run(ctx, cfg, "postgres", srv.URL("apibench"))
}

// run builds the project on the store (uptrust.db when database is "")
// and measures the queries.
func run(ctx context.Context, cfg config, name, database string) error {
	clients, products, releases, audits, duration := cfg.clients, cfg.products, cfg.releases, cfg.audits, cfg.duration
	dir, err := os.MkdirTemp("", "uptrust-api-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := project.Init(ctx, filepath.Join(dir, "project"), project.InitOptions{Dev: true, Options: project.Options{Database: database}})
	if err != nil {
		return err
	}
	defer p.Close()
	start := time.Now()
	until := time.Now().AddDate(3, 0, 0).Format(time.DateOnly)
	for i := range products {
		name := fmt.Sprintf("product%02d", i)
		if err := p.AddProduct(ctx, project.ProductSpec{Name: name, Hardware: []string{"rev-a"}, SupportUntil: until}); err != nil {
			return err
		}
		n := releases / products
		for v := range n {
			_, err := p.AddRelease(ctx, project.ReleaseSpec{Product: name, Version: fmt.Sprintf("1.%d.0", v),
				Payload: strings.NewReader(fmt.Sprintf("%s image %d", name, v)), Kind: release.KindFix, SecurityVersion: 1})
			if err != nil {
				return err
			}
		}
		if _, err := p.StartRollout(ctx, name, fmt.Sprintf("1.%d.0", n-1), 10); err != nil {
			return err
		}
	}
	es, err := p.Audit(ctx)
	if err != nil {
		return err
	}
	if missing := audits - len(es); missing > 0 {
		now := time.Now().UTC()
		err := p.Store.Update(ctx, func(tx store.Tx) error {
			for i := range missing {
				if err := tx.AddAudit(ctx, store.AuditEntry{Time: now, Action: "api.rollout.change",
					Object: fmt.Sprintf("product%02d/1.0.0", i%products), Detail: "by bench (operator); outcome refused; request bench"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if es, err = p.Audit(ctx); err != nil {
		return err
	}
	rels, err := p.Store.Releases(ctx, "")
	if err != nil {
		return err
	}
	fmt.Printf("%-9s project: %d products, %d releases, %d audit entries (built in %s)\n", name, products, len(rels), len(es), time.Since(start).Round(time.Second))

	ct, err := p.CreateToken(ctx, project.TokenSpec{Name: "bench", Role: access.Auditor, TTL: 24 * time.Hour})
	if err != nil {
		return err
	}
	tok := ct.Text
	a, err := api.New(api.Config{Project: p})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go api.Serve(sctx, ln, nil, api.AdminHandler(a, nil))
	base := "http://" + ln.Addr().String()

	for _, q := range []string{
		"/api/v1/rollouts",
		"/api/v1/releases?product=product00",
		"/api/v1/releases?limit=1000",
		"/api/v1/audit?limit=100",
		"/api/v1/audit?action=rollout.change&limit=100",
		"/api/v1/audit?actor=cli&outcome=ok&limit=100",
	} {
		rps, p50, p99, err := measure(base+q, tok, clients, duration)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		fmt.Printf("%-9s %-48s %9.0f %9s %9s\n", name, q, rps, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	}
	return nil
}

func measure(url, token string, clients int, d time.Duration) (rps float64, p50, p99 time.Duration, err error) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				t0 := time.Now()
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, 0, firstErr
	}
	if len(lat) == 0 {
		return 0, 0, 0, fmt.Errorf("no request finished")
	}
	slices.Sort(lat)
	return float64(len(lat)) / d.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], nil
}
