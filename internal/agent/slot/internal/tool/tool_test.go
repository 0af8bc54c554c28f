package tool

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	out, err := Run(t.Context(), "coreutils", "sh", "-c", "echo hello")
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	_, err = Run(t.Context(), "pkg", "sh", "-c", "echo first >&2; echo; echo '  second ' >&2; exit 3")
	if err == nil || err.Error() != "sh: exit status 3: first; second" {
		t.Fatalf("Run failing = %v, want %q", err, "sh: exit status 3: first; second")
	}
	_, err = Run(t.Context(), "some-pkg", "/nonexistent/fw_setenv")
	if err == nil || !strings.HasPrefix(err.Error(), "fw_setenv: ") || !strings.HasSuffix(err.Error(), "(install some-pkg)") {
		t.Fatalf("Run missing = %v, want an install hint", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Run(ctx, "pkg", "sh", "-c", "true"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run canceled = %v, want context.Canceled", err)
	}
}
