package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/demo"
)

// TestDemo runs the demo as `uptrust demo` does and checks its promise:
// every device updates through the real server and agent, except the one
// whose new system fails its health check, which rolls back; the server
// counts one anonymous report per device.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := demo.Run(ctx, demo.Options{Devices: 10})
	if err != nil {
		t.Fatal(err)
	}
	if s.Devices != 10 || s.Updated != 9 || s.RolledBack != 1 || s.Failed != 0 {
		t.Fatalf("summary: devices %d, updated %d, rolled back %d, failed %d; want 10, 9, 1, 0 (results %+v)",
			s.Devices, s.Updated, s.RolledBack, s.Failed, s.Results)
	}
	if s.Reports["installed"] != 9 || s.Reports["rolled_back"] != 1 || len(s.Reports) != 2 {
		t.Fatalf("reports counted by the server: %v, want installed 9 and rolled_back 1", s.Reports)
	}
	if len(s.Results) != 10 {
		t.Fatalf("%d results, want 10", len(s.Results))
	}
	for _, r := range s.Results {
		if !r.ImageVerified {
			t.Errorf("%s: booted image not verified (%+v)", r.Name, r)
		}
		// The release ships a delta from 1.0.0: every device installs
		// from it and fetches a small fraction of the image.
		if !r.Delta || r.Downloaded <= 0 || r.Downloaded > int64(s.ImageBytes)/10 {
			t.Errorf("%s: delta %v, downloaded %d bytes of a %d-byte image; want the delta, under a tenth of the image", r.Name, r.Delta, r.Downloaded, s.ImageBytes)
		}
		switch r.Outcome {
		case "updated":
			if r.After != s.Release || r.Slot != "b" {
				t.Errorf("%s updated but runs %s from slot %s", r.Name, r.After, r.Slot)
			}
		case "rolled back":
			if r.After != "1.0.0" || r.Slot != "a" || !strings.Contains(r.Reason, "health-check") {
				t.Errorf("%s rolled back but runs %s from slot %s (%s)", r.Name, r.After, r.Slot, r.Reason)
			}
		default:
			t.Errorf("%s: outcome %q", r.Name, r.Outcome)
		}
	}
}

// TestDemoCommand runs the built command the way the README tells a person
// to, and reads its JSON summary.
func TestDemoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cmd/uptrust")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to run cmd/uptrust: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatalf("go env GOMOD = %q: not inside the module", gomod)
	}
	cmd := exec.CommandContext(ctx, goBin, "run", "./cmd/uptrust", "demo", "--devices", "3", "--json")
	cmd.Dir = filepath.Dir(gomod)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go run ./cmd/uptrust demo: %v\nstderr:\n%s", err, stderr.String())
	}
	var s struct {
		Devices    *int `json:"devices"`
		Updated    *int `json:"updated"`
		RolledBack *int `json:"rolled_back"`
		Failed     *int `json:"failed"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("stdout is not one JSON summary: %v\n%s", err, stdout.String())
	}
	if s.Devices == nil || s.Updated == nil || s.RolledBack == nil || s.Failed == nil {
		t.Fatalf("summary lacks devices, updated, rolled_back or failed:\n%s", stdout.String())
	}
	if *s.Devices != 3 || *s.Updated != 2 || *s.RolledBack != 1 || *s.Failed != 0 {
		t.Fatalf("summary: devices %d, updated %d, rolled back %d, failed %d; want 3, 2, 1, 0",
			*s.Devices, *s.Updated, *s.RolledBack, *s.Failed)
	}
	// Progress goes to stderr so that stdout stays machine-readable.
	if !strings.Contains(stderr.String(), "==>") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
}
