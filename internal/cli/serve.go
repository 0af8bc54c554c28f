package cli

import (
	"context"
	"crypto/tls"
	"flag"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/server"
)

// cmdServe serves the project until interrupted, and applies the retention
// of uptrust.json at start and every purgeEvery while it runs.
func cmdServe(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "serve", Synopsis: "serve the project to devices until interrupted (and apply the retention every hour)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			db := databaseFlag(fs, env)
			blobs := blobsFlag(fs, env)
			listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
			cert := fs.String("tls-cert", "", "TLS certificate (PEM)")
			key := fs.String("tls-key", "", "TLS private key (PEM)")
			insecure := fs.Bool("insecure-http", false, "allow plain HTTP on a non-loopback address")
			maxConns := fs.Int("max-conns", 0, "connections open at once; more wait to be accepted (0: half the descriptor limit, at most 4096)")
			idle := fs.Duration("idle-timeout", server.DefaultIdleTimeout, "close a keep-alive connection idle this long")
			readHeader := fs.Duration("read-header-timeout", server.DefaultReadHeaderTimeout, "time for a client's TLS handshake and request headers")
			clientRate := fs.Float64("report-client-rate", server.DefaultReportClientRate, "reports per second one client address may send")
			clientBurst := fs.Int("report-client-burst", server.DefaultReportClientBurst, "reports one client address may send at once")
			rowsPerDay := fs.Int("report-rows-per-day", project.DefaultReportRowsPerDay, "report counters one UTC day may create")
			logFormat := fs.String("log-format", "text", "log records as text or json")
			proxiesFlag := fs.String("report-proxies", "", "comma-separated CIDR prefixes of reverse proxies whose X-Forwarded-For names the client")
			adminListen := fs.String("admin-listen", "", "serve the management API (/api/v1) and /metrics on this address, e.g. 127.0.0.1:9090 (loopback unless TLS or --insecure-http; off when empty)")
			bootstrap := fs.String("bootstrap-token-file", "", "when no valid admin token exists, create one and write it to `FILE` (0600); otherwise do nothing")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("serve takes no arguments")
				}
				if *clientRate <= 0 || *clientBurst <= 0 || *rowsPerDay <= 0 {
					return usagef("serve: --report-client-rate, --report-client-burst and --report-rows-per-day must be positive")
				}
				var proxies []netip.Prefix
				for _, f := range strings.Split(*proxiesFlag, ",") {
					if f = strings.TrimSpace(f); f == "" {
						continue
					}
					pr, err := netip.ParsePrefix(f)
					if err != nil {
						return usagef("serve: --report-proxies: %q is not a CIDR prefix", f)
					}
					proxies = append(proxies, pr)
				}
				logger, err := server.NewLogger(env.Stderr, *logFormat)
				if err != nil {
					return usagef("serve: %v", err)
				}
				if env.Getenv("GOGC") == "" {
					// The server's heap is small (metadata snapshots, buffers); fewer
					// collections buy throughput on the update-check path.
					debug.SetGCPercent(400)
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				p, err := openProjectStores(ctx, env, *dir, *db, *blobs)
				if err != nil {
					return err
				}
				defer p.Close()
				if project.IsServerKit(*dir) {
					seeded, err := p.SeedTrusted(ctx)
					if err != nil {
						return err
					}
					if seeded {
						logger.Info("trusting the root chains of the server kit; publish with uptrust push", "dir", *dir)
					}
				}
				if err := p.CheckServable(ctx); err != nil {
					return err
				}
				if *bootstrap != "" {
					// A name of the day: an expired bootstrap token of an
					// earlier day still holds its name.
					name := "admin-bootstrap-" + p.Clock.Now().UTC().Format("20060102")
					made, err := p.BootstrapAdminToken(ctx, *bootstrap, name, 0)
					if err != nil {
						return err
					}
					if made {
						logger.Info("created an admin token", "name", name, "file", *bootstrap)
					} else {
						logger.Info("a valid admin token exists; --bootstrap-token-file left alone", "file", *bootstrap)
					}
				}
				p.ReportRowsPerDay = *rowsPerDay
				srv, err := server.New(server.Config{Source: p, Reports: p, Resigner: p, Devices: managed.New(p), Logger: logger,
					MaxConns: *maxConns, IdleTimeout: *idle, ReadHeaderTimeout: *readHeader,
					ReportClientRate: *clientRate, ReportClientBurst: *clientBurst, ReportProxies: proxies,
					// The public listener never serves metrics (nor the API).
					NoPublicMetrics: true})
				if err != nil {
					return err
				}
				ln, tlsCfg, err := server.ListenConfig{Addr: *listen, CertFile: *cert, KeyFile: *key, InsecureHTTP: *insecure}.Listen(ctx, logger)
				if err != nil {
					return err
				}
				var adminH http.Handler
				var adminLn net.Listener
				var adminTLS *tls.Config
				if *adminListen != "" {
					if adminH, err = adminHandler(p, srv, *listen, *adminListen, *cert != ""); err != nil {
						ln.Close()
						return err
					}
					adminLn, adminTLS, err = server.ListenConfig{Addr: *adminListen, CertFile: *cert, KeyFile: *key, InsecureHTTP: *insecure}.Listen(ctx, logger)
					if err != nil {
						ln.Close()
						return err
					}
				}
				logger.Info("serving", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "dir", *dir, "database", p.DatabaseName(), "blobs", p.Blobs.String(),
					// The id under which this process holds the re-signing
					// lease (the leases table's holder), so that an operator
					// can tell which replica re-signs.
					"lease_holder", p.LeaseHolder())
				// The purge loop and the admin listener end before the
				// project closes.
				pctx, stopPurge := context.WithCancel(ctx)
				var wg sync.WaitGroup
				wg.Go(func() { purgeLoop(pctx, p, logger, purgeEvery) })
				if adminLn != nil {
					logger.Info("serving the management API and metrics", "admin_addr", adminLn.Addr().String(), "tls", adminTLS != nil)
					wg.Go(func() {
						if err := api.Serve(pctx, adminLn, adminTLS, adminH); err != nil {
							logger.Error("admin listener failed", "err", err)
						}
					})
				}
				err = srv.Run(ctx, ln, tlsCfg)
				stopPurge()
				wg.Wait()
				// Another replica takes re-signing over at its next tick
				// rather than once the lease expires.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if rerr := p.ReleaseResignLease(rctx); rerr != nil {
					logger.Warn("could not release the re-signing lease; another server takes it over when it expires", "err", rerr)
				}
				cancel()
				return err
			}
		}}
}

// adminHandler builds what --admin-listen serves: the management API,
// authenticating the project's tokens (uptrust token create) and audited in
// the project's log, and the metrics.
func adminHandler(p *project.Project, srv *server.Server, listen, adminListen string, useTLS bool) (http.Handler, error) {
	// report_k and retention are read from the project at each request.
	a, err := api.New(api.Config{Project: p, Ready: srv.Ready,
		Settings: api.Settings{PublicListen: listen, AdminListen: adminListen, TLS: useTLS}})
	if err != nil {
		return nil, err
	}
	return api.AdminHandler(a, srv.MetricsHandler()), nil
}
