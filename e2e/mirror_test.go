package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/slot/slottest"
	uptrust "github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/mirror"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/sim"
)

// uptrustCmd runs `uptrust args... --dir <project>` and returns its
// standard output; a non-zero exit fails the test.
func (w *world) uptrustCmd(args ...string) string {
	w.t.Helper()
	var stdout, stderr bytes.Buffer
	env := uptrust.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	code := uptrust.Main(context.Background(), append(args, "--dir", w.p.Dir), env)
	if code != 0 {
		w.t.Fatalf("uptrust %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// mirrorCmd runs `uptrust mirror args...`.
func (w *world) mirrorCmd(args ...string) string {
	w.t.Helper()
	return w.uptrustCmd(append([]string{"mirror"}, args...)...)
}

// mirrorOptions are the options `uptrust mirror sync` uses.
func (w *world) mirrorOptions() mirror.Options {
	return mirror.Options{Resigner: w.p, Repositories: []string{deviceapi.ReleaseBase, deviceapi.FleetBase}, Clock: w.p.Clock}
}

// nginx is a real nginx serving a directory on loopback.
type nginx struct {
	url string
	log string // access log: "<request line> <status>" per line
}

// nginxConf is a minimal configuration around dist/nginx/uptrust-mirror.conf:
// one process, no daemon, every path in the test's temp dir.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
error_log {{tmp}}/error.log warn;
pid {{tmp}}/nginx.pid;
events { worker_connections 128; }
http {
	{{mime}}
	default_type application/octet-stream;
	log_format uptrust '$request $status';
	access_log {{tmp}}/access.log uptrust;
	client_body_temp_path {{tmp}}/body;
	proxy_temp_path {{tmp}}/proxy;
	fastcgi_temp_path {{tmp}}/fastcgi;
	uwsgi_temp_path {{tmp}}/uwsgi;
	scgi_temp_path {{tmp}}/scgi;
	server {
		listen 127.0.0.1:{{port}};
		root {{root}};
		include {{snippet}};
	}
}
`

// startNginx serves root with Debian's nginx (package nginx-light) and the
// configuration the README recommends. Without nginx the test is skipped,
// or fails if UPTRUST_REQUIRE_TOOLS is set.
func startNginx(t *testing.T, root string) *nginx {
	t.Helper()
	bin := slottest.RequireTool(t, "/usr/sbin/nginx", "nginx-light")
	snippet, err := filepath.Abs("../dist/nginx/uptrust-mirror.conf")
	if err != nil {
		t.Fatal(err)
	}
	mime := ""
	if _, err := os.Stat("/etc/nginx/mime.types"); err == nil {
		mime = "include /etc/nginx/mime.types;"
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		tmp := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		conf := strings.NewReplacer("{{tmp}}", tmp, "{{mime}}", mime, "{{port}}", fmt.Sprint(port),
			"{{root}}", root, "{{snippet}}", snippet).Replace(nginxConf)
		confPath := filepath.Join(tmp, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, "-p", tmp, "-c", confPath, "-e", "stderr")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if lastErr = waitListening(addr, exited); lastErr != nil {
			cmd.Process.Kill()
			lastErr = fmt.Errorf("%w\n%s", lastErr, out.String())
			continue // most likely someone took the port
		}
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			<-exited
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(tmp, "error.log"))
				t.Logf("nginx output:\n%s%s", out.String(), b)
			}
		})
		return &nginx{url: "http://" + addr, log: filepath.Join(tmp, "access.log")}
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return nil
}

// waitListening waits until addr accepts connections or the process exits.
func waitListening(addr string, exited <-chan error) error {
	for i := 0; i < 1000; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("nginx exited: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("nginx is not listening after 10 s")
}

// requests returns the access log lines.
func (n *nginx) requests(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(n.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// mirrorDevice provisions a device that talks to base instead of the
// world's server.
func (w *world) mirrorDevice(name, base string) *sim.Device {
	w.t.Helper()
	saved := w.url
	w.url = base
	defer func() { w.url = saved }()
	return w.device(name, 0)
}

// assertNoError checks that d's last check ended without an error class.
func assertNoError(t *testing.T, d *sim.Device) {
	t.Helper()
	if st := status(t, d); st.LastCheck == nil || st.LastCheck.ErrorClass != "" {
		t.Fatalf("%s: last check %+v, want no error", d.Name, st.LastCheck)
	}
}

// TestMirrorNginx: a device updates from an exported tree served by nginx,
// sees nothing new while the mirror is behind, and sees new rollouts and
// releases after `uptrust mirror sync`.
func TestMirrorNginx(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity) // published, not rolled out
	dir := filepath.Join(t.TempDir(), "mirror")
	out := w.mirrorCmd("export", dir)
	if !strings.Contains(out, "/repo/release: timestamp v") || !strings.Contains(out, "mirror sync") {
		t.Errorf("export output does not name the timestamps and the next step:\n%s", out)
	}
	for _, f := range []string{"repo/release/metadata/1.root.json", "repo/release/metadata/timestamp.json",
		"repo/fleet/metadata/timestamp.json", "repo/release/metadata/2.products/thermostat.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("exported tree: %v", err)
		}
	}
	ng := startNginx(t, dir)
	d := w.mirrorDevice("d", ng.url)

	w.cycle(d)
	w.assertRunning(d, "1.0.0")
	assertNoError(t, d)
	// The delegated role went over the wire as "%2F" and nginx found the
	// file in the products/ subdirectory.
	delegated := false
	for _, l := range ng.requests(t) {
		if strings.Contains(l, ".products%2Fthermostat.json ") && strings.HasSuffix(l, " 200") {
			delegated = true
		}
	}
	if !delegated {
		t.Fatalf("no successful request for an escaped delegated role in:\n%s", strings.Join(ng.requests(t), "\n"))
	}

	// The rollout starts; until the mirror syncs, devices do not see it.
	w.rollout("1.1.0", 100)
	w.cycle(d)
	w.assertRunning(d, "1.0.0")
	assertNoError(t, d)
	if out := w.mirrorCmd("sync", dir); !strings.Contains(out, "files written") {
		t.Errorf("sync output: %s", out)
	}
	w.cycle(d)
	w.assertRunning(d, "1.1.0")

	// A halt is a rollout change too: a device still on 1.0.0 sees it.
	d2 := w.mirrorDevice("d2", ng.url)
	w.publish("1.2.0", 3, release.KindSecurity)
	w.rollout("1.2.0", 100)
	w.uptrustCmd("rollout", "halt", product)
	w.mirrorCmd("sync", dir)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	w.cycle(d2)
	w.assertRunning(d2, "1.0.0")
	w.uptrustCmd("rollout", "resume", product)
	w.mirrorCmd("sync", dir)
	w.cycle(d)
	w.assertRunning(d, "1.2.0")
}

// TestMirrorSyncIsAtomic runs a device check after every file a sync
// changes: a device must never see a tree it rejects. Publishing the fleet
// repository's timestamp before the release repository's would show the
// fleet offering a release the release repository does not sign yet; the
// second subtest shows that the check catches exactly that.
func TestMirrorSyncIsAtomic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		repos []string
		// wantMismatch: some intermediate tree is refused.
		wantMismatch bool
	}{
		{"release first", []string{deviceapi.ReleaseBase, deviceapi.FleetBase}, false},
		{"fleet first", []string{deviceapi.FleetBase, deviceapi.ReleaseBase}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			dir := filepath.Join(t.TempDir(), "mirror")
			w.mirrorCmd("export", dir)
			ng := startNginx(t, dir)
			d := w.mirrorDevice("d", ng.url)
			w.cycle(d)
			assertNoError(t, d)

			w.publish("1.1.0", 2, release.KindSecurity)
			w.rollout("1.1.0", 100)
			o := w.mirrorOptions()
			o.Repositories = tc.repos
			var classes, timestamps []string
			o.AfterStep = func(ctx context.Context, s mirror.Step) error {
				if strings.HasSuffix(s.Path, "/timestamp.json") {
					timestamps = append(timestamps, s.Path)
				}
				if _, err := d.Cycle(ctx); err != nil {
					return fmt.Errorf("device check after %s: %w", s, err)
				}
				st, err := d.Status(ctx)
				if err != nil {
					return err
				}
				if c := st.LastCheck.ErrorClass; c != "" {
					classes = append(classes, fmt.Sprintf("%s after %s: %s", c, s, st.LastCheck.Reason))
				}
				return nil
			}
			if _, err := mirror.Sync(context.Background(), dir, w.p, o); err != nil {
				t.Fatal(err)
			}
			if len(timestamps) != 2 {
				t.Fatalf("the sync published timestamps %v, want both", timestamps)
			}
			switch {
			case tc.wantMismatch && (len(classes) == 0 || !strings.HasPrefix(classes[0], string(report.ClassRepoMismatch))):
				t.Fatalf("publishing the fleet first went unnoticed: %v", classes)
			case !tc.wantMismatch && len(classes) > 0:
				t.Fatalf("a device saw a half-synced mirror:\n%s", strings.Join(classes, "\n"))
			}
			// Either way the finished sync serves a consistent tree.
			w.assertRunning(d, "1.1.0")
		})
	}
}

// TestMirrorCacheHeaders: the built-in server and nginx with
// dist/nginx/uptrust-mirror.conf answer with the same cache rules.
func TestMirrorCacheHeaders(t *testing.T) {
	w := offered(t, worldOptions{})
	dir := filepath.Join(t.TempDir(), "mirror")
	w.mirrorCmd("export", dir)
	ng := startNginx(t, dir)
	c, err := w.p.Content(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var payload, targets, delegated string
	for p := range c.Payloads {
		if isPayload("1.1.0")(p) {
			payload = p
		}
	}
	for p := range c.Metadata {
		switch {
		case strings.HasPrefix(p, "/repo/fleet/metadata/") && strings.HasSuffix(p, ".targets.json"):
			targets = p
		case strings.Contains(p, ".products/"+product+".json"):
			// Requested the way go-tuf does: the role name path-escaped.
			delegated = strings.Replace(p, ".products/", ".products%2F", 1)
		}
	}
	const immutable, revalidate, missing = "public, max-age=31536000, immutable", "no-cache", "public, max-age=60"
	cases := []struct{ path, cache string }{
		{payload, immutable},
		{targets, immutable},
		{delegated, immutable},
		{"/repo/release/metadata/timestamp.json", revalidate},
		{"/repo/fleet/metadata/timestamp.json", revalidate},
		{"/repo/release/metadata/root.json", revalidate},
		{"/repo/release/metadata/99.root.json", missing}, // the next-root probe
	}
	for _, tc := range cases {
		if tc.path == "" {
			t.Fatalf("no file for a case with %q", tc.cache)
		}
		var bodies [][]byte
		for _, base := range []string{w.direct, ng.url} {
			resp, err := http.Get(base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("%s%s: Cache-Control %q, want %q", base, tc.path, got, tc.cache)
			}
			wantStatus := http.StatusOK
			if tc.cache == missing {
				wantStatus = http.StatusNotFound
			} else {
				bodies = append(bodies, b)
			}
			if resp.StatusCode != wantStatus {
				t.Errorf("%s%s: status %d, want %d", base, tc.path, resp.StatusCode, wantStatus)
			}
		}
		if len(bodies) == 2 && !bytes.Equal(bodies[0], bodies[1]) {
			t.Errorf("%s: nginx serves other bytes than the server", tc.path)
		}
	}
	// The bookkeeping files are not served.
	for _, p := range []string{"/.uptrust-mirror.json", "/.uptrust-mirror.lock"} {
		resp, err := http.Get(ng.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("nginx serves %s: %d", p, resp.StatusCode)
		}
	}
}

// symlinkRoot points the symlink link at target atomically, so that nginx
// serves one tree or the other.
func symlinkRoot(t *testing.T, link, target string) {
	t.Helper()
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// assertMirrorRefused checks that d runs version from a verified image and
// that both its status and `uptrust-agent status` name the error class.
func assertMirrorRefused(t *testing.T, w *world, d *sim.Device, version string, class report.Class, now time.Time) *agent.Status {
	t.Helper()
	st := w.assertRunning(d, version)
	if st.LastCheck == nil || st.LastCheck.ErrorClass != class || st.LastCheck.Reason == "" {
		t.Fatalf("%s: last check %+v, want error class %s with a reason", d.Name, st.LastCheck, class)
	}
	t.Logf("%s refused the mirror: %s: %s", d.Name, class, st.LastCheck.Reason)
	code, out, errOut := ownerCLI(t, d, "", now, "status")
	if code != 0 || !strings.Contains(out, "error class:      "+string(class)) || !strings.Contains(out, st.LastCheck.Reason) {
		t.Fatalf("uptrust-agent status: exit %d, does not say why:\n%s%s", code, out, errOut)
	}
	return st
}

// TestMirrorStale: a mirror that stopped syncing, or went back to an old
// tree, is refused with a reason the owner can read.
func TestMirrorStale(t *testing.T) {
	t.Run("expired timestamp", func(t *testing.T) {
		w := offered(t, worldOptions{})
		dir := filepath.Join(t.TempDir(), "mirror")
		w.mirrorCmd("export", dir)
		ng := startNginx(t, dir)
		d := w.mirrorDevice("d", ng.url)
		later := time.Now().Add(50 * time.Hour) // timestamps live 24 h; nobody ran sync
		d.Clock = clock.NewFake(later)
		w.cycle(d)
		st := assertMirrorRefused(t, w, d, "1.0.0", report.ClassMetadataExpired, later)
		if !strings.Contains(st.LastCheck.Reason, "timestamp") {
			t.Errorf("the reason does not name the expired role: %q", st.LastCheck.Reason)
		}
	})

	t.Run("old tree after a newer one", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		old := filepath.Join(t.TempDir(), "old")
		w.mirrorCmd("export", old)
		w.publish("1.1.0", 2, release.KindSecurity)
		w.rollout("1.1.0", 100)
		cur := filepath.Join(t.TempDir(), "new")
		w.mirrorCmd("export", cur)
		root := filepath.Join(t.TempDir(), "root")
		symlinkRoot(t, root, cur)
		ng := startNginx(t, root)
		d := w.mirrorDevice("d", ng.url)
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
		// The mirror is restored from an old backup: its timestamp is
		// still valid, but older than what the device has seen.
		symlinkRoot(t, root, old)
		w.cycle(d)
		assertMirrorRefused(t, w, d, "1.1.0", report.ClassMetadataRollback, time.Now())
	})
}

// TestMirrorMixedTree: a timestamp from a newer export over the files of an
// older one (a copy to an object store in the wrong order, a partial
// rsync) is refused, and the device keeps booting its verified image.
func TestMirrorMixedTree(t *testing.T) {
	w := newWorld(t, worldOptions{})
	old := filepath.Join(t.TempDir(), "old")
	w.mirrorCmd("export", old)
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	cur := filepath.Join(t.TempDir(), "new")
	w.mirrorCmd("export", cur)

	newTimestamps := func(t *testing.T, dst string) {
		for _, r := range []string{"release", "fleet"} {
			p := filepath.Join("repo", r, "metadata", "timestamp.json")
			b, err := os.ReadFile(filepath.Join(cur, p))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, p), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		mix   func(t *testing.T, dst string)
		class report.Class
		// reason is part of the reason the device gives.
		reason string
	}{
		{"timestamp without its snapshot", newTimestamps, report.ClassMetadataInvalid, ".snapshot.json"},
		{"snapshot from the older export", func(t *testing.T, dst string) {
			// The new timestamps and, under the new snapshots' names,
			// the old snapshots.
			newTimestamps(t, dst)
			for _, r := range []string{"release", "fleet"} {
				md := filepath.Join(dst, "repo", r, "metadata")
				oldSnap, newSnap := versionedFile(t, md, "snapshot"), versionedFile(t, filepath.Join(cur, "repo", r, "metadata"), "snapshot")
				b, err := os.ReadFile(filepath.Join(md, oldSnap))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(md, newSnap), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, report.ClassMetadataInvalid, "hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "mixed")
			if err := os.CopyFS(dst, os.DirFS(old)); err != nil {
				t.Fatal(err)
			}
			tc.mix(t, dst)
			ng := startNginx(t, dst)
			d := w.mirrorDevice("d-"+strings.ReplaceAll(tc.name, " ", "-"), ng.url)
			w.cycle(d)
			st := assertMirrorRefused(t, w, d, "1.0.0", tc.class, time.Now())
			if !strings.Contains(st.LastCheck.Reason, tc.reason) {
				t.Errorf("reason %q does not say %q", st.LastCheck.Reason, tc.reason)
			}
		})
	}
}

// versionedFile is the name of the highest version of role in dir.
func versionedFile(t *testing.T, dir, role string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	best, bestV := "", -1
	for _, e := range ents {
		var v int
		if _, err := fmt.Sscanf(e.Name(), "%d."+role+".json", &v); err == nil && strings.HasSuffix(e.Name(), "."+role+".json") && v > bestV {
			best, bestV = e.Name(), v
		}
	}
	if best == "" {
		t.Fatalf("no %s in %s", role, dir)
	}
	return best
}
