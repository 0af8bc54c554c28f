// Command uptrust is the manufacturer's side of uptrust: release signing,
// rollouts, the update server and the demo.
package main

import (
	"context"
	"os"

	"github.com/uptrust/uptrust/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.DefaultEnv()))
}
