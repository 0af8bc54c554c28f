package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/sim"
)

// cmdSimulateDevice provisions a simulated device (file-backed A/B slots and
// a U-Boot-like environment) that the real uptrust-agent binary can update:
// for trying the agent on a workstation and for the benchmarks.
func cmdSimulateDevice(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "simulate-device", Args: "DEVICE-DIR", Files: true, Synopsis: "provision a simulated device (file-backed A/B slots) the real uptrust-agent can update",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			server := fs.String("server", "http://127.0.0.1:8080", "server URL")
			productName := fs.String("product", "", "product")
			hw := fs.String("hardware", "", "hardware revision")
			factory := fs.String("factory", "", "factory image file for slot a")
			version := fs.String("version", "", "version of the factory image")
			sv := fs.String("security-version", "0", "security version of the factory image")
			reboot := fs.String("reboot-command", "true", "command the agent runs to reboot (space-separated)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 || *productName == "" || *hw == "" || *factory == "" || *version == "" {
					return usagef("simulate-device: want DEVICE-DIR --product P --hardware H --factory FILE --version V")
				}
				secv, err := strconv.ParseUint(*sv, 10, 64)
				if err != nil {
					return usagef("simulate-device: --security-version %q is not a number", *sv)
				}
				rr, err := os.ReadFile(project.DeviceRootPath(*dir, deviceapi.RepoRelease))
				if err != nil {
					return fmt.Errorf("simulate-device: %w (is --dir the project?)", err)
				}
				fr, err := os.ReadFile(project.DeviceRootPath(*dir, deviceapi.RepoFleet))
				if err != nil {
					return fmt.Errorf("simulate-device: %w", err)
				}
				f, err := os.Open(*factory)
				if err != nil {
					return fmt.Errorf("simulate-device: %w", err)
				}
				defer f.Close()
				d, err := sim.New(pos[0], sim.Spec{Name: filepath.Base(pos[0]), Server: *server, Product: *productName, Hardware: *hw,
					ReleaseRoot: rr, FleetRoot: fr, FactoryReader: f, Version: *version, SecurityVersion: secv,
					RebootCommand: strings.Fields(*reboot)})
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "simulated device in %s: run uptrust-agent --config %s check\n", d.Dir, filepath.Join(d.Dir, "agent.json"))
				return nil
			}
		}}
}

// cmdSimulateBoot power-cycles a simulated device: the bootloader logic runs
// on its environment and the system "comes up" on the chosen slot.
func cmdSimulateBoot(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "simulate-boot", Args: "DEVICE-DIR", Files: true, Synopsis: "power-cycle a simulated device: its bootloader chooses the slot to boot",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			return func(_ context.Context, args []string) error {
				if len(args) != 1 {
					return usagef("simulate-boot: want DEVICE-DIR")
				}
				n, err := fileslot.Boot(filepath.Join(args[0], "slots"))
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "booted slot %s\n", n)
				return nil
			}
		}}
}
