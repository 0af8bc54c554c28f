// Command fleet measures a managed fleet at scale on SQLite and on
// PostgreSQL: a managed product with -devices enrolled, accepted devices
// with inventory, written in store transactions of -batch devices
// (store.UpdateFleet, the path enrolment uses), then
//
//   - the time to start a 4-wave rollout (StartManagedRollout and the
//     decision loop's start step, project.Tick);
//   - the time to advance a wave: Tick after every device of wave 1
//     reported success (events written in bulk the same way);
//   - the time to halt: Tick after a tenth of wave 2 reported failure;
//   - AssignDevice for every device, and a full reload of the device cache
//     of a server (managed.Handler.Poll of a new handler: the fleet state
//     and every device record);
//   - database bytes per device (SQLite: the pages in use; PostgreSQL:
//     pg_database_size) before and after the devices, and after the
//     events;
//   - the resident memory of a real `uptrust serve` on the database once
//     it has loaded every device (VmHWM and VmRSS of /proc/PID/status),
//     unless -serve=false, and this process's own maximum RSS.
//
// PostgreSQL is the server at -database when given; otherwise a throwaway
// one is started as the tests do (package pgtest).
//
//	go run ./bench/fleet -devices 100000 -stores sqlite,postgres
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

const product = "thermostat"

type config struct {
	devices, batch int
	serve          bool
	uptrust        string // the built uptrust binary when serve
}

func main() {
	devices := flag.Int("devices", 100_000, "enrolled, accepted devices")
	batch := flag.Int("batch", 5000, "devices or events per store transaction")
	stores := flag.String("stores", "sqlite,postgres", "stores to measure, in order: sqlite, postgres or both")
	database := flag.String("database", "", "postgres:// `URL` of an empty database to use for postgres (default: start a throwaway server)")
	serve := flag.Bool("serve", true, "measure the RSS of a real uptrust serve on the database (builds ./cmd/uptrust)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *devices < 100 || *batch < 1 {
		fmt.Fprintln(os.Stderr, "fleet bench: -devices must be at least 100 and -batch positive")
		os.Exit(2)
	}
	cfg := config{devices: *devices, batch: *batch, serve: *serve}
	tmp, err := os.MkdirTemp("", "uptrust-fleet-bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet bench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(tmp)
	if cfg.serve {
		cfg.uptrust = filepath.Join(tmp, "uptrust")
		build := exec.CommandContext(ctx, "go", "build", "-o", cfg.uptrust, "./cmd/uptrust")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "fleet bench: building cmd/uptrust (run from the module root, or -serve=false):", err)
			os.Exit(1)
		}
	}
	fmt.Printf("%d devices, transactions of %d; 4 waves 1%%,10%%,50%%,100%%, max failure 5%%, min success 20, soak 0\n", cfg.devices, cfg.batch)
	var results []result
	for _, st := range strings.Split(*stores, ",") {
		var r result
		var err error
		switch st {
		case "sqlite":
			r, err = run(ctx, cfg, tmp, st, "", nil)
		case "postgres":
			r, err = runPostgres(ctx, cfg, tmp, *database)
		default:
			err = fmt.Errorf("-stores: unknown store %q (want sqlite, postgres)", st)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleet bench:", st+":", err)
			os.Exit(1)
		}
		results = append(results, r)
	}
	print(results)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		fmt.Printf("\nthis bench process: max RSS %.0f MiB (projects, %d-device handlers and generated data of every store)\n", float64(ru.Maxrss)/1024, cfg.devices)
	}
}

// result is one store's figures.
type result struct {
	store                               string
	devices                             int
	insert, start, advance, halt        time.Duration
	assign, poll                        time.Duration
	wave1, wave2                        int
	sizeEmpty, sizeDevices, sizeEvents  int64
	serveHWM, serveRSS                  int64 // bytes; 0 when not measured
	serveStart                          time.Duration
	advancedTo, haltedPhase, haltReason string
}

