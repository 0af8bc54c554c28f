// Command s3server runs SeaweedFS with an S3 gateway and a bucket, as the
// tests do (internal/blob/s3test), for scripts/bench-s3-upload.sh. It
// prints the endpoint, bucket and credentials as shell assignments, then
// serves until SIGINT or SIGTERM.
//
// Usage: s3server -dir DIR [-weed PATH]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/uptrust/uptrust/internal/blob/s3test"
)

func main() {
	dir := flag.String("dir", "", "data directory (required)")
	weed := flag.String("weed", s3test.BinaryPath(), "the weed binary")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "s3server: -dir is required")
		os.Exit(2)
	}
	srv, err := s3test.Launch(*weed, *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("S3_ENDPOINT=%s\nS3_BUCKET=%s\nS3_URL='%s'\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n",
		srv.Endpoint, srv.Bucket, srv.URL(), s3test.AccessKey, s3test.SecretKey)
	os.Stdout.Sync()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Stop()
}
