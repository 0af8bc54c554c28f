// Command installbench installs one payload from a URL into a file the way
// the agent does — fetch.Client.Get, payload.Install through
// payload.Writeback, fsync — so that its wall time and peak RSS
// (/usr/bin/time -v) are the agent's. scripts/bench-install.sh drives it.
//
//	installbench -url http://127.0.0.1:PORT/payload.bin -out slot.img \
//	    -length BYTES -sha256 HEX
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "installbench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "installbench:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("installbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "payload URL (required)")
	out := fs.String("out", "", "slot file or block device to write (required)")
	length := fs.Int64("length", -1, "payload length in bytes (required)")
	sha256Hex := fs.String("sha256", "", "expected SHA-256, hex")
	sha512Hex := fs.String("sha512", "", "expected SHA-512, hex")
	caFile := fs.String("ca", "", "PEM CA bundle for https")
	noWriteback := fs.Bool("no-writeback", false, "write without payload.Writeback (for comparison)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *url == "" || *out == "" || *length < 0 || (*sha256Hex == "" && *sha512Hex == "") {
		return usageError{"need -url, -out, -length and -sha256 or -sha512"}
	}
	hashes := map[string][]byte{}
	for name, h := range map[string]string{"sha256": *sha256Hex, "sha512": *sha512Hex} {
		if h == "" {
			continue
		}
		d, err := hex.DecodeString(h)
		if err != nil {
			return usageError{fmt.Sprintf("-%s: %v", name, err)}
		}
		hashes[name] = d
	}

	client, err := fetch.New(fetch.Config{CAFile: *caFile})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	var dst payload.Writer = f
	if !*noWriteback {
		dst = payload.Writeback(f)
	}

	start := time.Now()
	body, err := client.Get(ctx, *url, *length)
	if err != nil {
		return err
	}
	defer body.Close()
	res, err := payload.Install(ctx, body, dst, *length, hashes)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", *out, err)
	}
	d := time.Since(start)
	fmt.Fprintf(stderr, "installbench: %d bytes in %.3fs (%.1f MB/s), sha256 %x\n",
		res.Bytes, d.Seconds(), float64(res.Bytes)/d.Seconds()/1e6, res.SHA256)
	return nil
}