func print(rs []result) {
	row := func(name string, f func(r result) string) {
		fmt.Printf("%-44s", name)
		for _, r := range rs {
			fmt.Printf(" %16s", f(r))
		}
		fmt.Println()
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Println()
	row("", func(r result) string { return r.store })
	row("insert devices (store transactions)", func(r result) string { return fmt.Sprintf("%.1f s", r.insert.Seconds()) })
	row("start a 4-wave rollout (start + Tick)", func(r result) string { return ms(r.start) })
	row("advance wave 1 -> 2 (Tick)", func(r result) string { return ms(r.advance) })
	row("  wave 1 devices (all succeeded)", func(r result) string { return fmt.Sprint(r.wave1) })
	row("halt in wave 2 (Tick)", func(r result) string { return ms(r.halt) })
	row("  wave 2 devices (a tenth failed)", func(r result) string { return fmt.Sprint(r.wave2) })
	row("  phase after", func(r result) string { return r.haltedPhase })
	row("AssignDevice, every device", func(r result) string { return ms(r.assign) })
	row("  per device", func(r result) string {
		return fmt.Sprintf("%.2f us", float64(r.assign.Nanoseconds())/1000/float64(r.devices))
	})
	row("full device cache reload (Handler.Poll)", func(r result) string { return ms(r.poll) })
	row("database, empty project", func(r result) string { return mib(r.sizeEmpty) })
	row("database, with the devices", func(r result) string { return mib(r.sizeDevices) })
	row("  bytes per device", func(r result) string { return fmt.Sprint((r.sizeDevices - r.sizeEmpty) / int64(r.devices)) })
	row("database, after the events", func(r result) string { return mib(r.sizeEvents) })
	row("uptrust serve: start to first answer", func(r result) string {
		if r.serveHWM == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f s", r.serveStart.Seconds())
	})
	row("uptrust serve: VmRSS after loading", func(r result) string {
		if r.serveHWM == 0 {
			return "-"
		}
		return mib(r.serveRSS)
	})
	row("uptrust serve: VmHWM (peak)", func(r result) string {
		if r.serveHWM == 0 {
			return "-"
		}
		return mib(r.serveHWM)
	})
	for _, r := range rs {
		fmt.Printf("\n%s halt reason: %s\n", r.store, r.haltReason)
	}
}

func runPostgres(ctx context.Context, cfg config, tmp, url string) (result, error) {
	size := func(url string) func(context.Context) (int64, error) {
		return func(ctx context.Context) (int64, error) {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return 0, err
			}
			defer conn.Close(ctx)
			var n int64
			err = conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
			return n, err
		}
	}
	if url != "" {
		return run(ctx, cfg, tmp, "postgres", url, size(url))
	}
	bin, err := pgtest.Binaries()
	if err != nil {
		return result{}, err
	}
	srv, err := pgtest.Start(ctx, bin)
	if err != nil {
		return result{}, err
	}
	defer srv.Stop()
	if err := srv.CreateDatabase(ctx, "fleetbench"); err != nil {
		return result{}, err
	}
	return run(ctx, cfg, tmp, "postgres", srv.URL("fleetbench"), size(srv.URL("fleetbench")))
}

