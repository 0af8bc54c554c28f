package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/demo"
)

func cmdDemo(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "demo", Synopsis: "run a whole update of simulated devices against a temporary project and server",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			n := fs.Int("devices", 10, "number of simulated devices")
			asJSON := fs.Bool("json", false, "print the summary as JSON")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("demo takes no arguments")
				}
				var progress io.Writer = env.Stdout
				if *asJSON {
					progress = env.Stderr
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
