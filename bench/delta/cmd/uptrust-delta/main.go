// Command uptrust-delta creates and applies uptrust deltas, for benchmarks and by hand:
//
//	uptrust-delta diff OLD NEW PATCH
//	uptrust-delta apply [-source-sha256 HEX] OLD PATCH OUT
//
// apply hashes OLD first, writes OUT, fsyncs it and removes it again if the delta does not
// produce the declared image. -source-sha256 skips hashing OLD and trusts the given hash, as the
// agent trusts its cached, verified hash of the active slot; a wrong hash makes apply fail
// (the delta names its source hash) but is not detected if OLD merely has changed.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/uptrust/uptrust/internal/agent/payload"
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

const usage = "usage: uptrust-delta diff OLD NEW PATCH | apply [-source-sha256 HEX] OLD PATCH OUT"

func run(ctx context.Context, args []string) error {
	if len(args) == 4 && args[0] == "diff" {
		return diff(ctx, args[1], args[2], args[3])
	}
	if len(args) < 1 || args[0] != "apply" {
		return errors.New(usage)
	}
	args = args[1:]
	var srcHash *[32]byte
	if len(args) == 5 && (args[0] == "-source-sha256" || args[0] == "--source-sha256") {
		b, err := hex.DecodeString(args[1])
		if err != nil || len(b) != 32 {
			return errors.New("-source-sha256: want 64 hex digits")
		}
		srcHash = (*[32]byte)(b)
		args = args[2:]
	}
	if len(args) != 3 {
		return errors.New(usage)
	}
	return apply(ctx, args[0], args[1], args[2], srcHash)
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

// apply writes OUT from OLD and PATCH. srcHash, if not nil, is trusted as OLD's SHA-256
// instead of hashing OLD.
func apply(ctx context.Context, oldPath, patchPath, outPath string, srcHash *[32]byte) error {
	old, err := os.Open(oldPath)
	if err != nil {
		return err
	}
	defer old.Close()
	var src delta.Source
	if srcHash != nil {
		fi, err := old.Stat()
		if err != nil {
			return err
		}
		src = delta.Source{R: old, Size: fi.Size(), SHA256: *srcHash}
	} else {
		h := sha256.New()
		size, err := io.Copy(h, old)
		if err != nil {
			return err
		}
		src = delta.Source{R: old, Size: size, SHA256: [32]byte(h.Sum(nil))}
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
	// As the agent writes a slot: writeback starts while the apply goes on
	// (payload.Writeback), so the final sync has little left to do.
	wb := payload.Writeback(out)
	if _, err := delta.Apply(ctx, wb, src, patch); err != nil {
		out.Close()
		os.Remove(outPath)
		return err
	}
	if err := wb.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
