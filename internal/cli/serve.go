package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/uptrust/uptrust/internal/server"
)

// cmdServe serves the project until interrupted, and applies the retention
// of uptrust.json at start and every purgeEvery while it runs.
func cmdServe(ctx context.Context, env Env, args []string) error {
	fs, dir := flags(env, "serve")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	cert := fs.String("tls-cert", "", "TLS certificate (PEM)")
	key := fs.String("tls-key", "", "TLS private key (PEM)")
	insecure := fs.Bool("insecure-http", false, "allow plain HTTP on a non-loopback address")
	maxConns := fs.Int("max-conns", 0, "connections open at once; more wait to be accepted (0: half the descriptor limit, at most 4096)")
	idle := fs.Duration("idle-timeout", server.DefaultIdleTimeout, "close a keep-alive connection idle this long")
	readHeader := fs.Duration("read-header-timeout", server.DefaultReadHeaderTimeout, "time for a client's TLS handshake and request headers")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("serve takes no arguments")
	}
	logger := slog.New(slog.NewTextHandler(env.Stderr, nil))
	if env.Getenv("GOGC") == "" {
		// The server's heap is small (metadata snapshots, buffers); fewer
		// collections buy throughput on the update-check path.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := openProject(ctx, env, *dir)
	if err != nil {
		return err
	}
	defer p.Close()
	srv, err := server.New(server.Config{Source: p, Reports: p, Resigner: p, Logger: logger,
		MaxConns: *maxConns, IdleTimeout: *idle, ReadHeaderTimeout: *readHeader})
	if err != nil {
		return err
	}
	ln, tlsCfg, err := server.ListenConfig{Addr: *listen, CertFile: *cert, KeyFile: *key, InsecureHTTP: *insecure}.Listen(ctx, logger)
	if err != nil {
		return err
	}
	logger.Info("serving", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "dir", *dir)
	// The purge loop ends before the project closes.
	pctx, stopPurge := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { purgeLoop(pctx, p, logger, purgeEvery) })
	err = srv.Run(ctx, ln, tlsCfg)
	stopPurge()
	wg.Wait()
	return err
}
