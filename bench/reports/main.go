// Command reports measures the report endpoint under a flood: one client
// (127.0.0.2) posts reports as fast as it can, half of them about invented
// products and versions, while a simulated fleet of devices, each from its
// own loopback address (127.0.1.x, 127.0.2.x, ...), posts real reports at a
// steady pace on a fresh connection each, as the agent does. It prints the
// share of the fleet's reports the server accepted and how the report
// counters in the database grew. Everything runs on loopback against the
// real project and server with their default limits.
//
//	go run ./bench/reports -duration 60s -fleet 200
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/server"
)

func main() {
	duration := flag.Duration("duration", 60*time.Second, "length of the flood")
	fleet := flag.Int("fleet", 200, "simulated devices, one loopback address each")
	every := flag.Duration("every", 4*time.Second, "interval between one device's reports")
	flooders := flag.Int("flood-conns", 8, "concurrent connections of the flooding client")
	flag.Parse()
	if err := run(*duration, *fleet, *every, *flooders); err != nil {
		fmt.Fprintln(os.Stderr, "reports bench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, fleet int, every time.Duration, flooders int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "uptrust-reports-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := project.Init(ctx, filepath.Join(dir, "project"), project.InitOptions{Dev: true})
	if err != nil {
		return err
	}
	defer p.Close()
	until := time.Now().AddDate(3, 0, 0).Format(time.DateOnly)
	if err := p.AddProduct(ctx, project.ProductSpec{Name: "thermo", Hardware: []string{"rev-a"}, SupportUntil: until}); err != nil {
		return err
	}
	if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: "thermo", Version: "1.0.0",
		Payload: bytes.NewReader(make([]byte, 4096)), Kind: release.KindFeature, SecurityVersion: 1}); err != nil {
		return err
	}
	srv, err := server.New(server.Config{Source: p, Reports: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx, ln, nil) }()
	url := "http://" + ln.Addr().String() + deviceapi.ReportsPath

	rowsBefore, err := rows(ctx, p)
	if err != nil {
		return err
	}
	dbBefore := dbBytes(filepath.Join(dir, "project"))

	end := time.Now().Add(duration)
	var wg sync.WaitGroup
	// The flood: keep-alive connections from one address.
	var floodSent, floodOK atomic.Int64
	floodClient := client("127.0.0.2", false)
	for i := range flooders {
		wg.Go(func() {
			for n := 0; time.Now().Before(end); n++ {
				body := `{"product":"thermo","version":"1.0.0","outcome":"installed"}`
				if n%2 == 0 {
					body = fmt.Sprintf(`{"product":"junk%d-%d","version":"%d.0","outcome":"failed","error_class":"x%d"}`, i, n, n, n)
				}
				floodSent.Add(1)
				if post(floodClient, url, body) == http.StatusAccepted {
					floodOK.Add(1)
				}
			}
		})
	}
	// The fleet: one address per device, a fresh connection per report,
	// reports spread evenly over every interval.
	var fleetSent, fleetOK atomic.Int64
	codes := sync.Map{}
	for d := range fleet {
		addr := fmt.Sprintf("127.0.%d.%d", 1+d/250, 1+d%250)
		c := client(addr, true)
		wg.Go(func() {
			time.Sleep(every * time.Duration(d) / time.Duration(fleet))
			for time.Now().Before(end) {
				fleetSent.Add(1)
				code := post(c, url, `{"product":"thermo","version":"1.0.0","outcome":"installed"}`)
				if code == http.StatusAccepted {
					fleetOK.Add(1)
				} else {
					v, _ := codes.LoadOrStore(code, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
				}
				time.Sleep(every)
			}
		})
	}
	wg.Wait()
	stop()
	if err := <-done; err != nil {
		return err
	}
	rowsAfter, err := rows(ctx, p)
	if err != nil {
		return err
	}
	dbAfter := dbBytes(filepath.Join(dir, "project"))

	fmt.Printf("flood %v from 127.0.0.2 (%d connections): %d sent, %d accepted\n", duration, flooders, floodSent.Load(), floodOK.Load())
	fmt.Printf("fleet of %d addresses, one report per %v each: %d sent, %d accepted = %.2f %%\n",
		fleet, every, fleetSent.Load(), fleetOK.Load(), 100*float64(fleetOK.Load())/float64(max(fleetSent.Load(), 1)))
	codes.Range(func(k, v any) bool {
		fmt.Printf("  fleet refused with %v: %d\n", k, v.(*atomic.Int64).Load())
		return true
	})
	fmt.Printf("report counter rows: %d before, %d after; rows not about thermo 1.0.0: %d\n",
		len(rowsBefore), len(rowsAfter), invented(rowsAfter))
	fmt.Printf("database file: %d bytes before, %d after; write-ahead log: %d bytes before, %d after\n",
		dbBefore[0], dbAfter[0], dbBefore[1], dbAfter[1])
	return nil
}

type row struct{ product, version string }

func rows(ctx context.Context, p *project.Project) ([]row, error) {
	cs, err := p.Store.ReportCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]row, len(cs))
	for i, c := range cs {
		out[i] = row{c.Product, c.Version}
	}
	return out, nil
}

func invented(rs []row) int {
	n := 0
	for _, r := range rs {
		if r.product != "thermo" || r.version != "1.0.0" {
			n++
		}
	}
	return n
}

// dbBytes is the size of the SQLite database and of its write-ahead log.
func dbBytes(dir string) [2]int64 {
	var n [2]int64
	for i, f := range []string{"uptrust.db", "uptrust.db-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n[i] = fi.Size()
		}
	}
	return n
}

// client sends from the loopback address local.
func client(local string, fresh bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, DisableKeepAlives: fresh, MaxIdleConnsPerHost: 64}}
}

func post(c *http.Client, url, body string) int {
	resp, err := c.Post(url, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
