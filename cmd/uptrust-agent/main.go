// Command uptrust-agent is the device side of uptrust.
package main

import (
	"context"
	"os"

	"github.com/uptrust/uptrust/internal/agent/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.DefaultEnv()))
}
