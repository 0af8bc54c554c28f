// Command api measures the management API on SQLite: requests per second
// and latency percentiles of rollout list, release list and audit log
// queries, with a project of -releases releases (over -products products,
// one rollout each) and an audit log of -audit entries. Clients run
// concurrently over keep-alive connections on loopback against the real
// handler, authenticated with a real token the project created.
//
//	go run ./bench/api -duration 10s -clients 4
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "measuring time per query")
	clients := flag.Int("clients", 4, "concurrent clients")
	products := flag.Int("products", 10, "products")
	releases := flag.Int("releases", 1000, "releases in all")
	audit := flag.Int("audit", 10000, "audit entries in all (at least what publishing writes)")
	flag.Parse()
	if err := run(*duration, *clients, *products, *releases, *audit); err != nil {
		fmt.Fprintln(os.Stderr, "api bench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, clients, products, releases, audits int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "uptrust-api-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := project.Init(ctx, filepath.Join(dir, "project"), project.InitOptions{Dev: true})
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
	fmt.Printf("project: %d products, %d releases, %d audit entries (built in %s)\n", products, len(rels), len(es), time.Since(start).Round(time.Second))

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

	fmt.Printf("%d clients, %s per query\n", clients, duration)
	fmt.Printf("%-48s %9s %9s %9s\n", "QUERY", "REQ/S", "P50", "P99")
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
		fmt.Printf("%-48s %9.0f %9s %9s\n", q, rps, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
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
