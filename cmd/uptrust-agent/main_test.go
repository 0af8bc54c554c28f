package main

// These tests run the real binaries, built once in TestMain: uptrust makes
// a project, serves it on loopback and provisions simulated devices, and
// uptrust-agent checks, so that every exit status of uptrust-agent check
// is the one a script on a device sees.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/testbin"

	"github.com/uptrust/uptrust/internal/agent/cli"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
)

var binDir string

func TestMain(m *testing.M) { testbin.Main(m, "", &binDir) }

type result = testbin.Result

func run(t *testing.T, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = testbin.CleanEnv(false)
	return testbin.Run(t, cmd)
}

func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, "uptrust", args...)
	if r.Code != 0 {
		t.Fatalf("uptrust %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// fleet is a dev project served by `uptrust serve` on loopback.
type fleet struct {
	t       *testing.T
	dir     string
	url     string
	factory string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	dir := t.TempDir()
	f := &fleet{t: t, dir: filepath.Join(dir, "project"), factory: filepath.Join(dir, "factory.bin")}
	if err := os.WriteFile(f.factory, image("1.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "init", "--dev", "--dir", f.dir)
	mustRun(t, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", f.dir)
	srv := exec.Command(filepath.Join(binDir, "uptrust"), "serve", "--dir", f.dir, "--listen", "127.0.0.1:0")
	srv.Env = testbin.CleanEnv(false)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	addr := regexp.MustCompile(`msg=serving addr=(\S+)`)
	sc := bufio.NewScanner(stderr)
	var log strings.Builder
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := addr.FindStringSubmatch(sc.Text()); m != nil {
			f.url = "http://" + m[1]
			break
		}
	}
	if f.url == "" {
		t.Fatalf("uptrust serve did not say where it listens:\n%s", log.String())
	}
	go io.Copy(io.Discard, stderr)
	f.served() // content is loaded once the server answers
	return f
}

// served returns the fleet repository's timestamp.json as the server
// serves it, waiting for it to answer 200.
func (f *fleet) served() []byte {
	f.t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(f.url + "/repo/fleet/metadata/timestamp.json")
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				return b
			}
		}
		if i == 600 {
			f.t.Fatalf("uptrust serve at %s never served the fleet timestamp: %v", f.url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReload waits until the server serves a fleet timestamp other than
// before: it has loaded the rollout started after before was read (the
// server polls the project for changes).
func (f *fleet) waitReload(before []byte) {
	f.t.Helper()
	for i := 0; bytes.Equal(f.served(), before); i++ {
		if i == 600 {
			f.t.Fatal("uptrust serve never loaded the new rollout")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// image is a firmware image of version v.
func image(v string) []byte { return bytes.Repeat([]byte("firmware "+v+"\n"), 2000) }

// publish adds release v and offers it to every device; it returns the
// payload's sha256.
func (f *fleet) publish(v, kind string) string {
	f.t.Helper()
	before := f.served()
	img := filepath.Join(f.t.TempDir(), v+".bin")
	if err := os.WriteFile(img, image(v), 0o644); err != nil {
		f.t.Fatal(err)
	}
	out := mustRun(f.t, "release", "add", "thermostat", v, img, "--kind", kind, "--security-version", "1", "--dir", f.dir).Stdout
	m := regexp.MustCompile(`sha256 ([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		f.t.Fatalf("release add printed no sha256: %s", out)
	}
	mustRun(f.t, "rollout", "start", "thermostat", v, "--percent", "100", "--dir", f.dir)
	f.waitReload(before)
	return m[1]
}

// device provisions a simulated device talking to server and returns its
// agent config.
func (f *fleet) device(name, server string) string {
	f.t.Helper()
	dev := filepath.Join(f.t.TempDir(), name)
	mustRun(f.t, "simulate-device", dev, "--dir", f.dir, "--server", server, "--product", "thermostat",
		"--hardware", "rev-a", "--factory", f.factory, "--version", "1.0.0", "--security-version", "1")
	return filepath.Join(dev, "agent.json")
}

// check runs uptrust-agent check and fails unless it exits want.
func check(t *testing.T, cfg string, want int, why string) result {
	t.Helper()
	r := run(t, "uptrust-agent", "--config", cfg, "check")
	if r.Code != want {
		t.Fatalf("uptrust-agent check (%s): %v; want exit %d", why, r, want)
	}
	return r
}

// TestCheckExitCodes walks a device through every outcome of a check and
// checks the exit status of each: up to date 0, a release written and the
// device restarting 6, committed after the restart 0, a release held for
// the owner 5, consented and installed 6 then 0; a second device refuses a
// tampered payload 4; a device whose server is down, whose TLS handshake
// fails or whose trusted root is missing exits 1.
func TestCheckExitCodes(t *testing.T) {
	f := newFleet(t)
	cfg := f.device("a", f.url)
	r := check(t, cfg, 0, "nothing offered")
	if !strings.HasPrefix(r.Stdout, "none: ") {
		t.Errorf("check with nothing offered: %v", r)
	}

	f.publish("1.1.0", "fix")
	r = check(t, cfg, cli.ExitRebooting, "1.1.0 written, rebooting")
	if !strings.HasPrefix(r.Stdout, "rebooting: ") {
		t.Errorf("check that installs: %v", r)
	}
	mustRun(t, "simulate-boot", filepath.Dir(cfg))
	r = check(t, cfg, 0, "1.1.0 committed after the restart")
	check(t, cfg, 0, "up to date")

	// The owner turns automatic updates off: 1.2.0 waits for them.
	if r := run(t, "uptrust-agent", "policy", "auto-updates", "off", "--config", cfg); r.Code != 0 {
		t.Fatalf("policy auto-updates off: %v", r)
	}
	f.publish("1.2.0", "feature")
	r = check(t, cfg, cli.ExitWaitingForOwner, "1.2.0 held for the owner")
	if !strings.HasPrefix(r.Stdout, "waiting: ") || !strings.Contains(r.Stdout, "1.2.0") {
		t.Errorf("check with a held release: %v", r)
	}
	// status honours --config after the command and shows the waiting
	// release.
	st := run(t, "uptrust-agent", "status", "--json", "--config", cfg)
	var status map[string]any
	if err := json.Unmarshal([]byte(st.Stdout), &status); st.Code != 0 || err != nil {
		t.Fatalf("status --json --config: %v (%v)", st, err)
	}
	if !strings.Contains(st.Stdout, `"1.2.0"`) {
		t.Errorf("status --json does not show the waiting 1.2.0:\n%s", st.Stdout)
	}
	if r := run(t, "uptrust-agent", "consent", "1.2.0", "--yes", "--config", cfg); r.Code != 0 {
		t.Fatalf("consent: %v", r)
	}
	check(t, cfg, cli.ExitRebooting, "1.2.0 consented and written")

	// A second device on 1.0.0 is offered 1.2.0 with a tampered payload.
	sha := f.publish("1.3.0", "fix")
	blobs, _ := filepath.Glob(filepath.Join(f.dir, "*", "sha256", sha[:2], sha))
	if len(blobs) != 1 {
		t.Fatalf("payload blob %s: found %v", sha, blobs)
	}
	b, err := os.ReadFile(blobs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blobs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgB := f.device("b", f.url)
	r = check(t, cfgB, cli.ExitRefused, "tampered payload refused")
	if !strings.HasPrefix(r.Stdout, "rejected: ") {
		t.Errorf("check of a tampered payload: %v", r)
	}

	// A device whose server does not answer: a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	r = check(t, f.device("c", down), 1, "server down")
	if !strings.HasPrefix(r.Stdout, "error: ") {
		t.Errorf("check with the server down: %v", r)
	}
	// TLS failure: https to a server that speaks plain HTTP.
	r = check(t, f.device("d", strings.Replace(f.url, "http:", "https:", 1)), 1, "TLS failure")
	if !strings.Contains(r.Stdout, "HTTP response to HTTPS client") {
		t.Errorf("check with a TLS failure: %v", r)
	}
	// The trusted root is missing.
	cfgE := f.device("e", f.url)
	if err := os.Remove(filepath.Join(filepath.Dir(cfgE), "release-root.json")); err != nil {
		t.Fatal(err)
	}
	r = check(t, cfgE, 1, "trusted root missing")
	if !strings.Contains(r.Stdout, "trusted release root") {
		t.Errorf("check without the trusted root: %v", r)
	}
}

// TestCheckUsageAndConfigErrors: a usage error exits 2 before the config
// is read; a config that does not exist exits 1.
func TestCheckUsageAndConfigErrors(t *testing.T) {
	if r := run(t, "uptrust-agent", "--config", "/nonexistent/agent.json", "check", "now"); r.Code != 2 {
		t.Errorf("check now: %v; want exit 2", r)
	}
	if r := run(t, "uptrust-agent", "--config", "/nonexistent/agent.json", "check"); r.Code != 1 || !strings.Contains(r.Stderr, "/nonexistent/agent.json") {
		t.Errorf("check without a config: %v; want exit 1 naming the file", r)
	}
}

// TestPolicyJSON: policy --json carries the documented fields and the
// owner's choices.
func TestPolicyJSON(t *testing.T) {
	f := &fleet{t: t, dir: filepath.Join(t.TempDir(), "project"), factory: filepath.Join(t.TempDir(), "factory.bin")}
	if err := os.WriteFile(f.factory, image("1.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "init", "--dev", "--dir", f.dir)
	cfg := f.device("d", "http://127.0.0.1:9")
	if r := run(t, "uptrust-agent", "--config", cfg, "policy", "auto-updates", "off"); r.Code != 0 {
		t.Fatalf("policy auto-updates off: %v", r)
	}
	r := run(t, "uptrust-agent", "policy", "--json", "--config", cfg)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &v); r.Code != 0 || err != nil {
		t.Fatalf("policy --json: %v (%v)", r, err)
	}
	for _, k := range []string{"auto_install", "max_postpone_days", "policy_source", "auto_updates", "auto_updates_off_since", "postponed_until", "history"} {
		if _, ok := v[k]; !ok {
			t.Errorf("policy --json has no %q: %v", k, v)
		}
	}
	if v["auto_updates"] != false || v["auto_updates_off_since"] == nil || v["policy_source"] != "default" {
		t.Errorf("policy --json after auto-updates off: %v", v)
	}
	if h, _ := v["history"].([]any); len(h) != 1 {
		t.Errorf("policy --json history: %v", v["history"])
	}
}

// TestProvisionValidates: provision refuses a version that is not semver
// (usage, 2) and root files that are missing, do not parse or are not
// signed by their own keys (1, naming the config field and file), and
// writes nothing then; with good roots it provisions (0).
func TestProvisionValidates(t *testing.T) {
	dir := t.TempDir()
	project := filepath.Join(dir, "project")
	mustRun(t, "init", "--dev", "--dir", project)
	good, err := os.ReadFile(filepath.Join(project, "device", "release-root.json"))
	if err != nil {
		t.Fatal(err)
	}
	goodFleet, err := os.ReadFile(filepath.Join(project, "device", "fleet-root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fileslot.Create(filepath.Join(dir, "slots"), strings.NewReader("factory"), 3); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agent.json")
	b, _ := json.Marshal(map[string]any{"server": "https://updates.example.com", "product": "thermostat", "hardware": "rev-a",
		"data_dir": "data", "release_root": "release.json", "fleet_root": "fleet.json", "slot": map[string]any{"backend": "file", "dir": "slots"}})
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(good, []byte(`"version": 1`), []byte(`"version": 2`), 1)
	if bytes.Equal(tampered, good) {
		tampered = bytes.Replace(good, []byte(`"version":1`), []byte(`"version":2`), 1)
	}
	if bytes.Equal(tampered, good) {
		t.Fatalf("cannot tamper with the root: %s", good)
	}
	write := func(name string, content []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.Remove(p)
		if content != nil {
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		version        string
		release, fleet []byte
		code           int
		want           string
	}{
		{"one", good, goodFleet, 2, `--version "one"`},
		{"1.0.0", nil, goodFleet, 1, "release_root: open " + filepath.Join(dir, "release.json")},
		{"1.0.0", good, []byte("{}"), 1, "fleet_root " + filepath.Join(dir, "fleet.json") + " is not TUF root metadata"},
		{"1.0.0", tampered, goodFleet, 1, "release_root " + filepath.Join(dir, "release.json") + " is not signed by its own root keys"},
		{"1.0.0", good, good, 1, "are the same root"},
	} {
		write("release.json", tc.release)
		write("fleet.json", tc.fleet)
		r := run(t, "uptrust-agent", "provision", "--config", cfg, "--version", tc.version, "--security-version", "1")
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("provision --version %s: %v; want exit %d naming %q", tc.version, r, tc.code, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
			t.Fatalf("provision --version %s wrote the data directory though it failed: %v", tc.version, err)
		}
	}
	write("release.json", good)
	write("fleet.json", goodFleet)
	if r := run(t, "uptrust-agent", "provision", "--config", cfg, "--version", "1.0.0", "--security-version", "1"); r.Code != 0 {
		t.Fatalf("provision with good roots: %v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "state.json")); err != nil {
		t.Errorf("provision wrote no state: %v", err)
	}
}

// TestCheckExitRolledBack: a release whose health check fails on trial is
// written (6), fails its trial and the device restarts back (6), and the
// check that records the rollback exits 7; the next check, with nothing
// new, exits 0.
func TestCheckExitRolledBack(t *testing.T) {
	f := newFleet(t)
	cfg := f.device("f", f.url)
	var c map[string]any
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	c["health_check"] = []string{"false"}
	b, _ = json.Marshal(c)
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f.publish("1.1.0", "fix")
	check(t, cfg, cli.ExitRebooting, "1.1.0 written")
	mustRun(t, "simulate-boot", filepath.Dir(cfg))
	check(t, cfg, cli.ExitRebooting, "1.1.0 fails its health check on trial, restarting back")
	mustRun(t, "simulate-boot", filepath.Dir(cfg))
	r := check(t, cfg, cli.ExitRolledBack, "rollback recorded")
	if !strings.Contains(r.Stdout, "1.1.0 failed on this device") {
		t.Errorf("check that records the rollback: %v", r)
	}
	check(t, cfg, 0, "nothing new after the rollback")
}
