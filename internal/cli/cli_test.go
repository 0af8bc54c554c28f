package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
)

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command line with the given environment variables, no
// terminal, and output captured.
func run(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	return runEnv(t, env(vars, nil), args...)
}

func env(vars map[string]string, prompt func(string) ([]byte, error)) cli.Env {
	return cli.Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer), Getenv: func(k string) string { return vars[k] }, Prompt: prompt}
}

func runEnv(t *testing.T, e cli.Env, args ...string) result {
	t.Helper()
	code := cli.Main(t.Context(), args, e)
	return result{code, e.Stdout.(*bytes.Buffer).String(), e.Stderr.(*bytes.Buffer).String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func mustRun(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	r := run(t, vars, args...)
	if r.code != 0 {
		t.Fatalf("uptrust %s: %v", strings.Join(args, " "), r)
	}
	return r
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// devProject runs init --dev and adds the thermostat product.
func devProject(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	mustRun(t, nil, "init", "--dir", dir, "--dev")
	mustRun(t, nil, "product", "add", "thermostat", "--hardware", "rev-a,rev-b", "--support-until", "2031-12-31", "--dir", dir)
	return dir
}

func openProject(t *testing.T, dir string) *project.Project {
	t.Helper()
	p, err := project.Open(t.Context(), dir, project.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// fleetRule returns the rollout rule the fleet repository publishes for
// target.
func fleetRule(t *testing.T, dir, target string) map[string]any {
	t.Helper()
	p := openProject(t, dir)
	md, err := repo.LoadTargets(t.Context(), p.Store, deviceapi.RepoFleet, repo.RoleTargets)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Signed.Targets) != 1 || md.Signed.Targets[target] == nil || md.Signed.Targets[target].Custom == nil {
		t.Fatalf("fleet targets %v, want only %s", md.Signed.Targets, target)
	}
	var c struct {
		Uptrust struct {
			Rollout map[string]any `json:"rollout"`
		} `json:"uptrust"`
	}
	if err := json.Unmarshal(*md.Signed.Targets[target].Custom, &c); err != nil {
		t.Fatal(err)
	}
	return c.Uptrust.Rollout
}

func TestReadmeFlow(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	r := mustRun(t, nil, "init", "--dir", dir, "--dev")
	if !strings.Contains(r.stderr, "DEVELOPMENT PROJECT") || !strings.Contains(r.stderr, "UNENCRYPTED") {
		t.Errorf("init --dev without the loud warning on stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, project.DeviceRootPath(dir, "release")) {
		t.Errorf("init does not say where the device roots are:\n%s", r.stdout)
	}
	for _, name := range []string{"release", "fleet"} {
		if _, err := os.Stat(project.DeviceRootPath(dir, name)); err != nil {
			t.Errorf("device root: %v", err)
		}
	}

	mustRun(t, nil, "product", "add", "thermostat", "--hardware", "rev-a,rev-b", "--support-until", "2031-12-31", "--dir", dir)
	r = mustRun(t, nil, "product", "list", "--dir", dir)
	if !regexp.MustCompile(`(?m)^thermostat\s+thermostat\s+rev-a,rev-b\s*$`).MatchString(r.stdout) {
		t.Errorf("product list:\n%s", r.stdout)
	}

	payload := writeFile(t, tmp, "rootfs.img", strings.Repeat("image", 1000))
	notes := writeFile(t, tmp, "NOTES.md", "Fixes CVE-2026-1.\n")
	r = mustRun(t, nil, "release", "add", "thermostat", "1.1.0", payload, "--kind", "security", "--security-version", "2",
		"--notes", notes, "--advisory", "CVE-2026-1:summary", "--dir", dir)
	if !strings.Contains(r.stdout, "published thermostat 1.1.0") {
		t.Errorf("release add output:\n%s", r.stdout)
	}
	p := openProject(t, dir)
	rel, err := p.Store.Release(t.Context(), "thermostat", "1.1.0")
	if err != nil {
		t.Fatalf("release not stored: %v", err)
	}
	if rel.Length != 5000 || rel.SecurityVersion != 2 || rel.Kind != "security" {
		t.Errorf("stored release %+v", rel)
	}
	var m release.Manifest
	if err := json.Unmarshal(rel.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Notes != "Fixes CVE-2026-1.\n" || !reflect.DeepEqual(m.Advisories, []release.Advisory{{ID: "CVE-2026-1", Summary: "summary"}}) ||
		!reflect.DeepEqual(m.Hardware, []string{"rev-a", "rev-b"}) {
		t.Errorf("manifest %+v", m)
	}
	p.Close()

	listLine := regexp.MustCompile(`(?m)^thermostat\s+1\.1\.0\s+security\s+2\s+5000\s+` + rel.SHA256[:12] + `\s+\S+ \S+\s*(.*)$`)
	offered := func() string {
		t.Helper()
		r := mustRun(t, nil, "release", "list", "--dir", dir)
		m := listLine.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("release list does not show thermostat 1.1.0:\n%s", r.stdout)
		}
		return strings.TrimSpace(m[1])
	}
	if o := offered(); o != "" {
		t.Errorf("offered %q before any rollout", o)
	}
	if r := mustRun(t, nil, "release", "list", "thermostat", "--dir", dir); !listLine.MatchString(r.stdout) {
		t.Errorf("release list thermostat:\n%s", r.stdout)
	}
	if r := run(t, nil, "release", "list", "doorbell", "--dir", dir); r.code != 1 || r.stdout != "" ||
		!strings.Contains(r.stderr, `no product "doorbell"; products are: thermostat`) {
		t.Errorf("release list of an unknown product: %v", r)
	}

	// From here on the directory comes from UPTRUST_DIR, as in the README.
	vars := map[string]string{"UPTRUST_DIR": dir}
	r = mustRun(t, vars, "rollout", "start", "thermostat", "1.1.0", "--percent", "10")
	if !strings.Contains(r.stdout, "10% of devices, running") {
		t.Errorf("rollout start output:\n%s", r.stdout)
	}
	if o := offered(); o != "10%" {
		t.Errorf("offered %q, want 10%%", o)
	}
	if rule := fleetRule(t, dir, "thermostat/1.1.0"); rule["percent"] != 10.0 || rule["halted"] != false {
		t.Errorf("fleet rule %v", rule)
	}
	r = mustRun(t, vars, "rollout", "set-percent", "thermostat", "50")
	if !strings.Contains(r.stdout, "50% of devices, running") {
		t.Errorf("set-percent output:\n%s", r.stdout)
	}
	r = mustRun(t, vars, "rollout", "halt", "thermostat")
	if !strings.Contains(r.stdout, "50% of devices, halted") {
		t.Errorf("halt output:\n%s", r.stdout)
	}
	if o := offered(); o != "50% (halted)" {
		t.Errorf("offered %q, want 50%% (halted)", o)
	}
	if rule := fleetRule(t, dir, "thermostat/1.1.0"); rule["percent"] != 50.0 || rule["halted"] != true {
		t.Errorf("fleet rule after halt %v", rule)
	}
	r = mustRun(t, vars, "rollout", "resume", "thermostat")
	if !strings.Contains(r.stdout, "50% of devices, running") {
		t.Errorf("resume output:\n%s", r.stdout)
	}
	if rule := fleetRule(t, dir, "thermostat/1.1.0"); rule["percent"] != 50.0 || rule["halted"] != false {
		t.Errorf("fleet rule after resume %v", rule)
	}
	r = mustRun(t, vars, "rollout", "list")
	if !regexp.MustCompile(`(?m)^thermostat\s+1\.1\.0\s+50\s+false\s`).MatchString(r.stdout) {
		t.Errorf("rollout list:\n%s", r.stdout)
	}
}

func TestProductionPassphrase(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	good := map[string]string{"UPTRUST_PASSPHRASE": "correct horse battery staple"}
	r := mustRun(t, good, "init", "--dir", dir)
	if strings.Contains(r.stderr, "DEVELOPMENT") {
		t.Errorf("production init prints the dev warning:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, "root keys: 3, threshold 2") {
		t.Errorf("init output:\n%s", r.stdout)
	}
	mustRun(t, good, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", dir)
	payload := writeFile(t, tmp, "fw.img", "firmware")
	args := []string{"release", "add", "thermostat", "1.0.0", payload, "--kind", "fix", "--security-version", "1", "--dir", dir}

	r = run(t, map[string]string{"UPTRUST_PASSPHRASE": "wrong"}, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Errorf("release add with the wrong passphrase: %v; want exit 1 saying wrong passphrase", r)
	}
	r = run(t, nil, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "UPTRUST_PASSPHRASE") {
		t.Errorf("release add without passphrase or terminal: %v; want exit 1 naming UPTRUST_PASSPHRASE", r)
	}
	p := openProject(t, dir)
	if rels, err := p.Store.Releases(t.Context(), ""); err != nil || len(rels) != 0 {
		t.Errorf("releases after refused adds: %v, %v", rels, err)
	}
	p.Close()
	// The passphrase from a prompt works too.
	r = runEnv(t, env(nil, func(string) ([]byte, error) { return []byte("correct horse battery staple"), nil }), args...)
	if r.code != 0 {
		t.Errorf("release add with the passphrase from the prompt: %v", r)
	}
}

func TestInitPassphrase(t *testing.T) {
	tmp := t.TempDir()
	r := run(t, nil, "init", "--dir", filepath.Join(tmp, "a"))
	if r.code != 1 || !strings.Contains(r.stderr, "UPTRUST_PASSPHRASE") {
		t.Errorf("production init without passphrase: %v; want exit 1 naming UPTRUST_PASSPHRASE", r)
	}
	answers := [][]byte{[]byte("one"), []byte("two")}
	prompt := func(string) ([]byte, error) {
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}
	r = runEnv(t, env(nil, prompt), "init", "--dir", filepath.Join(tmp, "b"))
	if r.code != 1 || !strings.Contains(r.stderr, "differ") {
		t.Errorf("init with two different prompted passphrases: %v; want exit 1", r)
	}
	if _, err := os.Stat(filepath.Join(tmp, "b", "uptrust.json")); err == nil {
		t.Error("a project was created with mismatched passphrases")
	}
	var prompts []string
	prompt = func(s string) ([]byte, error) {
		prompts = append(prompts, s)
		return []byte("same horse battery staple"), nil
	}
	r = runEnv(t, env(nil, prompt), "init", "--dir", filepath.Join(tmp, "c"))
	if r.code != 0 || len(prompts) != 2 {
		t.Errorf("init with a confirmed prompted passphrase: %v, prompts %q", r, prompts)
	}
}

func TestUsageErrors(t *testing.T) {
	tmp := t.TempDir()
	dir := devProject(t)
	payload := writeFile(t, tmp, "fw.img", "firmware")
	for _, tc := range []struct {
		args []string
		want string // in the error line
	}{
		{[]string{}, ""},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"init", "--dir", filepath.Join(tmp, "x"), "extra"}, ""},
		{[]string{"init", "--no-such-flag"}, "no-such-flag"},
		{[]string{"product"}, ""},
		{[]string{"product", "remove", "thermostat", "--dir", dir}, ""},
		{[]string{"product", "add", "doorbell", "--hardware", "v1", "--dir", dir}, "--support-until"},
		{[]string{"product", "add", "--hardware", "v1", "--support-until", "2030-01-01", "--dir", dir}, ""},
		{[]string{"release", "add", "thermostat", "1.1.0", payload, "--security-version", "2", "--dir", dir}, "--kind"},
		{[]string{"release", "add", "thermostat", "1.1.0", payload, "--kind", "urgent", "--security-version", "2", "--dir", dir}, ""},
		{[]string{"release", "add", "thermostat", "1.1.0", payload, "--kind", "fix", "--dir", dir}, "--security-version is required"},
		{[]string{"release", "add", "thermostat", "1.1.0", payload, "--kind", "fix", "--security-version", "two", "--dir", dir}, "\"two\""},
		{[]string{"release", "add", "thermostat", "1.1.0", payload, "--kind", "fix", "--security-version", "-1", "--dir", dir}, "\"-1\""},
		{[]string{"release", "add", "thermostat", "1.1.0", "--kind", "fix", "--security-version", "1", "--dir", dir}, ""},
		{[]string{"release", "list", "a", "b", "--dir", dir}, ""},
		{[]string{"rollout", "start", "thermostat", "1.1.0", "--dir", dir}, ""},
		{[]string{"rollout", "set-percent", "thermostat", "half", "--dir", dir}, ""},
		{[]string{"rollout", "halt", "--dir", dir}, ""},
		{[]string{"rollout", "pause", "--dir", dir}, ""},
		{[]string{"rollout", "start", "thermostat", "1.1.0", "--percent", "5", "--soak", "1h", "--dir", dir}, "one or the other"},
		{[]string{"serve", "extra", "--dir", dir}, ""},
	} {
		r := run(t, nil, tc.args...)
		errLine := regexp.MustCompile(`(?m)^uptrust: .*$`).FindString(r.stderr)
		switch {
		case r.code != 2:
			t.Errorf("uptrust %s: %v; want exit 2", strings.Join(tc.args, " "), r)
		case !strings.Contains(r.stderr, "usage:"):
			t.Errorf("uptrust %s: no usage on stderr:\n%s", strings.Join(tc.args, " "), r.stderr)
		case tc.want != "" && !strings.Contains(errLine, tc.want):
			t.Errorf("uptrust %s: error %q does not mention %s", strings.Join(tc.args, " "), errLine, tc.want)
		}
	}
	p := openProject(t, dir)
	if ps, _ := p.Store.Products(t.Context()); len(ps) != 1 {
		t.Errorf("products after usage errors: %v", ps)
	}
	if rels, _ := p.Store.Releases(t.Context(), ""); len(rels) != 0 {
		t.Errorf("releases after usage errors: %v", rels)
	}
	// Asked for, help is the result: on stdout, so that it pages.
	if r := run(t, nil, "help"); r.code != 0 || !strings.Contains(r.stdout, "usage:") {
		t.Errorf("help: %v", r)
	}
}

func TestCommandErrors(t *testing.T) {
	tmp := t.TempDir()
	dir := devProject(t)
	payload := writeFile(t, tmp, "fw.img", "firmware")
	add := func(version, sv string) result {
		return run(t, nil, "release", "add", "thermostat", version, payload, "--kind", "security", "--security-version", sv, "--dir", dir)
	}
	if r := add("1.1.0", "2"); r.code != 0 {
		t.Fatalf("release add: %v", r)
	}
	r := add("1.2.0", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "security version 1") || !strings.Contains(r.stderr, "has 2") {
		t.Errorf("lower security version: %v; want exit 1 naming both security versions", r)
	}
	if r := add("1.1.0", "2"); r.code != 1 || !strings.Contains(r.stderr, "published already") {
		t.Errorf("duplicate version: %v", r)
	}
	if r := run(t, nil, "init", "--dir", dir, "--dev"); r.code != 1 {
		t.Errorf("init over an existing project: %v; want exit 1", r)
	}
	if r := run(t, nil, "product", "list", "--dir", filepath.Join(tmp, "nothing")); r.code != 1 || !strings.Contains(r.stderr, "not an uptrust project") {
		t.Errorf("product list outside a project: %v", r)
	}
	if r := run(t, nil, "rollout", "start", "thermostat", "9.9.9", "--percent", "5", "--dir", dir); r.code != 1 {
		t.Errorf("rollout of an unknown release: %v; want exit 1", r)
	}
	if r := run(t, nil, "rollout", "start", "thermostat", "1.1.0", "--percent", "101", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "101") {
		t.Errorf("rollout at 101%%: %v; want exit 1", r)
	}
	if r := run(t, nil, "rollout", "halt", "thermostat", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "rollout start") {
		t.Errorf("halting a rollout that never started: %v; want exit 1 pointing at rollout start", r)
	}
	if r := run(t, nil, "release", "add", "thermostat", "1.3.0", filepath.Join(tmp, "missing.img"), "--kind", "fix", "--security-version", "2", "--dir", dir); r.code != 1 {
		t.Errorf("missing payload file: %v; want exit 1", r)
	}
}

func TestServeRefusesPlainHTTPOnNonLoopback(t *testing.T) {
	dir := devProject(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// 192.0.2.1 (TEST-NET-1) is never a local address: should the rule be
	// skipped, listening fails too, but with a different message.
	e := env(nil, nil)
	code := cli.Main(ctx, []string{"serve", "--dir", dir, "--listen", "192.0.2.1:8080"}, e)
	stderr := e.Stderr.(*bytes.Buffer).String()
	// The error itself, not a log line, must explain the refusal.
	msg := regexp.MustCompile(`(?m)^uptrust: .*$`).FindString(stderr)
	if code != 1 || !strings.Contains(msg, "plain HTTP") || !strings.Contains(msg, "loopback") || !strings.Contains(msg, "192.0.2.1:8080") {
		t.Errorf("serve on a public address without TLS: exit %d\n%s\nwant exit 1 explaining plain HTTP is loopback-only", code, stderr)
	}
	e = env(nil, nil)
	code = cli.Main(ctx, []string{"serve", "--dir", dir, "--listen", "192.0.2.1:8080", "--tls-cert", filepath.Join(dir, "cert.pem")}, e)
	if stderr := e.Stderr.(*bytes.Buffer).String(); code != 1 || !strings.Contains(stderr, "together") {
		t.Errorf("serve with a certificate but no key: exit %d\n%s", code, stderr)
	}
	for _, bad := range [][]string{{"--max-conns", "-1"}, {"--idle-timeout", "-1s"}, {"--read-header-timeout", "-1s"}} {
		e = env(nil, nil)
		code = cli.Main(ctx, append([]string{"serve", "--dir", dir}, bad...), e)
		if stderr := e.Stderr.(*bytes.Buffer).String(); code != 1 || !strings.Contains(stderr, "negative") {
			t.Errorf("serve %v: exit %d\n%s\nwant exit 1 saying the value is negative", bad, code, stderr)
		}
	}
}

func TestServe(t *testing.T) {
	dir := devProject(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	lines := make(chan string, 1000)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			select {
			case lines <- s.Text():
			default: // never block the server's logger
			}
		}
		close(lines)
	}()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"serve", "--dir", dir, "--listen", "127.0.0.1:0", "--max-conns", "7", "--idle-timeout", "3s"},
			cli.Env{Stdout: io.Discard, Stderr: pw, Getenv: func(string) string { return "" }})
		pw.Close()
	}()

	// The command logs msg=serving with the bound address, then the server
	// logs msg=serving again once its content is loaded.
	var addr string
	var log []string
	for ready := false; !ready; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("serve stopped logging: exit %d\n%s", <-done, strings.Join(log, "\n"))
			}
			log = append(log, line)
			if !strings.Contains(line, "msg=serving") {
				continue
			}
			if addr != "" {
				ready = true
			}
			for _, f := range strings.Fields(line) {
				if a, ok := strings.CutPrefix(f, "addr="); ok {
					addr = a
				}
			}
		case code := <-done:
			t.Fatalf("serve exited %d before serving:\n%s", code, strings.Join(log, "\n"))
		}
	}

	// The server's own msg=serving line states the connection settings.
	if last := log[len(log)-1]; !strings.Contains(last, "max_conns=7") || !strings.Contains(last, "idle_timeout=3s") {
		t.Errorf("serving with --max-conns 7 --idle-timeout 3s logs %q", last)
	}

	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
		}
		return body
	}
	root, err := os.ReadFile(project.DeviceRootPath(dir, "release"))
	if err != nil {
		t.Fatal(err)
	}
	if got := get("/repo/release/metadata/root.json"); !bytes.Equal(got, root) {
		t.Error("served release root.json is not the device root")
	}
	if got := get("/repo/release/metadata/1.root.json"); !bytes.Equal(got, root) {
		t.Error("served 1.root.json is not the device root")
	}
	get("/repo/fleet/metadata/timestamp.json")

	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d after cancellation, want 0", code)
	}
}

