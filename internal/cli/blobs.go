package cli

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
)

// blobsUsage documents --blobs on every command that takes it.
const blobsUsage = "keep payloads in an S3-compatible bucket, `s3://BUCKET?endpoint=URL&region=R&prefix=P`, with the credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (default: $UPTRUST_BLOBS, else the project's blobs/ directory)"

// blobsFlag defines --blobs on fs, for every command that writes or serves
// payloads (release add, product add, product support extend, product
// policy, serve); $UPTRUST_BLOBS is its default, so that all of them agree.
func blobsFlag(fs *flag.FlagSet, env Env) *string {
	return fs.String("blobs", env.Getenv("UPTRUST_BLOBS"), blobsUsage)
}

// openProjectBlobs opens the project with its payloads in the store that
// --blobs names, or in its blobs/ directory when url is empty. The store
// must be reachable: a bucket that is not is a clear error here rather
// than failed downloads later.
func openProjectBlobs(ctx context.Context, env Env, dir, url string) (*project.Project, error) {
	return openProjectStores(ctx, env, dir, env.Getenv(DatabaseEnv), url)
}

// openProjectStores opens the project in dir with its store in the
// PostgreSQL database dsn (where uptrust.json says when "") and its
// payloads in the bucket blobsURL (the project's blobs/ when "").
func openProjectStores(ctx context.Context, env Env, dir, dsn, blobsURL string) (*project.Project, error) {
	var bl blob.Storage
	if blobsURL != "" {
		var err error
		if bl, err = blob.OpenURL(ctx, blobsURL, env.Getenv); err != nil {
			return nil, err
		}
	}
	return project.Open(ctx, dir, project.Options{Passphrase: passphrase(env, false), Database: dsn, Blobs: bl,
		Warn: func(s string) { fmt.Fprintln(env.Stderr, "uptrust: warning:", s) }})
}

// cmdBlobs groups the payload store commands.
func cmdBlobs(env Env) *cmdline.Command {
	cp := &cmdline.Command{Name: "copy", Synopsis: "copy the project's blobs/ directory into a bucket (existing objects are skipped)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			to := fs.String("to", "", "the destination, `s3://BUCKET?endpoint=URL` (required)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("blobs copy takes no arguments")
				}
				if *to == "" {
					return usagef("blobs copy: --to s3://BUCKET?endpoint=URL is required")
				}
				src, err := blob.New(filepath.Join(*dir, "blobs"))
				if err != nil {
					return err
				}
				dst, err := blob.OpenURL(ctx, *to, env.Getenv)
				if err != nil {
					return err
				}
				n, skipped, err := blob.Copy(ctx, dst, src)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "copied %d blobs to %s (%d there already)\n", n, dst, skipped)
				return nil
			}
		}}
	return &cmdline.Command{Name: "blobs", Synopsis: "manage where payloads are stored", Sub: []*cmdline.Command{cp}}
}
