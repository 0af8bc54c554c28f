package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/cli"
	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/sim"
)

// moreData is an adverse impact: the release collects more data.
var moreData = release.Impact{DataCollection: release.ChangeMore, DataCollectionText: "sends hourly usage statistics to the maker"}

// publishSpec publishes a release of the world's product described by spec
// (Product and Payload are filled in) and remembers its image.
func (w *world) publishSpec(spec project.ReleaseSpec) {
	w.t.Helper()
	if spec.Product == "" {
		spec.Product = product
	}
	img := image(spec.Version)
	w.images[spec.Version] = img
	spec.Payload = bytes.NewReader(img)
	if _, err := w.p.AddRelease(context.Background(), spec); err != nil {
		w.t.Fatalf("publishing %s %s: %v", spec.Product, spec.Version, err)
	}
	w.reload()
}

// deviceOf provisions a device of another product running 1.0.0.
func (w *world) deviceOf(name, prod string) *sim.Device {
	w.t.Helper()
	rr, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, "release"))
	if err != nil {
		w.t.Fatal(err)
	}
	fr, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, "fleet"))
	if err != nil {
		w.t.Fatal(err)
	}
	d, err := sim.New(filepath.Join(w.dir, "devices", name), sim.Spec{Name: name, Server: w.url, Product: prod, Hardware: hardware,
		ReleaseRoot: rr, FleetRoot: fr, Factory: image("1.0.0"), Version: "1.0.0", SecurityVersion: 1})
	if err != nil {
		w.t.Fatal(err)
	}
	d.HTTP = &fetch.Config{StallTimeout: 300 * time.Millisecond, ConnectTimeout: time.Second, MaxAttempts: 3,
		BaseBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	return d
}

// notifyHook configures d's notify hook as a shell script that appends
// each event to a file, and returns a function reading the events so far.
func notifyHook(t *testing.T, d *sim.Device) func() []agent.Event {
	t.Helper()
	dir := t.TempDir()
	script, log := filepath.Join(dir, "notify.sh"), filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat >> \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.SetConfig(func(c *agent.Config) { c.Notify = []string{script, log} }); err != nil {
		t.Fatal(err)
	}
	return func() []agent.Event {
		t.Helper()
		b, err := os.ReadFile(log)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var out []agent.Event
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e agent.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("notify hook got %q: %v", line, err)
			}
			out = append(out, e)
		}
		return out
	}
}

// only returns the events named name.
func only(events []agent.Event, name string) []agent.Event {
	var out []agent.Event
	for _, e := range events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

// ownerCLI runs `uptrust-agent --config <d's agent.json> args...` with
// stdin and the given time; it returns the exit status and output.
func ownerCLI(t *testing.T, d *sim.Device, stdin string, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), append([]string{"--config", d.ConfigPath()}, args...),
		cli.Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return now }})
	return code, stdout.String(), stderr.String()
}

// status reads d's status, failing the test on an error.
func status(t *testing.T, d *sim.Device) *agent.Status {
	t.Helper()
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// reportCount is how many reports with outcome and class the server
// counted.
func (w *world) reportCount(outcome report.Outcome, class report.Class) int {
	w.t.Helper()
	counts, err := w.p.Store.ReportCounts(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		if c.Outcome == string(outcome) && c.ErrorClass == string(class) {
			n += int(c.Count)
		}
	}
	return n
}

// forgeSupport publishes a support declaration ending on until, signed
// with the product's offline key directly, bypassing the project's refusal
// to shorten support: what a maker (or a thief of the product key) could
// sign.
func forgeSupport(t *testing.T, w *world, until string) {
	t.Helper()
	ctx := context.Background()
	prev, err := w.p.Support(ctx, product)
	if err != nil {
		t.Fatal(err)
	}
	next := *prev
	next.Until, next.Issued = until, time.Now().UTC().Truncate(time.Second)
	b, _ := json.MarshalIndent(next, "", "  ")
	info, err := w.p.Blobs.Put(ctx, bytes.NewReader(b), 0)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := hex.DecodeString(info.SHA256)
	name := release.SupportTargetName(product)
	w.signAsProduct(nil, repo.NewTarget(repo.TargetInfo{Path: name, Length: info.Size, SHA256: sum}))
}