// run measures one store: SQLite in the project directory when database
// is "", else the PostgreSQL database at that URL, whose size dbSize
// reads.
func run(ctx context.Context, cfg config, tmp, name, database string, dbSize func(context.Context) (int64, error)) (result, error) {
	r := result{store: name, devices: cfg.devices}
	dir := filepath.Join(tmp, name)
	p, err := project.Init(ctx, dir, project.InitOptions{Dev: true, Options: project.Options{Database: database}})
	if err != nil {
		return r, err
	}
	defer p.Close()
	if dbSize == nil {
		dbSize = func(ctx context.Context) (int64, error) { return sqliteSize(ctx, dir) }
	}
	until := time.Now().AddDate(3, 0, 0).Format(time.DateOnly)
	if err := p.AddProduct(ctx, project.ProductSpec{Name: product, Hardware: []string{"rev-a", "rev-b"}, SupportUntil: until}); err != nil {
		return r, err
	}
	if _, err := p.SetProductMode(ctx, product, store.ModeManaged); err != nil {
		return r, err
	}
	if _, err := p.SetInventoryFields(ctx, product, []string{"version", "hardware", "slot"}); err != nil {
		return r, err
	}
	for i, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: product, Version: v, Payload: strings.NewReader("image " + v),
			Kind: release.KindSecurity, SecurityVersion: uint64(i + 1)}); err != nil {
			return r, err
		}
	}
	if r.sizeEmpty, err = dbSize(ctx); err != nil {
		return r, err
	}

	fmt.Fprintf(os.Stderr, "%s: inserting %d devices\n", name, cfg.devices)
	devs := newDevices(p, cfg.devices)
	t := time.Now()
	if err := insertDevices(ctx, p, cfg, devs); err != nil {
		return r, err
	}
	r.insert = time.Since(t)
	if r.sizeDevices, err = dbSize(ctx); err != nil {
		return r, err
	}

	fmt.Fprintf(os.Stderr, "%s: rollout\n", name)
	plan, err := rollout.ParsePlan(rollout.PlanFlags{Waves: "1%,10%,50%,100%", MaxFailure: "5%", MinSuccess: "20", Soak: "0s"}, p.Clock.Now())
	if err != nil {
		return r, err
	}
	t = time.Now()
	ro, err := p.StartManagedRollout(ctx, product, "1.1.0", "", plan)
	if err != nil {
		return r, err
	}
	if _, err := p.Tick(ctx); err != nil {
		return r, err
	}
	r.start = time.Since(t)
	if st, err := p.ManagedRollout(ctx, ro.ID); err != nil || st.State.Phase != rollout.PhaseActive {
		return r, fmt.Errorf("after the start: %+v, %v", st.State, err)
	}

	byWave := make([][]store.Device, len(plan.Waves))
	for _, d := range devs {
		k := plan.WaveOf(rollout.WaveBucket(ro.ID, d.ID))
		byWave[k] = append(byWave[k], d)
	}
	r.wave1, r.wave2 = len(byWave[0]), len(byWave[1])
	if err := addEvents(ctx, p, cfg, byWave[0], "1.1.0", func(int) bool { return false }); err != nil {
		return r, err
	}
	t = time.Now()
	if _, err := p.Tick(ctx); err != nil {
		return r, err
	}
	r.advance = time.Since(t)
	if st, err := p.ManagedRollout(ctx, ro.ID); err != nil || st.State.Wave != 1 {
		return r, fmt.Errorf("after the advance: %+v, %v", st.State, err)
	}
	if err := addEvents(ctx, p, cfg, byWave[1], "1.1.0", func(i int) bool { return i%10 == 0 }); err != nil {
		return r, err
	}
	t = time.Now()
	if _, err := p.Tick(ctx); err != nil {
		return r, err
	}
	r.halt = time.Since(t)
	st, err := p.ManagedRollout(ctx, ro.ID)
	if err != nil {
		return r, err
	}
	r.haltedPhase, r.haltReason = string(st.State.Phase), st.State.Reason
	if st.State.Phase != rollout.PhaseHalted {
		return r, fmt.Errorf("after the failures: %+v, want halted", st.State)
	}
	if r.sizeEvents, err = dbSize(ctx); err != nil {
		return r, err
	}

	// A server's view of the fleet: AssignDevice for every device (on a
	// halted rollout nothing is offered; the work is the same), and the
	// full reload of a new handler's device cache.
	fmt.Fprintf(os.Stderr, "%s: assignments and cache reload\n", name)
	t = time.Now()
	for _, d := range devs {
		if _, _, err := p.AssignDevice(ctx, d); err != nil {
			return r, err
		}
	}
	r.assign = time.Since(t)
	h := managed.New(p)
	t = time.Now()
	if err := h.Poll(ctx); err != nil {
		return r, err
	}
	r.poll = time.Since(t)

	if cfg.serve {
		fmt.Fprintf(os.Stderr, "%s: uptrust serve\n", name)
		if r.serveStart, r.serveRSS, r.serveHWM, err = serveRSS(ctx, cfg.uptrust, dir); err != nil {
			return r, fmt.Errorf("uptrust serve: %w", err)
		}
	}
	return r, nil
}

