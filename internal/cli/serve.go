package cli

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/server"
)

// cmdServe serves the project until interrupted, and applies the retention
// of uptrust.json at start and every purgeEvery while it runs.
func cmdServe(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "serve", Synopsis: "serve the project to devices until interrupted (and apply the retention every hour)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
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
				p, err := openProjectBlobs(ctx, env, *dir, *blobs)
				if err != nil {
					return err
				}
				defer p.Close()
				if err := p.CheckServable(ctx); err != nil {
					return err
				}
				p.ReportRowsPerDay = *rowsPerDay
				srv, err := server.New(server.Config{Source: p, Reports: p, Resigner: p, Logger: logger,
					MaxConns: *maxConns, IdleTimeout: *idle, ReadHeaderTimeout: *readHeader,
					ReportClientRate: *clientRate, ReportClientBurst: *clientBurst, ReportProxies: proxies})
				if err != nil {
					return err
				}
				ln, tlsCfg, err := server.ListenConfig{Addr: *listen, CertFile: *cert, KeyFile: *key, InsecureHTTP: *insecure}.Listen(ctx, logger)
				if err != nil {
					return err
				}
				logger.Info("serving", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "dir", *dir, "blobs", p.Blobs.String())
				// The purge loop ends before the project closes.
				pctx, stopPurge := context.WithCancel(ctx)
				var wg sync.WaitGroup
				wg.Go(func() { purgeLoop(pctx, p, logger, purgeEvery) })
				err = srv.Run(ctx, ln, tlsCfg)
				stopPurge()
				wg.Wait()
				return err
			}
		}}
}
