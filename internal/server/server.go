// Package server is uptrust's HTTP server for devices: it serves the signed
// TUF repositories under /repo/, accepts anonymous outcome reports, and
// exposes health and Prometheus metrics.
//
// Content comes from a Source and is held in memory as an immutable
// snapshot that is swapped atomically when the source's generation changes,
// so the metadata hot path takes no lock and does no I/O. Payloads are
// streamed from files named in the snapshot.
//
// Privacy: the server never logs per request and never logs a client
// address, not even in errors from net/http (see redactWriter).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
)

// Defaults for zero Config fields.
const (
	DefaultPollEvery   = 2 * time.Second
	DefaultResignEvery = 3 * time.Second
	// DefaultGenerationTimeout bounds the cheap generation query of a
	// reload: a database that does not answer within it counts as
	// unreachable.
	DefaultGenerationTimeout = 5 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultReportRate        = 100
	DefaultReportBurst       = 200
	// DefaultReportClientRate and DefaultReportClientBurst are one client
	// address's share of the report rate: enough for devices behind one
	// NAT, a small part of the total.
	DefaultReportClientRate  = 5
	DefaultReportClientBurst = 20
	// DefaultIdleTimeout closes a keep-alive connection that has sent no
	// new request for this long. A device's check sends its requests
	// back to back and its report on another connection, so a few seconds
	// lose nothing, and idle sockets free their slot under the
	// connection cap quickly.
	DefaultIdleTimeout = 5 * time.Second
	// DefaultReadHeaderTimeout bounds the TLS handshake and the wait for a
	// request's headers; slow cellular links need a few round trips.
	// Unchanged from the server's earlier fixed value.
	DefaultReadHeaderTimeout = 10 * time.Second
)

// Config configures a Server. Source is required; everything else has a
// default.
type Config struct {
	// Source provides the content under /repo/.
	Source Source
	// Reports receives anonymous reports. When nil the reports route
	// answers 404.
	Reports ReportSink
	// Devices serves the device API of managed mode (enrolment, state)
	// under deviceapi.DevicePrefix, reports excepted; nil answers 404.
	// When it also has a method Gate(http.ResponseWriter, *http.Request)
	// bool, requests under /repo/ that carry a device signature
	// (Signature-Input) are served only when Gate returns true (Gate
	// answers the others itself). When it has a method Poll(ctx) error,
	// Run calls it after each content poll (and once before serving), so
	// its caches follow the database at the same interval.
	Devices http.Handler
	// Resigner re-signs online metadata. When nil there is no resign loop.
	Resigner Resigner
	// ResignEvery is how often Run calls Resigner.ResignDue
	// (DefaultResignEvery when zero). A Resigner that holds a lease in the
	// database renews it on every call, so this is well below the lease's
	// lifetime; calls with nothing due only read (and renew the lease).
	ResignEvery time.Duration
	// PollEvery is how often Run checks Source.Generation and reloads when
	// it changed (DefaultPollEvery when zero).
	PollEvery time.Duration
	// ShutdownTimeout bounds the graceful shutdown after Run's context is
	// cancelled; connections still open then are closed
	// (DefaultShutdownTimeout when zero).
	ShutdownTimeout time.Duration
	// ReportRate and ReportBurst configure the global token bucket that
	// limits reports: ReportRate per second, at most ReportBurst at once
	// (DefaultReportRate and DefaultReportBurst when zero).
	ReportRate  float64
	ReportBurst int
	// ReportClientRate and ReportClientBurst are each client address's
	// share of it, checked first so that a flood from one address cannot
	// spend the total (DefaultReportClientRate and
	// DefaultReportClientBurst when zero). IPv6 clients share per /64.
	ReportClientRate  float64
	ReportClientBurst int
	// ReportClients bounds the addresses tracked at once
	// (DefaultReportClients when zero).
	ReportClients int
	// ReportProxies are the reverse proxies whose X-Forwarded-For is
	// believed for the client address; for any other peer the header is
	// ignored. Empty: the connection's peer address is the client.
	ReportProxies []netip.Prefix
	// MaxConns caps the connections open at once; connections beyond it
	// wait in the kernel's listen backlog until one closes
	// (DefaultMaxConns when zero, sized to the descriptor limit).
	MaxConns int
	// IdleTimeout closes a keep-alive connection idle for this long
	// (DefaultIdleTimeout when zero).
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds the reading of a request's headers and,
	// with the 30 s request read timeout (the shorter wins), the TLS
	// handshake (DefaultReadHeaderTimeout when zero). There is no write
	// timeout: a slow device may take hours over a large payload.
	ReadHeaderTimeout time.Duration
	// Logger receives reload, resign and error records (slog.Default when
	// nil).
	Logger *slog.Logger
	// Clock timestamps reports, drives the rate limiter and measures
	// request latency (clock.Real when nil). The poll and resign loops use
	// real tickers.
	Clock clock.Clock
	// NoPublicMetrics makes /metrics answer 404 on Handler: the metrics
	// are then served only where MetricsHandler is mounted (uptrust serve
	// mounts it on the admin listener).
	NoPublicMetrics bool
}

