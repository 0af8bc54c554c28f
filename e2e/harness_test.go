// Package e2e runs whole-system scenarios: a real project on SQLite, the
// real server on loopback (behind a proxy that can tamper, stall or lie),
// and simulated devices running the real agent with file-backed slots.
//
// Every attack scenario ends with the same invariants (world.assertSafe):
// the device boots a verified image, its state is readable, the reason is
// in `uptrust-agent status`, and the server counted the report.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/sim"
)

const (
	product  = "thermostat"
	hardware = "rev-a"
	imgSize  = 256 << 10
)

// world is one project, one server, one proxy in front of it.
type world struct {
	t      *testing.T
	dir    string
	p      *project.Project
	srv    *server.Server
	proxy  *proxy
	url    string // the proxy's URL: what devices talk to
	direct string // the server's own URL
	images map[string][]byte
	// devicePoll is the device handler's Poll (nil without one): reload
	// runs it after the server's reload, as the server's poll loop does.
	devicePoll func(context.Context) error
}

type worldOptions struct {
	// production makes a 2-of-3 root project with encrypted offline keys.
	production bool
	// factorySV is the security version of the factory release 1.0.0.
	factorySV uint64
	// projectClock, when set, is the clock the project signs with (its
	// metadata expires relative to it).
	projectClock clock.Clock
	// defaultReportLimits runs the server with its default report rate
	// limits instead of the harness's generous ones.
	defaultReportLimits bool
}

