package project_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/repo"
)

func TestRotateRootKey(t *testing.T) {
	for _, dev := range []bool{true, false} {
		name := "production"
		if dev {
			name = "dev"
		}
		t.Run(name, func(t *testing.T) {
			var p *project.Project
			if dev {
				p = initDev(t, clock.NewFake(t0))
			} else {
				p = initProd(t, "correct horse battery staple")
			}
			ctx := t.Context()
			v1 := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease))
			keyPath := filepath.Join(p.Dir, "keys", "offline", "release-root-1.key")
			oldKey, err := keys.Load(keyPath, []byte("correct horse battery staple"))
			if err != nil {
				t.Fatal(err)
			}
			fleetRoot := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoFleet))

			if err := p.RotateRootKey(ctx, deviceapi.RepoRelease, 1); err != nil {
				t.Fatalf("RotateRootKey: %v", err)
			}
			root := latest(t, p, deviceapi.RepoRelease, repo.RoleRoot)
			if root.Version != 2 {
				t.Fatalf("root version %d, want 2", root.Version)
			}
			if got := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease)); !bytes.Equal(got, root.Body) {
				t.Error("device root file is not the new root")
			}
			if got := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoFleet)); !bytes.Equal(got, fleetRoot) {
				t.Error("fleet device root changed by a release root rotation")
			}
			retired, err := keys.Load(keyPath+".retired", []byte("correct horse battery staple"))
			if err != nil {
				t.Fatalf("retired key: %v", err)
			}
			if retired.KeyID() != oldKey.KeyID() {
				t.Error("the .retired file is not the old key")
			}
			newKey, err := keys.Load(keyPath, []byte("correct horse battery staple"))
			if err != nil {
				t.Fatal(err)
			}
			if enc, _ := keys.IsEncrypted(keyPath); enc == dev {
				t.Errorf("new root key encrypted %v in a dev=%v project", enc, dev)
			}
			r2, err := metadata.Root().FromBytes(root.Body)
			if err != nil {
				t.Fatal(err)
			}
			ids := r2.Signed.Roles[repo.RoleRoot].KeyIDs
			if contains(ids, oldKey.KeyID()) || !contains(ids, newKey.KeyID()) || len(ids) != p.Config.RootKeys {
				t.Errorf("root v2 keys %v: want the new key %s instead of %s", ids, newKey.KeyID(), oldKey.KeyID())
			}
			// A device provisioned with v1 follows the rotation.
			tm := verifyAsClient(t, p, deviceapi.RepoRelease, v1, t0)
			if tm.Root.Signed.Version != 2 {
				t.Errorf("client ends on root v%d", tm.Root.Signed.Version)
			}
			// The rotated set signs the next rotation.
			if err := p.RotateRootKey(ctx, deviceapi.RepoRelease, p.Config.RootKeys); err != nil {
				t.Fatalf("second rotation: %v", err)
			}
			verifyAsClient(t, p, deviceapi.RepoRelease, v1, t0)
		})
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func TestRotateRootKeyRefusals(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	ctx := t.Context()
	if err := p.RotateRootKey(ctx, "staging", 1); err == nil {
		t.Error("unknown repository accepted")
	}
	for _, i := range []int{0, 2} {
		if err := p.RotateRootKey(ctx, deviceapi.RepoFleet, i); err == nil {
			t.Errorf("root key index %d accepted with 1 root key", i)
		}
	}
}

