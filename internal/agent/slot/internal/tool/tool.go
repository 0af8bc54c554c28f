// Package tool runs the bootloader environment tools (fw_printenv,
// fw_setenv, grub-editenv) with errors that carry the tool's stderr.
package tool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Run runs path with args and returns its stdout. Errors read
// "fw_setenv: exit status 1: <stderr lines joined by '; '>"; callers add
// their package prefix. A missing executable gets "(install <pkg>)"
// appended, a canceled or expired ctx is returned wrapped.
func Run(ctx context.Context, pkg, path string, args ...string) ([]byte, error) {
	name := filepath.Base(path)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s: %w", name, ctx.Err())
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: %v (install %s)", name, err, pkg)
	case err != nil:
		return nil, fmt.Errorf("%s: %v: %s", name, err, oneLine(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// oneLine joins non-empty lines with "; " and bounds the length.
func oneLine(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s = strings.Join(lines, "; ")
	if s == "" {
		return "(no stderr)"
	}
	const maxLen = 512
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return s
}
