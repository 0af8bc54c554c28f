package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/demo"
)

func cmdDemo(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "demo", Synopsis: "run a whole update of simulated devices against a temporary project and server",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			n := fs.Int("devices", 0, "number of simulated devices (default 10, or 30 with --managed)")
			asJSON := fs.Bool("json", false, "print the summary as JSON")
			isManaged := fs.Bool("managed", false, "managed mode: devices enrol, a rollout in waves halts itself on a failing wave")
			waves := fs.String("waves", "", "with --managed: cumulative wave `SHARES` (default 10%,40%,100%)")
			maxFailure := fs.String("max-failure", "", "with --managed: highest tolerated failure ratio of a wave (default 20%)")
			minSuccess := fs.String("min-success", "", "with --managed: successes a wave needs before the next (default 2)")
			soak := fs.String("soak", "", "with --managed: soak of each wave; the demo does not wait, so only 0s (default)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("demo takes no arguments")
				}
				if *n < 0 {
					return usagef("demo: --devices %d: want a positive number", *n)
				}
				var progress io.Writer = env.Stdout
				if *asJSON {
					progress = env.Stderr
				}
				if *isManaged {
					return runManagedDemo(ctx, env, demo.ManagedOptions{Devices: *n, Waves: *waves, MaxFailure: *maxFailure,
						MinSuccess: *minSuccess, Soak: *soak, Progress: progress}, *asJSON)
				}
				if *waves != "" || *maxFailure != "" || *minSuccess != "" || *soak != "" {
					return usagef("demo: --waves, --max-failure, --min-success and --soak need --managed")
				}
				if *n == 0 {
					*n = 10
				}
				s, err := demo.Run(ctx, demo.Options{Devices: *n, Progress: progress})
				if err != nil {
					return err
				}
				if *asJSON {
					enc := json.NewEncoder(env.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(s)
				}
				fmt.Fprintln(env.Stdout)
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DEVICE\tBEFORE\tAFTER\tSLOT\tREBOOTS\tOUTCOME\tIMAGE\tFETCHED\tWHY")
				var total int64
				deltas := 0
				for _, r := range s.Results {
					img := "verified"
					if !r.ImageVerified {
						img = "MISMATCH"
					}
					fetched := "full " + sizeString(r.Downloaded)
					if r.Delta {
						fetched = "delta " + sizeString(r.Downloaded)
						deltas++
					}
					total += r.Downloaded
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Name, r.Before, r.After, r.Slot, r.Reboots, r.Outcome, img, fetched, r.Reason)
				}
				tw.Flush()
				fmt.Fprintf(env.Stdout, "\n%d devices: %d updated to %s, %d rolled back, %d failed, in %.1f s\n",
					s.Devices, s.Updated, s.Release, s.RolledBack, s.Failed, s.Seconds)
				fmt.Fprintf(env.Stdout, "%d devices installed from a delta; %s downloaded in all, instead of %s of full images\n",
					deltas, sizeString(total), sizeString(int64(s.ImageBytes)*int64(s.Devices)))
				fmt.Fprintf(env.Stdout, "anonymous reports received by the server for %s: %s\n", s.Release, s.ReportsText())
				if s.Failed > 0 {
					return fmt.Errorf("demo: %d devices failed", s.Failed)
				}
				return nil
			}
		}}
}

// runManagedDemo runs `uptrust demo --managed` and prints its summary.
// It fails unless the rollout halted itself, as the demo shows.
func runManagedDemo(ctx context.Context, env Env, o demo.ManagedOptions, asJSON bool) error {
	s, err := demo.RunManaged(ctx, o)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(env.Stdout)
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tWAVE\tBEFORE\tAFTER\tHEALTH\tHISTORY OF "+s.Release)
		for _, r := range s.Results {
			health := "ok"
			if r.Failing {
				health = "FAILS"
			}
			hist := strings.Join(r.Events, " > ")
			if !r.Offered {
				hist = "never offered"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Name, r.Wave, r.Before, r.After, health, hist)
		}
		tw.Flush()
		fmt.Fprintf(env.Stdout, "\n%s", s.Text())
		fmt.Fprintf(env.Stdout, "in %.1f s\n", s.Seconds)
	}
	if s.Phase != "halted" {
		return fmt.Errorf("demo: the rollout did not halt itself (it is %s)", s.Phase)
	}
	return nil
}

// sizeString formats n bytes for people: B, KiB or MiB.
func sizeString(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