// Server serves devices. Create it with New; its methods are safe for
// concurrent use, but Run may be called only once.
type Server struct {
	source      Source
	reports     ReportSink
	devices     http.Handler
	deviceGate  func(http.ResponseWriter, *http.Request) bool
	devicePoll  func(context.Context) error
	resigner    Resigner
	resignEvery time.Duration
	pollEvery   time.Duration
	// generationTimeout bounds one Source.Generation call, so that a
	// database that stopped answering (rather than refusing) makes the
	// server not ready too.
	generationTimeout time.Duration
	shutdownTimeout   time.Duration
	maxConns          int
	idleTimeout       time.Duration
	readHeader        time.Duration
	logger            *slog.Logger
	clock             clock.Clock
	limiter           *reportLimiter
	reportProxies     []netip.Prefix
	metrics           metrics
	noPublicMetrics   bool

	// snap is the content being served; nil until the first successful
	// load. Readers Load it once per request and use that snapshot only.
	snap atomic.Pointer[snapshot]
	// reloadMu serialises reloads so that an older snapshot can never
	// replace a newer one.
	reloadMu sync.Mutex
	running  atomic.Bool
	// outage is set while the source (the database) fails: from the
	// first failed reload to the next one that reaches it. The snapshot
	// keeps being served meanwhile; only Ready and /readyz change.
	outage atomic.Pointer[outage]
}

// outage records since when the source fails. Its errors are logged, not
// kept: /readyz is public, and a database error may name hosts and users.
type outage struct{ since time.Time }

// sourceFailed records a failed read of the source, keeping the time of
// the first failure of an outage.
func (s *Server) sourceFailed() {
	if s.outage.Load() == nil {
		s.outage.Store(&outage{since: s.clock.Now()})
	}
}

// notReady is why the server is not ready, "" when it is.
func (s *Server) notReady() string {
	why := ""
	snap := s.snap.Load()
	switch {
	case snap == nil:
		why = "no content loaded"
	case snap.notReady != "":
		why = snap.notReady
	}
	if o := s.outage.Load(); o != nil {
		down := "database unreachable since " + o.since.UTC().Format(time.RFC3339)
		if why == "" {
			why = down + "; serving the content loaded before"
		} else {
			why += "; " + down
		}
	}
	return why
}

