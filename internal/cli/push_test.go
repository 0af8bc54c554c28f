package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/uptrust/uptrust/internal/blob/s3test"
	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/deviceapi"
)

// getStatus answers the status and body of GET url.
func getStatus(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitServed waits until the public listener serves path with status 200
// (the server reloads its content within the 2 s generation poll).
func waitServed(t *testing.T, public, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := getStatus(t, "http://"+public+path)
		if code == 200 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %d after 30 s", path, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// TestPushAndPull: a server started from a server kit serves nothing until
// the offline machine pushes; a push publishes releases to devices; a
// second offline machine is told to pull, pulls, and publishes on top; the
// first one, now behind, is refused until it pulls.
func TestPushAndPull(t *testing.T) {
	off := devProject(t)
	second := copyDir(t, off)
	tmp := t.TempDir()
	img := writeFile(t, tmp, "img-1.1.0", strings.Repeat("image 1.1.0 ", 4000))
	mustRun(t, nil, "release", "add", "thermostat", "1.1.0", img, "--kind", "security", "--security-version", "1", "--dir", off)

	kit := filepath.Join(tmp, "kit")
	mustRun(t, nil, "server-kit", "--dir", off, "--out", kit)
	if _, err := os.Stat(filepath.Join(kit, "keys", "offline")); !os.IsNotExist(err) {
		t.Fatalf("the kit holds offline keys (%v)", err)
	}
	s := startServe(t, kit, "--bootstrap-token-file", filepath.Join(kit, "admin-token"))
	if code, b := getStatus(t, "http://"+s.public+"/readyz"); code != 503 {
		t.Errorf("/readyz before the first push: %d %s, want 503", code, b)
	}
	admin := strings.TrimSpace(string(readFileT(t, filepath.Join(kit, "admin-token"))))
	server := "http://" + s.admin
	rm := strings.TrimSpace(mustRun(t, nil, "token", "create", "--name", "release-ci", "--role", "release-manager", "--server", server, "--token", admin).stdout)
	op := strings.TrimSpace(mustRun(t, nil, "token", "create", "--name", "ops", "--role", "operator", "--server", server, "--token", admin).stdout)

	if r := run(t, nil, "push", "--dir", off, "--server", server, "--token", op); r.code != 1 || !strings.Contains(r.stderr, "403") {
		t.Errorf("push with an operator token: %+v", r)
	}
	r := mustRun(t, nil, "push", "--dir", off, "--server", server, "--token", rm)
	if !strings.Contains(r.stdout, "releases added: thermostat/1.1.0") || !strings.Contains(r.stdout, "products added: thermostat") {
		t.Errorf("push:\n%s", r.stdout)
	}
	waitServed(t, s.public, "/readyz")
	rel := mustRun(t, nil, "release", "list", "--json", "--dir", off)
	var rels []struct{ SHA256 string }
	if err := json.Unmarshal([]byte(rel.stdout), &rels); err != nil || len(rels) != 1 {
		t.Fatalf("release list --json: %v %s", err, rel.stdout)
	}
	payload := waitServed(t, s.public, deviceapi.TargetPath(deviceapi.ReleaseBase, "thermostat/1.1.0", rels[0].SHA256))
	if string(payload) != string(readFileT(t, img)) {
		t.Error("the served payload differs from the released image")
	}
	if r := mustRun(t, nil, "push", "--dir", off, "--server", server, "--token", rm); !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("second push:\n%s", r.stdout)
	}

	// The second machine is behind: push refuses, pull catches up.
	if r := run(t, nil, "push", "--dir", second, "--server", server, "--token", rm); r.code != 1 || !strings.Contains(r.stderr, "uptrust pull") {
		t.Errorf("push from a machine that is behind: %+v", r)
	}
	r = mustRun(t, nil, "pull", "--dir", second, "--server", server, "--token", rm)
	if !strings.Contains(r.stdout, "releases added: thermostat/1.1.0") {
		t.Errorf("pull:\n%s", r.stdout)
	}
	img2 := writeFile(t, tmp, "img-1.2.0", strings.Repeat("image 1.2.0 ", 4000))
	mustRun(t, nil, "release", "add", "thermostat", "1.2.0", img2, "--kind", "security", "--security-version", "1", "--delta-from", "1.1.0", "--dir", second)
	if r := mustRun(t, nil, "push", "--json", "--dir", second, "--server", server, "--token", rm); !strings.Contains(r.stdout, `"thermostat/1.2.0"`) {
		t.Errorf("push from the second machine:\n%s", r.stdout)
	}
	// The first machine signs 1.3.0 on top of what it has: refused.
	img3 := writeFile(t, tmp, "img-1.3.0", "image 1.3.0")
	mustRun(t, nil, "release", "add", "thermostat", "1.3.0", img3, "--kind", "security", "--security-version", "1", "--dir", off)
	if r := run(t, nil, "push", "--dir", off, "--server", server, "--token", rm); r.code != 1 || !strings.Contains(r.stderr, "signed independently") {
		t.Errorf("push of a fork: %+v", r)
	}
	var audit []struct{ Action, Actor, Outcome string }
	if err := json.Unmarshal([]byte(mustRun(t, nil, "audit", "--json", "--action", "push", "--server", server, "--token", admin).stdout), &audit); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, e := range audit {
		if e.Actor == "release-ci" {
			outcomes[e.Outcome]++
		}
	}
	// The refusals above happen on the offline machine, before anything
	// is sent: only the two pushes reach the log.
	if outcomes["ok"] != 2 || len(outcomes) != 1 {
		t.Errorf("push audit entries by release-ci: %v (%+v)", outcomes, audit)
	}
}

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = cli.Main

// TestPushToS3: the server keeps pushed payloads in a bucket (a real
// SeaweedFS) and serves them; a pull into a fresh copy downloads them
// through the server.
func TestPushToS3(t *testing.T) {
	bucket := s3test.Start(t)
	off := devProject(t)
	fresh := copyDir(t, off)
	tmp := t.TempDir()
	img := writeFile(t, tmp, "img-1.1.0", strings.Repeat("image 1.1.0 on s3 ", 100_000))
	mustRun(t, nil, "release", "add", "thermostat", "1.1.0", img, "--kind", "security", "--security-version", "1", "--dir", off)
	kit := filepath.Join(tmp, "kit")
	mustRun(t, nil, "server-kit", "--dir", off, "--out", kit)
	s := startServeEnv(t, kit, s3test.Getenv, "--blobs", bucket.URL(), "--bootstrap-token-file", filepath.Join(kit, "admin-token"))
	admin := strings.TrimSpace(string(readFileT(t, filepath.Join(kit, "admin-token"))))
	server := "http://" + s.admin
	rm := strings.TrimSpace(mustRun(t, nil, "token", "create", "--name", "rm", "--role", "release-manager", "--server", server, "--token", admin).stdout)
	mustRun(t, nil, "push", "--dir", off, "--server", server, "--token", rm)
	var rels []struct{ SHA256 string }
	if err := json.Unmarshal([]byte(mustRun(t, nil, "release", "list", "--json", "--dir", off).stdout), &rels); err != nil || len(rels) != 1 {
		t.Fatalf("release list: %v", err)
	}
	if _, err := bucket.Client().StatObject(t.Context(), bucket.Bucket, "sha256/"+rels[0].SHA256[:2]+"/"+rels[0].SHA256, minio.StatObjectOptions{}); err != nil {
		t.Errorf("the pushed payload is not in the bucket: %v", err)
	}
	payload := waitServed(t, s.public, deviceapi.TargetPath(deviceapi.ReleaseBase, "thermostat/1.1.0", rels[0].SHA256))
	if string(payload) != string(readFileT(t, img)) {
		t.Error("the served payload differs from the released image")
	}
	if r := mustRun(t, nil, "pull", "--dir", fresh, "--server", server, "--token", rm); !strings.Contains(r.stdout, "releases added: thermostat/1.1.0") {
		t.Errorf("pull:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(fresh, "blobs", "sha256", rels[0].SHA256[:2], rels[0].SHA256)); err != nil {
		t.Errorf("pull did not bring the payload: %v", err)
	}
}
