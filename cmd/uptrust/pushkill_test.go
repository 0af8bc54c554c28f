package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/testbin"
)

// server is a real `uptrust serve` process.
type server struct {
	cmd           *exec.Cmd
	public, admin string
}

// startServer runs `uptrust serve` on dir and waits for both addresses;
// admin is the admin listener's address to ask for ("127.0.0.1:0" the
// first time, the same port after a restart).
func startServer(t *testing.T, dir, admin string) *server {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "uptrust"), "serve", "--dir", dir, "--listen", "127.0.0.1:0",
		"--admin-listen", admin, "--log-format", "json", "--bootstrap-token-file", filepath.Join(dir, "admin-token"))
	cmd.Env = testbin.CleanEnv(false)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd}
	t.Cleanup(func() { s.kill() })
	sc := bufio.NewScanner(stderr)
	for (s.public == "" || s.admin == "") && sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if a, ok := rec["addr"].(string); ok && rec["msg"] == "serving" {
			s.public = a
		}
		if a, ok := rec["admin_addr"].(string); ok {
			s.admin = a
		}
	}
	if s.public == "" || s.admin == "" {
		t.Fatalf("serve logged no addresses")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return s
}

func (s *server) kill() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
}

// checkWhole opens the server's database and checks that every release row
// matches a target of the latest product role and the latest snapshot lists
// that role's latest version: a push is all there or not at all. It
// returns the versions published.
func checkWhole(t *testing.T, dir string) []string {
	t.Helper()
	p, err := project.Open(t.Context(), dir, project.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rels, err := p.Store.Releases(t.Context(), "thermostat")
	if err != nil {
		t.Fatal(err)
	}
	role, err := repo.LoadTargets(t.Context(), p.Store, deviceapi.RepoRelease, repo.ProductRole("thermostat"))
	if errors.Is(err, store.ErrNotFound) {
		// The first push did not land: nothing of it may be there.
		if len(rels) != 0 {
			t.Errorf("releases %v recorded without their product role", rels)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	snapDoc, err := p.Store.LatestMetadata(t.Context(), deviceapi.RepoRelease, repo.RoleSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := metadata.Snapshot().FromBytes(snapDoc.Body)
	if err != nil {
		t.Fatal(err)
	}
	if mf := snap.Signed.Meta["products/thermostat.json"]; mf == nil || mf.Version != role.Signed.Version {
		t.Errorf("the latest snapshot lists products/thermostat %+v, the latest role is v%d", mf, role.Signed.Version)
	}
	var versions []string
	for _, r := range rels {
		if _, ok := role.Signed.Targets["thermostat/"+r.Version]; !ok {
			t.Errorf("release %s is recorded but not in products/thermostat v%d", r.Version, role.Signed.Version)
		}
		versions = append(versions, r.Version)
	}
	for path, tf := range role.Signed.Targets {
		if tf.Custom != nil {
			if _, err := p.Store.Release(t.Context(), "thermostat", strings.TrimPrefix(path, "thermostat/")); err != nil {
				t.Errorf("target %s is signed but its release is not recorded: %v", path, err)
			}
		}
	}
	return versions
}

// TestPushSurvivesSIGKILL kills the server at different moments of a push
// and checks after each restart that the push is whole or absent, and that
// pushing again completes it.
func TestPushSurvivesSIGKILL(t *testing.T) {
	tmp := t.TempDir()
	off := filepath.Join(tmp, "offline")
	mustRun(t, "init", "--dir", off, "--dev")
	mustRun(t, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", off)
	kit := filepath.Join(tmp, "kit")
	mustRun(t, "server-kit", "--dir", off, "--out", kit)
	s := startServer(t, kit, "127.0.0.1:0")
	admin := s.admin
	adminTok := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(kit, "admin-token")))))
	rm := strings.TrimSpace(mustRun(t, "token", "create", "--name", "rm", "--role", "release-manager", "--server", "http://"+admin, "--token", adminTok).Stdout)
	addRelease := func(version string) {
		img := filepath.Join(tmp, "img-"+version)
		if err := os.WriteFile(img, []byte(strings.Repeat("image "+version+" ", 200_000)), 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "release", "add", "thermostat", version, img, "--kind", "security", "--security-version", "1", "--dir", off)
	}
	// One push undisturbed, to learn how long one takes here; the kills
	// then fall from a sixth of that to past its end.
	addRelease("1.0.0")
	start := time.Now()
	mustRun(t, "push", "--dir", off, "--server", "http://"+admin, "--token", rm)
	took := time.Since(start)
	killedBefore, killedAfter := 0, 0
	for i := 1; i <= 7; i++ {
		version := fmt.Sprintf("1.%d.0", i)
		addRelease(version)
		delay := took * time.Duration(i) / 6
		push := exec.Command(filepath.Join(binDir, "uptrust"), "push", "--dir", off, "--server", "http://"+admin, "--token", rm)
		push.Env = testbin.CleanEnv(false)
		if err := push.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		s.kill()
		// The client would retry until the server is back; this test
		// is about the server's state, so it stops the client too.
		_ = push.Process.Kill()
		_ = push.Wait()
		s = startServer(t, kit, admin)
		published := checkWhole(t, kit)
		if len(published) == i+1 {
			killedAfter++
		} else {
			killedBefore++
		}
		r := mustRun(t, "push", "--dir", off, "--server", "http://"+admin, "--token", rm)
		if got := checkWhole(t, kit); len(got) != i+1 {
			t.Fatalf("after pushing %s again the server has %v (push said %s)", version, got, r.Stdout)
		}
	}
	t.Logf("a push took %v; the server was killed before the push committed %d times, after %d times", took, killedBefore, killedAfter)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
