package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/uptrust/uptrust/internal/server"
)

func cmdServe(ctx context.Context, env Env, args []string) error {
	fs, dir := flags(env, "serve")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	cert := fs.String("tls-cert", "", "TLS certificate (PEM)")
	key := fs.String("tls-key", "", "TLS private key (PEM)")
	insecure := fs.Bool("insecure-http", false, "allow plain HTTP on a non-loopback address")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("serve takes no arguments")
	}
	logger := slog.New(slog.NewTextHandler(env.Stderr, nil))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := openProject(ctx, env, *dir)
	if err != nil {
		return err
	}
	defer p.Close()
	srv, err := server.New(server.Config{Source: p, Reports: p, Resigner: p, Logger: logger})
	if err != nil {
		return err
	}
	ln, tlsCfg, err := server.ListenConfig{Addr: *listen, CertFile: *cert, KeyFile: *key, InsecureHTTP: *insecure}.Listen(ctx, logger)
	if err != nil {
		return err
	}
	logger.Info("serving", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "dir", *dir)
	return srv.Run(ctx, ln, tlsCfg)
}