// New checks cfg and returns a Server with no content loaded yet. Content is
// loaded by Reload or when Run starts.
func New(cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, errors.New("server: config: Source is required")
	}
	if cfg.ResignEvery < 0 || cfg.PollEvery < 0 || cfg.ShutdownTimeout < 0 {
		return nil, errors.New("server: config: negative interval")
	}
	if cfg.ReportRate < 0 || cfg.ReportBurst < 0 || cfg.ReportClientRate < 0 || cfg.ReportClientBurst < 0 || cfg.ReportClients < 0 {
		return nil, errors.New("server: config: negative report rate, burst or client count")
	}
	for _, p := range cfg.ReportProxies {
		if !p.IsValid() {
			return nil, errors.New("server: config: invalid report proxy prefix")
		}
	}
	if cfg.MaxConns < 0 {
		return nil, fmt.Errorf("server: config: connection cap %d is negative", cfg.MaxConns)
	}
	if cfg.IdleTimeout < 0 || cfg.ReadHeaderTimeout < 0 {
		return nil, fmt.Errorf("server: config: negative idle timeout (%v) or read header timeout (%v)",
			cfg.IdleTimeout, cfg.ReadHeaderTimeout)
	}
	s := &Server{
		source:            cfg.Source,
		reports:           cfg.Reports,
		devices:           cfg.Devices,
		deviceGate:        gateOf(cfg.Devices),
		devicePoll:        pollOf(cfg.Devices),
		resigner:          cfg.Resigner,
		resignEvery:       orDefault(cfg.ResignEvery, DefaultResignEvery),
		pollEvery:         orDefault(cfg.PollEvery, DefaultPollEvery),
		generationTimeout: DefaultGenerationTimeout,
		shutdownTimeout:   orDefault(cfg.ShutdownTimeout, DefaultShutdownTimeout),
		maxConns:          cfg.MaxConns,
		idleTimeout:       orDefault(cfg.IdleTimeout, DefaultIdleTimeout),
		readHeader:        orDefault(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		logger:            cfg.Logger,
		clock:             cfg.Clock,
		noPublicMetrics:   cfg.NoPublicMetrics,
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	if s.maxConns == 0 {
		s.maxConns = DefaultMaxConns()
	}
	rate, burst := cfg.ReportRate, cfg.ReportBurst
	if rate == 0 {
		rate = DefaultReportRate
	}
	if burst == 0 {
		burst = DefaultReportBurst
	}
	crate, cburst, clients := cfg.ReportClientRate, cfg.ReportClientBurst, cfg.ReportClients
	if crate == 0 {
		crate = DefaultReportClientRate
	}
	if cburst == 0 {
		cburst = DefaultReportClientBurst
	}
	if clients == 0 {
		clients = DefaultReportClients
	}
	s.limiter = newReportLimiter(rate, burst, crate, cburst, clients)
	s.reportProxies = append([]netip.Prefix(nil), cfg.ReportProxies...)
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Handler returns the server's HTTP handler. It answers 503 under /repo/
// until content is loaded. /healthz is liveness: 200 while the process
// serves HTTP. /readyz is readiness: 200 only once content with a root
// and a timestamp is loaded, else 503 with the reason.
func (s *Server) Handler() http.Handler { return (*handler)(s) }

// MetricsHandler serves the Prometheus metrics at any path, for mounting
// on another listener.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveMetrics(w, r, s.clock.Now()) })
}

// Ready says whether loaded content is servable and the source (the
// database) answered the latest reload, and if not, why: what /readyz
// answers. While the source is unreachable /repo/ keeps serving the
// content loaded before, but Ready is false ("database unreachable since
// ..."), so that a load balancer may prefer replicas that see the database.
func (s *Server) Ready() (bool, string) {
	why := s.notReady()
	return why == "", why
}

// Reload loads the source's content now, whatever its generation, and
// swaps it in. On error the previous content stays in service.
func (s *Server) Reload(ctx context.Context) error { return s.reload(ctx, true) }

// reload loads content when force is set or the source's generation differs
// from the served one. The generation is read before the content, so a
// change racing with the load is seen again on the next poll.
func (s *Server) reload(ctx context.Context, force bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	gctx, cancel := context.WithTimeout(ctx, s.generationTimeout)
	gen, err := s.source.Generation(gctx)
	cancel()
	if err != nil {
		s.metrics.reloadsErr.Add(1)
		if ctx.Err() == nil {
			s.sourceFailed()
		}
		return fmt.Errorf("server: reload: source generation: %w", err)
	}
	cur := s.snap.Load()
	if !force && cur != nil && cur.generation == gen {
		s.outage.Store(nil)
		return nil
	}
	c, err := s.source.Content(ctx)
	if err != nil {
		s.metrics.reloadsErr.Add(1)
		s.sourceFailed()
		return fmt.Errorf("server: reload: source content: %w", err)
	}
	s.outage.Store(nil)
	snap, err := newSnapshot(gen, c)
	if err != nil {
		s.metrics.reloadsErr.Add(1)
		return fmt.Errorf("server: reload generation %d: %w", gen, err)
	}
	s.snap.Store(snap)
	s.metrics.reloadsOK.Add(1)
	// Re-signing and purging bump the generation; only a change of what
	// is served is worth a line in the log.
	if cur != nil && cur.digest == snap.digest {
		s.logger.Debug("content reloaded, unchanged", "generation", gen)
		return nil
	}
	s.logger.Info("content loaded", "generation", gen,
		"metadata", len(snap.metadata), "payloads", len(snap.payloads))
	if snap.notReady != "" {
		s.logger.Warn("not ready: "+snap.notReady, "generation", gen)
	}
	return nil
}

// resign asks the Resigner to re-sign due metadata and reloads when it
// changed something.
func (s *Server) resign(ctx context.Context) error {
	changed, err := s.resigner.ResignDue(ctx)
	if err != nil {
		s.metrics.resignsErr.Add(1)
		return fmt.Errorf("server: resign: %w", err)
	}
	if !changed {
		s.metrics.resignsUnchg.Add(1)
		return nil
	}
	s.metrics.resignsChg.Add(1)
	s.logger.Info("online metadata re-signed")
	return s.reload(ctx, true)
}

// Run serves on ln until ctx is cancelled, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish for up to
// Config.ShutdownTimeout, and closes what is left. It loads content first
// (a failure is logged and retried by the poll loop, with /readyz
// answering 503 meanwhile) and runs the poll and resign loops while
// serving.
//
// When tlsConfig is non-nil Run serves HTTPS with a copy of it whose
// MinVersion is raised to TLS 1.2 if lower and whose TLS 1.2 cipher suites
// are replaced by the ECDHE AEAD ones (TLSCipherSuites), whatever the copy
// said; it must carry certificates. At most Config.MaxConns connections are
// open at once. Run returns nil after a clean shutdown and closes ln in
// every case.
func (s *Server) Run(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	if !s.running.CompareAndSwap(false, true) {
		ln.Close()
		return errors.New("server: Run called twice")
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.readHeader,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       s.idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(redactWriter{s.logger}, "", 0),
		// Requests must not be cancelled by the shutdown signal itself:
		// graceful shutdown lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if tlsConfig != nil {
		c := tlsConfig.Clone()
		if c.MinVersion < tls.VersionTLS12 {
			c.MinVersion = tls.VersionTLS12
		}
		c.CipherSuites = TLSCipherSuites()
		hs.TLSConfig = c
	}

	if err := s.reload(ctx, false); err != nil {
		s.logger.Error("initial content load failed; will retry", "err", err)
	}
	s.pollDevices(ctx)

	loopCtx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.pollLoop(loopCtx) })
	if s.resigner != nil {
		wg.Go(func() { s.resignLoop(loopCtx) })
	}
	defer func() {
		stopLoops()
		wg.Wait()
	}()

	useTLS := hs.TLSConfig != nil // read before Serve: ServeTLS modifies TLSConfig
	s.metrics.connsMax.Store(int64(s.maxConns))
	ln = newLimitListener(ln, s.maxConns, &s.metrics.connsOpen)
	serveErr := make(chan error, 1)
	go func() {
		if useTLS {
			serveErr <- hs.ServeTLS(ln, "", "")
		} else {
			serveErr <- hs.Serve(ln)
		}
	}()
	s.logger.Info("serving", "tls", useTLS, "max_conns", s.maxConns, "idle_timeout", s.idleTimeout)

	select {
	case err := <-serveErr:
		ln.Close() // ServeTLS fails on a bad TLS configuration before it serves
		return fmt.Errorf("server: serve: %w", err)
	case <-ctx.Done():
	}
	stopLoops()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		hs.Close()
		err = fmt.Errorf("server: graceful shutdown: %w", err)
	}
	if serr := <-serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("server: serve: %w", serr)
	}
	s.logger.Info("stopped")
	return err
}

