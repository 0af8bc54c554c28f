// Command pprofwrap is the uptrust command line with net/http/pprof served
// on $UPTRUST_PPROF_LISTEN (a loopback address) when it is set, for
// profiling `uptrust serve` under load in benchmarks
// (scripts/bench-managed-checks.sh) without building pprof into uptrust.
//
// Usage: UPTRUST_PPROF_LISTEN=127.0.0.1:6060 go run ./bench/pprofwrap serve ...
package main

import (
	"context"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"

	"github.com/uptrust/uptrust/internal/cli"
)

func main() {
	if addr := os.Getenv("UPTRUST_PPROF_LISTEN"); addr != "" {
		go func() {
			if err := http.ListenAndServe(addr, nil); err != nil {
				fmt.Fprintln(os.Stderr, "pprofwrap:", err)
			}
		}()
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.DefaultEnv()))
}
