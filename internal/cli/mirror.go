package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/mirror"
	"github.com/uptrust/uptrust/internal/progress"
	"github.com/uptrust/uptrust/internal/project"
)

// cmdMirror writes the public /repo/ tree as static files (export) and
// keeps it current (sync). Both re-sign due online roles first, exactly as
// `uptrust serve` does on its own, so run sync well within half a
// timestamp's lifetime (dist/systemd/uptrust-mirror-sync.timer).
func cmdMirror(env Env) *cmdline.Command {
	export := &cmdline.Command{Name: "export", Args: "DIR", Files: true, Synopsis: "write the public /repo/ tree as static files into DIR",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			copyFlag := fs.Bool("copy", false, "copy payloads instead of hard-linking them from the blob store")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("mirror export takes one directory")
				}
				return runMirror(ctx, env, *dir, "export", pos[0], mirror.Options{Copy: *copyFlag})
			}
		}}
	sync := &cmdline.Command{Name: "sync", Args: "DIR", Files: true, Synopsis: "bring the mirror in DIR up to date (run it at least every quarter of a timestamp's lifetime)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			copyFlag := fs.Bool("copy", false, "copy payloads instead of hard-linking them from the blob store")
			grace := fs.Duration("grace", mirror.DefaultGrace, "how long files that are no longer published stay (0: remove at once)")
			verify := fs.Bool("verify", false, "re-hash the payloads already in the mirror and replace damaged ones")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("mirror sync takes one directory")
				}
				o := mirror.Options{Copy: *copyFlag, Grace: *grace, Verify: *verify}
				if o.Grace == 0 {
					o.Grace = -1 // the flag's 0 means no grace; Options' 0 means the default
				} else if o.Grace < 0 {
					return usagef("--grace must not be negative")
				}
				return runMirror(ctx, env, *dir, "sync", pos[0], o)
			}
		}}
	return &cmdline.Command{Name: "mirror", Synopsis: "publish the repositories as static files for any web server or CDN",
		Long: `Both subcommands re-sign due online roles first, exactly as uptrust serve does on
its own.`,
		Sub: []*cmdline.Command{export, sync}}
}

// runMirror runs mirror export or sync of the project in dir into out;
// o carries the flags.
func runMirror(ctx context.Context, env Env, dir, sub, out string, o mirror.Options) error {
	p, err := openProject(ctx, env, dir)
	if err != nil {
		return err
	}
	defer p.Close()
	o.Resigner, o.Repositories, o.Clock = p, []string{deviceapi.ReleaseBase, deviceapi.FleetBase}, p.Clock
	o.Progress = progress.ForWriter(env.Stderr, false)
	var res mirror.Result
	if sub == "export" {
		res, err = mirror.Export(ctx, out, p, o)
	} else {
		res, err = mirror.Sync(ctx, out, p, o)
	}
	if err != nil {
		return err // mirror errors name the directory or file
	}
	fmt.Fprintf(env.Stdout, "mirror %s: %d files written (%d payloads linked, %d copied), %d unchanged, %d removed, %d kept for the grace period\n",
		out, res.Written, res.Linked, res.Copied, res.Unchanged, res.Removed, res.Kept)
	for _, ts := range res.Timestamps {
		fmt.Fprintf(env.Stdout, "  %s: timestamp v%d, expires %s\n", ts.Repository, ts.Version, ts.Expires.UTC().Format(time.RFC3339))
	}
	if sub == "export" {
		fmt.Fprintf(env.Stdout, "serve %s with any web server (see README, \"Static mirrors and CDNs\"); run `uptrust mirror sync %s` at least every %v\n",
			out, out, shortDuration(syncEvery(p)))
	}
	return nil
}

// shortDuration drops the zero minutes and seconds time.Duration prints
// ("6h", "1h30m", "45m").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// syncEvery is the longest advisable interval between syncs: timestamps
// are re-signed when half their lifetime is left, and a sync must publish
// the new one before the old expires, with room for a failed run.
func syncEvery(p *project.Project) time.Duration {
	return (p.Lifetimes().Timestamp / 4).Round(time.Minute)
}