func TestReleaseAddCompressZstd(t *testing.T) {
	tmp := t.TempDir()
	dir := devProject(t)
	img := strings.Repeat("firmware ", 10_000)
	payload := writeFile(t, tmp, "fw.img", img)
	r := mustRun(t, nil, "release", "add", "thermostat", "1.1.0", payload, "--kind", "security", "--security-version", "2",
		"--compress", "zstd", "--dir", dir)
	if !strings.Contains(r.stdout, "zstd-compressed; image 90000 bytes") {
		t.Errorf("release add --compress zstd output:\n%s", r.stdout)
	}
	p := openProject(t, dir)
	defer p.Close()
	rels, err := p.Store.Releases(t.Context(), "thermostat")
	if err != nil || len(rels) != 1 {
		t.Fatalf("releases: %v, %v", rels, err)
	}
	var m release.Manifest
	if err := json.Unmarshal(rels[0].Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Payload.Compression != "zstd" || m.Payload.ImageLength != int64(len(img)) || rels[0].Length >= int64(len(img)) {
		t.Errorf("release %+v, manifest payload %+v", rels[0], m.Payload)
	}
	r = run(t, nil, "release", "add", "thermostat", "1.2.0", payload, "--kind", "security", "--security-version", "2",
		"--compress", "gzip", "--dir", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "--compress") {
		t.Errorf("release add --compress gzip: %v; want usage error", r)
	}
	// --zstd-frame: accepted with zstd and a size of at least 256 KiB.
	big := writeFile(t, tmp, "big.img", strings.Repeat("firmware ", 200_000))
	mustRun(t, nil, "release", "add", "thermostat", "1.2.0", big, "--kind", "security", "--security-version", "2",
		"--compress", "zstd", "--zstd-frame", "512KiB", "--dir", dir)
	for _, bad := range [][]string{{"--zstd-frame", "1MiB"}, {"--compress", "zstd", "--zstd-frame", "4KiB"},
		{"--compress", "zstd", "--zstd-frame", "lots"}} {
		args := append([]string{"release", "add", "thermostat", "1.3.0", big, "--kind", "security", "--security-version", "2", "--dir", dir}, bad...)
		if r := run(t, nil, args...); r.code != 2 || !strings.Contains(r.stderr, "--zstd-frame") {
			t.Errorf("release add %v: %v; want a usage error naming --zstd-frame", bad, r)
		}
	}
}
