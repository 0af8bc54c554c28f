// Command uptrust is the manufacturer's side of uptrust: release signing,
// rollouts, the update server and the demo.
package main

import (
	"context"
	"os"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/cmdline"
)

// version and buildTime are linked into release builds:
//
//	go build -ldflags "-X main.version=1.2.3 -X main.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/uptrust
//
// Empty: the version and commit time the Go toolchain stamped, if any (see
// cmdline.ReadVersion).
var version, buildTime string

func main() {
	env := cli.DefaultEnv()
	env.Version = cmdline.ReadVersion(version, buildTime)
	os.Exit(cli.Main(context.Background(), os.Args[1:], env))
}