// withDevices restarts the world's server with the device API of managed
// mode, behind the same proxy.
func (w *world) withDevices(h http.Handler) {
	w.t.Helper()
	cfg := server.Config{Source: w.p, Reports: w.p, Resigner: w.p, Devices: h, PollEvery: 20 * time.Millisecond,
		ReportRate: 1000, ReportBurst: 1000, ReportClientRate: 1000, ReportClientBurst: 1000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv, err := server.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := srv.Reload(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	serve(w.t, srv, ln, nil)
	w.srv = srv
	if p, ok := h.(interface{ Poll(context.Context) error }); ok {
		w.devicePoll = p.Poll
	}
	w.direct = "http://" + ln.Addr().String()
	w.proxy = newProxy(w.t, w.direct)
	w.url = w.proxy.url
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	pass := func() ([]byte, error) { return []byte("correct horse battery staple"), nil }
	p, err := project.Init(ctx, filepath.Join(dir, "project"), project.InitOptions{Dev: !o.production, Options: project.Options{Passphrase: pass, Clock: o.projectClock}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	until := time.Now().AddDate(3, 0, 0).Format(time.DateOnly)
	if err := p.AddProduct(ctx, project.ProductSpec{Name: product, Hardware: []string{hardware, "rev-b"}, SupportUntil: until}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dir: dir, p: p, images: map[string][]byte{}}
	if o.factorySV == 0 {
		o.factorySV = 1
	}
	w.publish("1.0.0", o.factorySV, release.KindFeature)

	cfg := server.Config{Source: p, Reports: p, Resigner: p, PollEvery: 20 * time.Millisecond,
		ReportRate: 1000, ReportBurst: 1000, ReportClientRate: 1000, ReportClientBurst: 1000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if o.defaultReportLimits {
		cfg.ReportRate, cfg.ReportBurst, cfg.ReportClientRate, cfg.ReportClientBurst = 0, 0, 0, 0
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv, ln, nil)
	w.srv = srv
	w.direct = "http://" + ln.Addr().String()
	w.proxy = newProxy(t, w.direct)
	w.url = w.proxy.url
	return w
}

// serve runs srv on ln (with tlsCfg, if not nil) until the test ends.
func serve(t *testing.T, srv *server.Server, ln net.Listener, tlsCfg *tls.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx, ln, tlsCfg); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// image returns the deterministic image of a version.
func image(version string) []byte {
	sum := sha256.Sum256([]byte(version))
	r := rand.New(rand.NewPCG(uint64(sum[0])<<8|uint64(sum[1]), uint64(sum[2])))
	b := make([]byte, imgSize)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (w *world) publish(version string, sv uint64, kind release.Kind, hw ...string) {
	w.t.Helper()
	img := image(version)
	w.images[version] = img
	_, err := w.p.AddRelease(context.Background(), project.ReleaseSpec{Product: product, Version: version,
		Payload: bytes.NewReader(img), Kind: kind, SecurityVersion: sv, Hardware: hw})
	if err != nil {
		w.t.Fatalf("publishing %s: %v", version, err)
	}
	w.reload()
}

func (w *world) rollout(version string, percent int) {
	w.t.Helper()
	if _, err := w.p.StartRollout(context.Background(), product, version, percent); err != nil {
		w.t.Fatal(err)
	}
	w.reload()
}

func (w *world) reload() {
	w.t.Helper()
	if w.srv != nil {
		if err := w.srv.Reload(context.Background()); err != nil {
			w.t.Fatal(err)
		}
	}
	if w.devicePoll != nil {
		if err := w.devicePoll(context.Background()); err != nil {
			w.t.Fatal(err)
		}
	}
}

// device provisions a device running the factory image 1.0.0.
func (w *world) device(name string, factorySV uint64) *sim.Device {
	w.t.Helper()
	if factorySV == 0 {
		factorySV = 1
	}
	rr, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, "release"))
	if err != nil {
		w.t.Fatal(err)
	}
	fr, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, "fleet"))
	if err != nil {
		w.t.Fatal(err)
	}
	d, err := sim.New(filepath.Join(w.dir, "devices", name), sim.Spec{Name: name, Server: w.url, Product: product, Hardware: hardware,
		ReleaseRoot: rr, FleetRoot: fr, Factory: w.images["1.0.0"], Version: "1.0.0", SecurityVersion: factorySV})
	if err != nil {
		w.t.Fatal(err)
	}
	d.HTTP = &fetch.Config{StallTimeout: 300 * time.Millisecond, ConnectTimeout: time.Second, MaxAttempts: 3,
		BaseBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	return d
}

// cycle runs one device cycle and fails the test on an agent error.
func (w *world) cycle(d *sim.Device) *agent.Check {
	w.t.Helper()
	chk, err := d.Cycle(context.Background())
	if err != nil {
		w.t.Fatalf("%s: cycle: %v", d.Name, err)
	}
	return chk
}

// assertRunning checks that the device boots exactly the image of version,
// that its state says so, and that nothing is in progress.
func (w *world) assertRunning(d *sim.Device, version string) *agent.Status {
	w.t.Helper()
	ctx := context.Background()
	st, err := d.Status(ctx)
	if err != nil {
		w.t.Fatalf("%s: status: %v", d.Name, err)
	}
	if st.Version != version {
		w.t.Fatalf("%s: runs %s, want %s (last check: %+v)", d.Name, st.Version, version, st.LastCheck)
	}
	if st.Phase != agent.PhaseIdle {
		w.t.Fatalf("%s: phase %s, want idle", d.Name, st.Phase)
	}
	img := w.images[version]
	_, sum, err := d.BootedImage(ctx, int64(len(img)))
	if err != nil {
		w.t.Fatal(err)
	}
	want := sha256.Sum256(img)
	if sum != hex.EncodeToString(want[:]) {
		w.t.Fatalf("%s: booted slot does not hold the verified image of %s", d.Name, version)
	}
	bs, err := d.Backend().State(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	if bs.Trial {
		w.t.Fatalf("%s: bootloader still on trial", d.Name)
	}
	return st
}

// assertRefused checks the invariants after an attack: the device runs
// version from a verified image, status names the error class, and the
// server counted a report with that class.
func (w *world) assertRefused(d *sim.Device, version string, class report.Class, outcome report.Outcome) *agent.Status {
	w.t.Helper()
	st := w.assertRunning(d, version)
	if st.LastCheck == nil || st.LastCheck.ErrorClass != class {
		w.t.Fatalf("%s: last check %+v, want error class %s", d.Name, st.LastCheck, class)
	}
	if st.LastCheck.Reason == "" {
		w.t.Fatalf("%s: no reason in status", d.Name)
	}
	w.assertReport(outcome, class)
	return st
}

// assertReport waits for the server to have counted a report.
func (w *world) assertReport(outcome report.Outcome, class report.Class) {
	w.t.Helper()
	counts, err := w.p.Store.ReportCounts(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range counts {
		if c.Outcome == string(outcome) && c.ErrorClass == string(class) && c.Count > 0 {
			return
		}
	}
	w.t.Fatalf("no %s/%s report counted by the server; have %+v", outcome, class, counts)
}

// proxy forwards to the server unless a hook takes the request.
type proxy struct {
	url      string
	upstream string
	rp       *httputil.ReverseProxy
	mu       sync.Mutex
	hooks    []hook
}

type hook struct {
	match func(path string) bool
	serve func(w http.ResponseWriter, r *http.Request)
}

func newProxy(t *testing.T, upstream string) *proxy {
	u, _ := url.Parse(upstream)
	p := &proxy{upstream: upstream, rp: httputil.NewSingleHostReverseProxy(u)}
	p.rp.ErrorLog = nil
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: p}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	p.url = "http://" + ln.Addr().String()
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	hooks := append([]hook(nil), p.hooks...)
	p.mu.Unlock()
	for _, h := range hooks {
		if h.match(r.URL.Path) {
			h.serve(w, r)
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// on installs a hook for paths matching match.
func (p *proxy) on(match func(string) bool, serve func(w http.ResponseWriter, r *http.Request)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks = append(p.hooks, hook{match, serve})
}

// clear removes all hooks.
func (p *proxy) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks = nil
}

// rewrite serves matching paths with the upstream body passed through f.
func (p *proxy) rewrite(match func(string) bool, f func(path string, body []byte) []byte) {
	p.on(match, func(w http.ResponseWriter, r *http.Request) {
		body, status := p.fetch(r.URL.Path)
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		out := f(r.URL.Path, body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(out)
	})
}

// fetch reads a path from the real server.
func (p *proxy) fetch(path string) ([]byte, int) {
	resp, err := http.Get(p.upstream + path)
	if err != nil {
		return nil, http.StatusBadGateway
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b, resp.StatusCode
}

func suffix(s string) func(string) bool {
	return func(p string) bool { return strings.HasSuffix(p, s) }
}
func contains(s string) func(string) bool {
	return func(p string) bool { return strings.Contains(p, s) }
}
func isPayload(version string) func(string) bool {
	return func(p string) bool {
		return strings.Contains(p, "/targets/"+product+"/") && strings.HasSuffix(p, "."+version)
	}
}
