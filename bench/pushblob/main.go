// Command pushblob uploads one file as a payload blob to a running
// server's management API with upload.Blob, as uptrust push does, for
// scripts/bench-push-blob.sh. The SHA-256 is given (push knows it from the
// signed metadata), so the timed work is the upload alone: HEAD, then PUT
// streaming the file (never whole in memory).
//
// Usage: pushblob -server URL -token TOKEN -sha SHA256 FILE
// (the token may also come from $UPTRUST_TOKEN)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/uptrust/uptrust/internal/upload"
)

func main() {
	server := flag.String("server", "", "the admin listener, e.g. http://127.0.0.1:9090 (required)")
	token := flag.String("token", os.Getenv("UPTRUST_TOKEN"), "a release-manager token")
	sha := flag.String("sha", "", "the file's SHA-256 (required)")
	flag.Parse()
	if *server == "" || *sha == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: pushblob -server URL -token TOKEN -sha SHA256 FILE")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	name := flag.Arg(0)
	fi, err := os.Stat(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushblob:", err)
		os.Exit(1)
	}
	open := func(off int64) (io.ReadCloser, error) {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	start := time.Now()
	c := upload.Client{BaseURL: *server, Token: *token}
	if err := upload.Blob(ctx, c, *sha, fi.Size(), open, nil); err != nil {
		fmt.Fprintln(os.Stderr, "pushblob:", err)
		os.Exit(1)
	}
	d := time.Since(start)
	fmt.Printf("%d bytes in %.2f s (%.0f MiB/s)\n", fi.Size(), d.Seconds(), float64(fi.Size())/d.Seconds()/(1<<20))
}
