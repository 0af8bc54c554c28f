package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/fleetsim"
	"github.com/uptrust/uptrust/internal/project"
)

func cmdSim(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "sim", Synopsis: "run many simulated managed devices against a server (load tests)",
		Long: `Every device has its own Ed25519 key and signs every request, enrols with the
enrolment token of --token-file, verifies both repositories with TUF, downloads
and hashes the release into an in-memory slot, and sends the outcome as a signed
event (failed for a --fail-ratio share of the devices). The devices check as
the managed agent does: after a full check that found nothing to install, a
check is one conditional request of the device's own fleet timestamp, and a
304 Not Modified ends it, until a full refresh is due (every
--full-check-every, before trusted metadata expires, or when something is
pending); a device whose inventory changed after an update enrols again with
it. --full-verify runs TUF's whole workflow at every check. After the enrolment of
all devices, each checks every --interval (± --jitter). The run ends after
--duration, after --checks checks per device, or on Ctrl-C, and prints the
summary: devices enrolled and accepted, checks per second, p50/p99 of a check,
updates succeeded and failed, errors by kind, memory.

--server is the server's public (device) listener, not the management API. The
devices trust the roots --release-root and --fleet-root, by default the
project's device roots under --dir (device/release-root.json, device/fleet-root.json).`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			server := fs.String("server", "", "the server's public `URL`, such as http://127.0.0.1:8080 (required)")
			product := fs.String("product", "", "the managed `product` the devices belong to (required)")
			n := fs.Int("devices", 100, "number of simulated devices")
			interval := fs.Duration("interval", time.Minute, "time between two checks of a device (0: back to back)")
			jitter := fs.Float64("jitter", 0.1, "share of --interval drawn at random either way, 0 to 0.5")
			failRatio := fs.Float64("fail-ratio", 0, "share of devices whose install fails, 0 to 1")
			duration := fs.Duration("duration", 0, "stop polling after this long (0: no limit)")
			rounds := fs.Int("rounds", 1, "repeat the polling of --duration this many times, each round reported on its own")
			checks := fs.Int("checks", 0, "stop once every device made this many checks (0: no limit)")
			tokenFile := fs.String("token-file", "", "`file` whose first line is the enrolment token")
			hardware := fs.String("hardware", "", "the devices' hardware revision (default: any)")
			version := fs.String("version", "1.0.0", "the factory release the devices run")
			sv := fs.Uint64("security-version", 1, "the factory release's security version")
			releaseRoot := fs.String("release-root", "", "trusted release root.json `file` (default: the project's)")
			fleetRoot := fs.String("fleet-root", "", "trusted fleet root.json `file` (default: the project's)")
			conc := fs.Int("concurrency", 64, "checks in flight at once")
			conns := fs.Int("conns", 0, "HTTP connections kept open to the server (default: --concurrency)")
			cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the polling (not of the enrolment) to `file`")
			full := fs.Bool("full-verify", false, "run TUF's whole client workflow at every check (default: the managed agent's conditional checks)")
			fullEvery := fs.Duration("full-check-every", agent.DefaultFullCheckEvery, "the agent's full_check_every: the longest time between two full checks of a device")
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("sim takes no arguments")
				}
				if *server == "" || *product == "" {
					return usagef("sim: --server and --product are required")
				}
				if *fullEvery <= 0 {
					return usagef("sim: --full-check-every %v: want a positive duration", *fullEvery)
				}
				token := ""
				if *tokenFile != "" {
					b, err := os.ReadFile(*tokenFile)
					if err != nil {
						return fmt.Errorf("sim: enrolment token: %w", err)
					}
					token, _, _ = strings.Cut(string(b), "\n")
					if token = strings.TrimSpace(token); token == "" {
						return fmt.Errorf("sim: enrolment token file %s is empty", *tokenFile)
					}
				}
				roots := [2][]byte{}
				for i, f := range []struct{ flag, name string }{{*releaseRoot, "release"}, {*fleetRoot, "fleet"}} {
					p := f.flag
					if p == "" {
						p = project.DeviceRootPath(*dir, f.name)
					}
					b, err := os.ReadFile(p)
					if err != nil {
						return fmt.Errorf("sim: %s root: %w (give --%s-root FILE or --dir PROJECT)", f.name, err, f.name)
					}
					roots[i] = b
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				var progress = env.Stdout
				if *asJSON {
					progress = env.Stderr
				}
				var polling func(bool)
				var profErr error
				if *cpuProfile != "" {
					f, err := os.Create(*cpuProfile)
					if err != nil {
						return fmt.Errorf("sim: --cpuprofile: %w", err)
					}
					defer f.Close()
					polling = func(started bool) {
						if started {
							profErr = pprof.StartCPUProfile(f)
						} else if profErr == nil {
							pprof.StopCPUProfile()
						}
					}
				}
				sum, err := fleetsim.Run(ctx, fleetsim.Options{Polling: polling, FullVerify: *full, FullCheckEvery: *fullEvery, Server: *server, Product: *product, Hardware: *hardware,
					Version: *version, SecurityVersion: *sv, Token: token, ReleaseRoot: roots[0], FleetRoot: roots[1],
					Devices: *n, Interval: *interval, Jitter: *jitter, FailRatio: *failRatio, Duration: *duration,
					Checks: *checks, Rounds: *rounds, Concurrency: *conc, Conns: *conns, Progress: progress})
				if sum == nil {
					return err
				}
				if profErr != nil {
					err = errors.Join(err, fmt.Errorf("sim: --cpuprofile: %w", profErr))
				}
				if *asJSON {
					enc := json.NewEncoder(env.Stdout)
					enc.SetIndent("", "  ")
					if jerr := enc.Encode(sum); jerr != nil {
						return errors.Join(err, jerr)
					}
					return err
				}
				printSimSummary(env, sum)
				return err
			}
		}}
}

