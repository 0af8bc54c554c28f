// Command pgserver starts a throwaway PostgreSQL server for benchmarks,
// exactly as the tests do (package pgtest: initdb into a temporary directory,
// a unix socket there, run as "nobody" when root), creates one database,
// prints its URL on standard output and runs until interrupted, then stops
// the server and removes its directory.
//
// Usage: go run ./bench/pgserver [-db NAME]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

func main() {
	name := flag.String("db", "bench", "database to create")
	flag.Parse()
	if err := run(*name); err != nil {
		fmt.Fprintln(os.Stderr, "pgserver:", err)
		os.Exit(1)
	}
}

func run(name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := pgtest.Binaries()
	if err != nil {
		return err
	}
	srv, err := pgtest.Start(ctx, bin)
	if err != nil {
		return err
	}
	defer srv.Stop()
	if err := srv.CreateDatabase(ctx, name); err != nil {
		return err
	}
	fmt.Println(srv.URL(name))
	<-ctx.Done()
	return nil
}