// newDevices returns n accepted devices of product with inventory and
// random 32-byte public keys.
func newDevices(p *project.Project, n int) []store.Device {
	now := p.Clock.Now().UTC()
	devs := make([]store.Device, n)
	for i := range devs {
		var key [32]byte
		rand.Read(key[:]) // never fails (crypto/rand)
		hw := "rev-a"
		if i%3 == 0 {
			hw = "rev-b"
		}
		devs[i] = store.Device{ID: fmt.Sprintf("d%015x", i*2654435761%(1<<60)), Product: product, PublicKey: project.EncodePublicKey(key[:]),
			State: store.DeviceAccepted, Inventory: map[string]string{"version": "1.0.0", "hardware": hw, "slot": "a"}, Enrolled: now, Updated: now}
	}
	return devs
}

// insertDevices writes devs in transactions of cfg.batch, as enrolment
// writes devices (store.UpdateFleet: no generation change).
func insertDevices(ctx context.Context, p *project.Project, cfg config, devs []store.Device) error {
	for lo := 0; lo < len(devs); lo += cfg.batch {
		hi := min(lo+cfg.batch, len(devs))
		err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
			for _, d := range devs[lo:hi] {
				if err := tx.AddDevice(ctx, d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("devices %d-%d: %w", lo, hi, err)
		}
	}
	return nil
}

// addEvents writes, for every device of devs, the events of an update of
// version (offered, then succeeded, or failed when fails(i)), in
// transactions of cfg.batch devices.
func addEvents(ctx context.Context, p *project.Project, cfg config, devs []store.Device, version string, fails func(i int) bool) error {
	now := p.Clock.Now().UTC().Add(time.Second)
	for lo := 0; lo < len(devs); lo += cfg.batch {
		hi := min(lo+cfg.batch, len(devs))
		err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
			for i := lo; i < hi; i++ {
				if err := tx.AddDeviceEvent(ctx, store.DeviceEvent{Device: devs[i].ID, Time: now, Kind: store.EventOffered, Version: version}); err != nil {
					return err
				}
				e := store.DeviceEvent{Device: devs[i].ID, Time: now, Kind: store.EventSucceeded, Version: version}
				if fails(i) {
					e.Kind, e.ErrorClass, e.Message = store.EventFailed, "health-check", "bench: service did not start"
				}
				if err := tx.AddDeviceEvent(ctx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("events %d-%d: %w", lo, hi, err)
		}
	}
	return nil
}

// sqliteSize is the size of the project's SQLite database as a reader
// sees it (WAL included): its pages in use, (page_count - freelist_count)
// * page_size. The files themselves lag behind (the WAL is reused, freed
// pages stay).
func sqliteSize(ctx context.Context, dir string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "uptrust.db")+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var pages, free, size int64
	for q, v := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &size} {
		if err := db.QueryRowContext(ctx, q).Scan(v); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	return (pages - free) * size, nil
}

// serveRSS runs `uptrust serve --dir dir` on a free loopback port until
// it answers the fleet timestamp (it loaded every device before serving),
// and returns how long that took and its VmRSS and VmHWM.
func serveRSS(ctx context.Context, bin, dir string) (time.Duration, int64, int64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "serve", "--dir", dir, "--listen", addr)
	cmd.Stdout, cmd.Stderr = nil, nil
	t := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	url := "http://" + addr + "/repo/fleet/metadata/timestamp.json"
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Since(t) > 5*time.Minute {
			return 0, 0, 0, errors.New("no answer within 5 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(t)
	time.Sleep(time.Second) // the first polls settle
	rss, hwm, err := procStatus(cmd.Process.Pid)
	return took, rss, hwm, err
}

// procStatus reads VmRSS and VmHWM of pid, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kb); err == nil {
			rss = kb << 10
		}
		if _, err := fmt.Sscanf(sc.Text(), "VmHWM: %d kB", &kb); err == nil {
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, errors.New("no VmRSS or VmHWM in /proc/PID/status")
	}
	return rss, hwm, sc.Err()
}