func printSimSummary(env Env, s *fleetsim.Summary) {
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "devices\t%d: %d enrolled, %d accepted, %d pending, %d refused (enrolment %.1f s)\n",
		s.Devices, s.Enrolled, s.Accepted, s.Pending, s.Refused, s.EnrolSeconds)
	fmt.Fprintf(w, "checks\t%d in %.1f s: %.0f/s, p50 %.1f ms, p99 %.1f ms (schedule lag p99 %.1f ms)\n",
		s.Checks, s.Seconds, s.ChecksPerSec, s.CheckP50Ms, s.CheckP99Ms, s.LagP99Ms)
	for i, r := range s.Rounds {
		if len(s.Rounds) > 1 {
			fmt.Fprintf(w, "  round %d\t%d checks in %.1f s: %.0f/s, p50 %.1f ms, p99 %.1f ms\n", i+1, r.Checks, r.Seconds, r.ChecksPerSec, r.CheckP50Ms, r.CheckP99Ms)
		}
	}
	fmt.Fprintf(w, "requests\t%d signed (%.0f/s); %d checks ran TUF's whole workflow\n", s.Requests, s.RequestsPerS, s.Verified)
	fmt.Fprintf(w, "updates\t%d succeeded, %d failed, %s of payload hashed\n", s.Succeeded, s.Failed, sizeString(s.PayloadBytes))
	var vs []string
	for v, n := range s.Versions {
		vs = append(vs, fmt.Sprintf("%s: %d", v, n))
	}
	fmt.Fprintf(w, "running\t%s\n", strings.Join(slices.Sorted(slices.Values(vs)), ", "))
	fmt.Fprintf(w, "errors\t%d\n", s.Errors)
	for _, k := range s.ErrorKinds {
		fmt.Fprintf(w, "  %s\t%d, e.g. %s\n", k.Kind, k.Count, k.Example)
	}
	fmt.Fprintf(w, "memory\tRSS %s (peak %s), heap %s, %.0f B of heap per device\n",
		sizeString(s.RSSBytes), sizeString(s.PeakRSSBytes), sizeString(int64(s.HeapBytes)), s.HeapPerDevice)
	w.Flush()
}
