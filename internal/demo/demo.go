// Package demo runs the whole signed path in one process: a project on
// SQLite, a product, a factory image on simulated devices, a signed
// security release, a rollout, and every device updating through the real
// server and the real agent — one of them with a failing health check, so
// the rollback is seen too.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/sim"
)

// Options configure a demo run.
type Options struct {
	Devices int
	// ImageBytes is the size of the firmware images (default 4 MiB).
	ImageBytes int
	// Dir is the working directory; a temporary one when empty (removed
	// afterwards).
	Dir string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

// DeviceResult is one device's outcome.
type DeviceResult struct {
	Name    string `json:"name"`
	Before  string `json:"before"`
	After   string `json:"after"`
	Slot    string `json:"slot"`
	Outcome string `json:"outcome"`
	Reboots int    `json:"reboots"`
	Reason  string `json:"reason"`
	// ImageVerified says the booted slot holds exactly the image of the
	// version the device reports.
	ImageVerified bool `json:"image_verified"`
	// Delta says the device installed the release from the delta, and
	// Downloaded how many bytes it received for it (delta or payload).
	Delta      bool  `json:"delta"`
	Downloaded int64 `json:"downloaded"`
}

// Summary is the demo's result.
type Summary struct {
	Devices    int    `json:"devices"`
	Updated    int    `json:"updated"`
	RolledBack int    `json:"rolled_back"`
	Failed     int    `json:"failed"`
	Release    string `json:"release"`
	// ImageBytes is the size of the release's full image.
	ImageBytes int            `json:"image_bytes"`
	Seconds    float64        `json:"seconds"`
	Reports    map[string]int `json:"reports"`
	Server     string         `json:"server"`
	Results    []DeviceResult `json:"results"`
}

const (
	product  = "thermostat"
	hardware = "rev-a"
)

// Run executes the demo.
func Run(ctx context.Context, o Options) (*Summary, error) {
	start := time.Now()
	if o.Devices < 1 {
		return nil, errors.New("demo: need at least one device")
	}
	if o.ImageBytes == 0 {
		o.ImageBytes = 4 << 20
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "==> "+format+"\n", args...) }
	dir := o.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "uptrust-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	projDir := filepath.Join(dir, "project")
	say("uptrust init --dev --dir %s", projDir)
	p, err := project.Init(ctx, projDir, project.InitOptions{Dev: true})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	until := time.Now().AddDate(5, 0, 0).Format(time.DateOnly)
	say("uptrust product add %s --hardware %s --support-until %s", product, hardware, until)
	if err := p.AddProduct(ctx, project.ProductSpec{Name: product, Model: "Thermostat T1", Hardware: []string{hardware}, SupportUntil: until, Contact: "security@example.com"}); err != nil {
		return nil, err
	}
	factory := image(1, o.ImageBytes)
	next := update(factory)
	say("uptrust release add %s 1.0.0 factory.img --kind feature --security-version 1", product)
	if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: product, Version: "1.0.0", Payload: bytesReader(factory), Kind: release.KindFeature, SecurityVersion: 1, Notes: "Factory image."}); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.Config{Source: p, Reports: p, Resigner: p, PollEvery: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	if err := srv.Reload(ctx); err != nil {
		return nil, err
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(srvCtx, ln, nil) }()
	defer func() { stopSrv(); <-srvDone }()
	url := "http://" + ln.Addr().String()
	say("uptrust serve --listen %s", ln.Addr())

	releaseRoot, err := os.ReadFile(project.DeviceRootPath(projDir, deviceapi.RepoRelease))
	if err != nil {
		return nil, err
	}
	fleetRoot, err := os.ReadFile(project.DeviceRootPath(projDir, deviceapi.RepoFleet))
	if err != nil {
		return nil, err
	}
	say("provisioning %d devices with the factory image 1.0.0 in slot a", o.Devices)
	devices := make([]*sim.Device, o.Devices)
	for i := range devices {
		name := fmt.Sprintf("device-%02d", i+1)
		d, err := sim.New(filepath.Join(dir, "devices", name), sim.Spec{Name: name, Server: url, Product: product, Hardware: hardware,
			ReleaseRoot: releaseRoot, FleetRoot: fleetRoot, Factory: factory, Version: "1.0.0", SecurityVersion: 1})
		if err != nil {
			return nil, err
		}
		devices[i] = d
	}
	// The last device's new system fails its health check: it must roll back.
	bad := devices[len(devices)-1]
	bad.Health = func(context.Context) error { return errors.New("service thermostatd did not start") }

	say("uptrust release add %s 1.1.0 update.img --kind security --security-version 2 --advisory CVE-2026-0001 --delta-from 1.0.0", product)
	if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: product, Version: "1.1.0", Payload: bytesReader(next), Kind: release.KindSecurity,
		SecurityVersion: 2, Notes: "Fixes a remote code execution in the MQTT client.", DeltaFrom: []string{"1.0.0"},
		Advisories: []release.Advisory{{ID: "CVE-2026-0001", Summary: "MQTT client buffer overflow"}}}); err != nil {
		return nil, err
	}
	say("uptrust rollout start %s 1.1.0 --percent 100", product)
	if _, err := p.StartRollout(ctx, product, "1.1.0", 100); err != nil {
		return nil, err
	}
	if err := srv.Reload(ctx); err != nil {
		return nil, err
	}
	say("devices check, download, verify, install into slot b, reboot, health-check, commit")
	results := make([]DeviceResult, len(devices))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = runDevice(ctx, d, map[string][]byte{"1.0.0": factory, "1.1.0": next})
		}()
	}
	wg.Wait()

	// Let the server count the reports the devices sent.
	s := &Summary{Devices: len(devices), Release: "1.1.0", ImageBytes: len(next), Results: results, Reports: map[string]int{}, Server: url}
	for _, r := range results {
		switch r.Outcome {
		case "updated":
			s.Updated++
		case "rolled back":
			s.RolledBack++
		default:
			s.Failed++
		}
	}
	counts, err := p.Store.ReportCounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		if c.Version == "1.1.0" {
			s.Reports[c.Outcome] += int(c.Count)
		}
	}
	s.Seconds = time.Since(start).Seconds()
	return s, nil
}

