// Command uptrust-agent is the device side of uptrust.
package main

import (
	"context"
	"os"

	"github.com/uptrust/uptrust/internal/agent/cli"
	"github.com/uptrust/uptrust/internal/cmdline"
)

// buildTime is when this binary was built, RFC 3339, set with
//
//	go build -ldflags "-X main.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/uptrust-agent
//
// The agent never verifies update metadata against an earlier time, however
// far back the device's clock reads. Empty: the commit time the Go
// toolchain stamps into a build from a git checkout, if any.
var buildTime string

// version is the release, set with -ldflags "-X main.version=1.2.3"; empty:
// the module version the Go toolchain stamped, else "devel".
var version string

func main() {
	env := cli.DefaultEnv()
	env.BuildTime = buildTime
	env.Version = cmdline.ReadVersion(version, buildTime)
	os.Exit(cli.Main(context.Background(), os.Args[1:], env))
}