func (s *Server) pollLoop(ctx context.Context) {
	t := time.NewTicker(s.pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.reload(ctx, false); err != nil && ctx.Err() == nil {
			s.logger.Error("content reload failed; serving previous content", "err", err)
		}
		s.pollDevices(ctx)
	}
}

// pollDevices lets the device handler refresh its caches.
func (s *Server) pollDevices(ctx context.Context) {
	if s.devicePoll == nil {
		return
	}
	// A poll may read every device (after a generation change): longer
	// than the generation query, still bounded.
	gctx, cancel := context.WithTimeout(ctx, 6*s.generationTimeout)
	defer cancel()
	if err := s.devicePoll(gctx); err != nil && ctx.Err() == nil {
		s.logger.Error("device cache poll failed; serving the devices known before", "err", err)
	}
}

func (s *Server) resignLoop(ctx context.Context) {
	t := time.NewTicker(s.resignEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.resign(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("re-signing failed", "err", err)
		}
	}
}

// addrPattern matches IPv4 and bracketed IPv6 addresses with an optional
// port, as net/http writes them in its error log.
var addrPattern = regexp.MustCompile(`\[[0-9A-Fa-f:.%a-zA-Z0-9]+\](:\d+)?|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`)

// redactWriter turns net/http's error log lines ("http: TLS handshake
// error from 203.0.113.9:4711: EOF") into slog records with every client
// address replaced by "[redacted]".
type redactWriter struct{ logger *slog.Logger }

func (r redactWriter) Write(p []byte) (int, error) {
	msg := addrPattern.ReplaceAllString(string(p), "[redacted]")
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	r.logger.Warn("http server", "detail", msg)
	return len(p), nil
}

// pollOf returns h's Poll method, or nil.
func pollOf(h http.Handler) func(context.Context) error {
	if p, ok := h.(interface{ Poll(context.Context) error }); ok {
		return p.Poll
	}
	return nil
}

// gateOf returns h's Gate method, or nil.
func gateOf(h http.Handler) func(http.ResponseWriter, *http.Request) bool {
	if g, ok := h.(interface {
		Gate(http.ResponseWriter, *http.Request) bool
	}); ok {
		return g.Gate
	}
	return nil
}
