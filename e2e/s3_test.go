package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/blob/s3test"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/sim"
)

// buildUptrust builds cmd/uptrust into a temporary directory.
func buildUptrust(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "uptrust")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/uptrust")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// uptrustCLI runs the built binary with an environment.
type uptrustCLI struct {
	t   *testing.T
	bin string
	env []string
}

func (c uptrustCLI) run(args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c uptrustCLI) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("uptrust %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// startServe runs `uptrust serve` on a free loopback port and returns its
// URL once /readyz answers 200.
func (c uptrustCLI) startServe(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = c.env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	c.t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); <-done })
	addrRE := regexp.MustCompile(`msg=serving addr=(\S+)`)
	addr := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		cmd.Wait()
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case <-done:
		c.t.Fatal("uptrust serve exited before serving")
	}
	for range 100 {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("%s/readyz never answered 200", url)
	return ""
}

func get(t *testing.T, url string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// The whole path with payloads in a real S3 server (SeaweedFS): products
// and releases published with --blobs / UPTRUST_BLOBS land in the bucket
// and not in blobs/; a real `uptrust serve --blobs` serves them with Range
// requests; a device updates from it and verifies the image; with the
// object store down, metadata keeps being served and payloads get 503, and
// they come back when the store does, without a restart; a server started
// while the store is down refuses to start with a clear error.
func TestServeWithS3Blobs(t *testing.T) {
	s3 := s3test.Start(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	c := uptrustCLI{t: t, bin: buildUptrust(t), env: append(os.Environ(), s3test.Env()...)}
	c.must("init", "--dir", dir, "--dev")
	withEnv := uptrustCLI{t: t, bin: c.bin, env: append(append([]string{}, c.env...), "UPTRUST_BLOBS="+s3.URL())}
	withEnv.must("product", "add", product, "--hardware", hardware, "--support-until", time.Now().AddDate(3, 0, 0).Format(time.DateOnly), "--dir", dir)
	images := map[string][]byte{"1.0.0": image("1.0.0"), "1.1.0": image("1.1.0")}
	for i, v := range []string{"1.0.0", "1.1.0"} {
		f := filepath.Join(tmp, v+".img")
		if err := os.WriteFile(f, images[v], 0o644); err != nil {
			t.Fatal(err)
		}
		c.must("release", "add", product, v, f, "--kind", "security", "--security-version", fmt.Sprint(i+1), "--dir", dir, "--blobs", s3.URL())
	}
	c.must("rollout", "start", product, "1.1.0", "--percent", "100", "--dir", dir)
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			t.Errorf("%s written to the filesystem although --blobs names a bucket", p)
		}
		return nil
	})

	url := c.startServe("--dir", dir, "--blobs", s3.URL())
	sum := sha256.Sum256(images["1.1.0"])
	payload := url + "/repo/release/targets/" + product + "/" + hex.EncodeToString(sum[:]) + ".1.1.0"
	code, body, _ := get(t, payload)
	if code != http.StatusOK || !bytes.Equal(body, images["1.1.0"]) {
		t.Fatalf("payload GET: %d, %d bytes", code, len(body))
	}
	code, body, h := get(t, payload, "Range", "bytes=1000-4999")
	if code != http.StatusPartialContent || !bytes.Equal(body, images["1.1.0"][1000:5000]) ||
		h.Get("Content-Range") != fmt.Sprintf("bytes 1000-4999/%d", len(images["1.1.0"])) {
		t.Fatalf("Range GET: %d %q, %d bytes", code, h.Get("Content-Range"), len(body))
	}
	code, body, _ = get(t, payload, "Range", fmt.Sprintf("bytes=%d-", imgSize-10))
	if code != http.StatusPartialContent || !bytes.Equal(body, images["1.1.0"][imgSize-10:]) {
		t.Fatalf("suffix Range GET: %d, %d bytes", code, len(body))
	}

	rr, err := os.ReadFile(project.DeviceRootPath(dir, "release"))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := os.ReadFile(project.DeviceRootPath(dir, "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := sim.New(filepath.Join(tmp, "dev"), sim.Spec{Name: "dev", Server: url, Product: product, Hardware: hardware,
		ReleaseRoot: rr, FleetRoot: fr, Factory: images["1.0.0"], Version: "1.0.0", SecurityVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	d.HTTP = &fetch.Config{StallTimeout: 2 * time.Second, ConnectTimeout: time.Second, MaxAttempts: 3,
		BaseBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	if _, err := d.Cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, images: images}
	w.assertRunning(d, "1.1.0")

	s3.Stop()
	if code, _, _ := get(t, url+"/repo/fleet/metadata/timestamp.json"); code != http.StatusOK {
		t.Errorf("timestamp with the object store down: %d, want 200", code)
	}
	code, body, h = get(t, payload)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(string(body), "payload storage unavailable") {
		t.Errorf("payload with the object store down: %d %q Retry-After %q", code, body, h.Get("Retry-After"))
	}
	out, err := c.run("serve", "--listen", "127.0.0.1:0", "--dir", dir, "--blobs", s3.URL())
	if err == nil || !strings.Contains(out, "unreachable") || !strings.Contains(out, s3.Endpoint) {
		t.Errorf("serve with the object store down: %v\n%s", err, out)
	}
	if strings.Contains(out, s3test.SecretKey) {
		t.Errorf("serve shows the secret key:\n%s", out)
	}

	s3.Restart(t)
	code, body, _ = get(t, payload, "Range", "bytes=0-99")
	if code != http.StatusPartialContent || !bytes.Equal(body, images["1.1.0"][:100]) {
		t.Errorf("payload after the object store came back: %d, %d bytes", code, len(body))
	}
}