func runDevice(ctx context.Context, d *sim.Device, images map[string][]byte) DeviceResult {
	r := DeviceResult{Name: d.Name, Before: "1.0.0"}
	_, err := d.Cycle(ctx)
	st, serr := d.Status(ctx)
	r.Reboots = d.Reboots
	if serr != nil {
		r.Outcome, r.Reason = "failed", serr.Error()
		return r
	}
	r.After, r.Slot = st.Version, string(st.BootedSlot)
	if ld := st.LastDelta; ld != nil && ld.Version == "1.1.0" && ld.Used {
		r.Delta = true
	}
	if dl := st.Download; dl != nil && dl.Version == "1.1.0" {
		r.Downloaded = dl.Bytes
	}
	if st.LastCheck != nil {
		r.Reason = st.LastCheck.Reason
	}
	switch {
	case err != nil:
		r.Outcome, r.Reason = "failed", err.Error()
	case st.Version == "1.1.0":
		r.Outcome = "updated"
	case st.Failed["1.1.0"].ErrorClass != "":
		r.Outcome = "rolled back"
	default:
		r.Outcome = "not updated"
	}
	img := images[st.Version]
	if _, sum, err := d.BootedImage(ctx, int64(len(img))); err == nil {
		want := sha256.Sum256(img)
		r.ImageVerified = sum == hex.EncodeToString(want[:])
	}
	if !r.ImageVerified && r.Outcome != "failed" {
		r.Outcome, r.Reason = "failed", "the booted slot does not hold the image of "+st.Version
	}
	return r
}

// update returns the next release's image: the factory image with a few
// regions rewritten, as a security fix changes a few files of a system.
func update(factory []byte) []byte {
	next := append([]byte(nil), factory...)
	patch := image(2, 16<<10)
	for _, at := range []int{len(next) / 7, len(next) / 2, len(next) - len(next)/5} {
		if at+len(patch) <= len(next) {
			copy(next[at:], patch)
		}
	}
	return next
}

// image returns deterministic pseudo-random firmware bytes.
func image(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func bytesReader(b []byte) io.Reader { return &reader{b} }

type reader struct{ b []byte }

func (r *reader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// ReportsText writes the report counts for people, in the order of
// report.Outcomes then any other key by name: "9 installed, 1 rolled
// back", or "none".
func (s *Summary) ReportsText() string {
	var parts []string
	seen := map[string]bool{}
	add := func(k string) {
		if n := s.Reports[k]; n > 0 && !seen[k] {
			seen[k] = true
			parts = append(parts, fmt.Sprintf("%d %s", n, strings.ReplaceAll(k, "_", " ")))
		}
	}
	for _, o := range report.Outcomes() {
		add(string(o))
	}
	keys := make([]string, 0, len(s.Reports))
	for k := range s.Reports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