func TestRotateRootKeyFailureKeepsOldKey(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	ctx := t.Context()
	dir := p.Dir
	keyPath := filepath.Join(dir, "keys", "offline", "release-root-1.key")
	oldKey, err := keys.Load(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	snapPath := filepath.Join(dir, "keys", "online", "release-snapshot.key")
	moved := filepath.Join(t.TempDir(), "release-snapshot.key")
	if err := os.Rename(snapPath, moved); err != nil {
		t.Fatal(err)
	}
	p = reopen(t, p, "")
	for range 2 {
		if err := p.RotateRootKey(ctx, deviceapi.RepoRelease, 1); err == nil {
			t.Fatal("rotation without the online snapshot key succeeded")
		}
	}
	k, err := keys.Load(keyPath, nil)
	if err != nil {
		t.Fatalf("root key after a failed rotation: %v", err)
	}
	if k.KeyID() != oldKey.KeyID() {
		t.Fatalf("a failed rotation replaced root key %s by the unpublished %s", oldKey.KeyID(), k.KeyID())
	}
	if v := latest(t, p, deviceapi.RepoRelease, repo.RoleRoot).Version; v != 1 {
		t.Fatalf("root version %d after failed rotations, want 1", v)
	}
	if err := os.Rename(moved, snapPath); err != nil {
		t.Fatal(err)
	}
	if err := p.RotateRootKey(ctx, deviceapi.RepoRelease, 1); err != nil {
		t.Fatalf("rotation once the online key is back: %v", err)
	}
	verifyAsClient(t, p, deviceapi.RepoRelease, readFile(t, project.DeviceRootPath(dir, deviceapi.RepoRelease)), t0)
}

func TestRotateRootKeyWithOneRootKeyAbsent(t *testing.T) {
	p := initProd(t, "correct horse battery staple")
	ctx := t.Context()
	v1 := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease))
	offline := filepath.Join(p.Dir, "keys", "offline")
	away := t.TempDir()
	if err := os.Rename(filepath.Join(offline, "release-root-3.key"), filepath.Join(away, "release-root-3.key")); err != nil {
		t.Fatal(err)
	}
	p = reopen(t, p, "correct horse battery staple")
	if err := p.RotateRootKey(ctx, deviceapi.RepoRelease, 1); err != nil {
		t.Fatalf("rotating key 1 with keys 1 and 2 present: %v", err)
	}
	verifyAsClient(t, p, deviceapi.RepoRelease, v1, t0)
}

func TestRotateRootKeyBelowThresholdRestoresKey(t *testing.T) {
	p := initProd(t, "correct horse battery staple")
	ctx := t.Context()
	offline := filepath.Join(p.Dir, "keys", "offline")
	away := t.TempDir()
	for _, n := range []string{"release-root-2.key", "release-root-3.key"} {
		if err := os.Rename(filepath.Join(offline, n), filepath.Join(away, n)); err != nil {
			t.Fatal(err)
		}
	}
	keyPath := filepath.Join(offline, "release-root-1.key")
	oldKey, err := keys.Load(keyPath, []byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	p = reopen(t, p, "correct horse battery staple")
	if err := p.RotateRootKey(ctx, deviceapi.RepoRelease, 1); err == nil {
		t.Fatal("rotation signed by 1 of a 2-of-3 root succeeded")
	}
	if k, err := keys.Load(keyPath, []byte("correct horse battery staple")); err != nil || k.KeyID() != oldKey.KeyID() {
		t.Fatalf("root key 1 after a failed rotation: %v (same key: %v)", err, err == nil && k.KeyID() == oldKey.KeyID())
	}
	if _, err := os.Stat(keyPath + ".retired"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed rotation left %s.retired: %v", keyPath, err)
	}
	for _, n := range []string{"release-root-2.key", "release-root-3.key"} {
		if err := os.Rename(filepath.Join(away, n), filepath.Join(offline, n)); err != nil {
			t.Fatal(err)
		}
	}
	// Same Project: nothing cached from the failed attempt may get in the way.
	if err := p.RotateRootKey(ctx, deviceapi.RepoRelease, 1); err != nil {
		t.Fatalf("rotation with all keys back: %v", err)
	}
	if v := latest(t, p, deviceapi.RepoRelease, repo.RoleRoot).Version; v != 2 {
		t.Errorf("root version %d, want 2", v)
	}
}
