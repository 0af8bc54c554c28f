// Command uptrust-delta creates and applies uptrust deltas, for benchmarks and by hand:
//
//	uptrust-delta diff OLD NEW PATCH
//	uptrust-delta apply OLD PATCH OUT
//
// apply hashes OLD first (the agent uses its cached hash of the active slot instead), writes
// OUT, fsyncs it and removes it again if the delta does not produce the declared image.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/uptrust/uptrust/internal/delta"
)

func main() {
	// UPTRUST_DELTA_CPUPROFILE=FILE writes a CPU profile (for tuning the matcher).
	if p := os.Getenv("UPTRUST_DELTA_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "uptrust-delta:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) != 4 || (args[0] != "diff" && args[0] != "apply") {
		return errors.New("usage: uptrust-delta diff OLD NEW PATCH | apply OLD PATCH OUT")
	}
	if args[0] == "diff" {
		return diff(ctx, args[1], args[2], args[3])
	}
	return apply(ctx, args[1], args[2], args[3])
}

func diff(ctx context.Context, oldPath, newPath, patchPath string) error {
	old, err := os.ReadFile(oldPath)
	if err != nil {
		return err
	}
	nw, err := os.ReadFile(newPath)
	if err != nil {
		return err
	}
	f, err := os.Create(patchPath)
	if err != nil {
		return err
	}
	if err := delta.Create(ctx, f, old, nw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func apply(ctx context.Context, oldPath, patchPath, outPath string) error {
	old, err := os.Open(oldPath)
	if err != nil {
		return err
	}
	defer old.Close()
	h := sha256.New()
	size, err := io.Copy(h, old)
	if err != nil {
		return err
	}
	patch, err := os.Open(patchPath)
	if err != nil {
		return err
	}
	defer patch.Close()
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	src := delta.Source{R: old, Size: size, SHA256: [32]byte(h.Sum(nil))}
	if _, err := delta.Apply(ctx, out, src, patch); err != nil {
		out.Close()
		os.Remove(outPath)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
