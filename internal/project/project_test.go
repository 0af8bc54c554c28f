package project_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func pass(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

func initDev(t *testing.T, clk clock.Clock) *project.Project {
	t.Helper()
	p, err := project.Init(t.Context(), t.TempDir(), project.InitOptions{Dev: true, Options: project.Options{Clock: clk}})
	if err != nil {
		t.Fatalf("Init --dev: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func initProd(t *testing.T, passphrase string) *project.Project {
	t.Helper()
	p, err := project.Init(t.Context(), t.TempDir(), project.InitOptions{Options: project.Options{Clock: clock.NewFake(t0), Passphrase: pass(passphrase)}})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func thermostat() project.ProductSpec {
	return project.ProductSpec{Name: "thermostat", Hardware: []string{"rev-a", "rev-b"}, SupportUntil: "2031-12-31", Contact: "security@example.com"}
}

func addProduct(t *testing.T, p *project.Project, s project.ProductSpec) {
	t.Helper()
	if err := p.AddProduct(t.Context(), s); err != nil {
		t.Fatalf("AddProduct(%s): %v", s.Name, err)
	}
}

// onlyReader hides any io.Seeker or io.WriterTo so the payload is streamed.
type onlyReader struct{ io.Reader }

func releaseSpec(product, version string, sv uint64, payload string) project.ReleaseSpec {
	return project.ReleaseSpec{Product: product, Version: version, Payload: onlyReader{strings.NewReader(payload)},
		Kind: release.KindSecurity, SecurityVersion: sv, Notes: "fixes things"}
}

func addRelease(t *testing.T, p *project.Project, s project.ReleaseSpec) store.Release {
	t.Helper()
	pub, err := p.AddRelease(t.Context(), s)
	if err != nil {
		t.Fatalf("AddRelease(%s %s): %v", s.Product, s.Version, err)
	}
	return pub.Release
}

func latest(t *testing.T, p *project.Project, name, role string) store.Metadata {
	t.Helper()
	m, err := p.Store.LatestMetadata(t.Context(), name, role)
	if err != nil {
		t.Fatalf("LatestMetadata(%s, %s): %v", name, role, err)
	}
	return m
}

func loadTargets(t *testing.T, p *project.Project, name, role string) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	md, err := repo.LoadTargets(t.Context(), p.Store, name, role)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// verifyAsClient checks the latest metadata of a repository the way a
// device does, starting from the device root file written at Init time
// (trustRoot) and following every later root.
func verifyAsClient(t *testing.T, p *project.Project, name string, trustRoot []byte, at time.Time, delegated ...string) *trustedmetadata.TrustedMetadata {
	t.Helper()
	tm, err := trustedmetadata.New(trustRoot)
	if err != nil {
		t.Fatalf("%s: trusting the device root: %v", name, err)
	}
	tm.RefTime = at
	all, err := p.Store.AllMetadata(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	var roots []store.Metadata
	for _, m := range all {
		if m.Role == repo.RoleRoot && m.Version > tm.Root.Signed.Version {
			roots = append(roots, m)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].Version < roots[j].Version })
	for _, m := range roots {
		if _, err := tm.UpdateRoot(m.Body); err != nil {
			t.Fatalf("%s: client refuses root v%d: %v", name, m.Version, err)
		}
	}
	if _, err := tm.UpdateTimestamp(latest(t, p, name, repo.RoleTimestamp).Body); err != nil {
		t.Fatalf("%s: timestamp: %v", name, err)
	}
	if _, err := tm.UpdateSnapshot(latest(t, p, name, repo.RoleSnapshot).Body, false); err != nil {
		t.Fatalf("%s: snapshot: %v", name, err)
	}
	if _, err := tm.UpdateTargets(latest(t, p, name, repo.RoleTargets).Body); err != nil {
		t.Fatalf("%s: targets: %v", name, err)
	}
	for _, role := range delegated {
		if _, err := tm.UpdateDelegatedTargets(latest(t, p, name, role).Body, role, repo.RoleTargets); err != nil {
			t.Fatalf("%s: %s: %v", name, role, err)
		}
	}
	return tm
}

// reopen closes p and opens its directory again, so that no key is cached.
func reopen(t *testing.T, p *project.Project, passphrase string) *project.Project {
	t.Helper()
	p.Close()
	q, err := project.Open(t.Context(), p.Dir, project.Options{Clock: p.Clock, Passphrase: pass(passphrase)})
	if err != nil {
		t.Fatalf("reopening %s: %v", p.Dir, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func keyFiles(t *testing.T, dir, class string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "keys", class, "*.key"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInitDev(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	if !p.Config.Dev || p.Config.RootKeys != 1 || p.Config.RootThreshold != 1 {
		t.Errorf("dev config %+v, want dev 1-of-1", p.Config)
	}
	offline, online := keyFiles(t, p.Dir, "offline"), keyFiles(t, p.Dir, "online")
	// release: root-1, targets; fleet: root-1.
	if len(offline) != 3 {
		t.Errorf("offline keys %v, want 3", offline)
	}
	// release: snapshot, timestamp; fleet: targets, snapshot, timestamp.
	if len(online) != 5 {
		t.Errorf("online keys %v, want 5", online)
	}
	for _, f := range append(offline, online...) {
		if enc, err := keys.IsEncrypted(f); err != nil || enc {
			t.Errorf("%s: encrypted %v, %v; dev keys are all unencrypted", f, enc, err)
		}
	}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		root := latest(t, p, name, repo.RoleRoot)
		if root.Version != 1 {
			t.Errorf("%s root version %d, want 1", name, root.Version)
		}
		if got := readFile(t, project.DeviceRootPath(p.Dir, name)); !bytes.Equal(got, root.Body) {
			t.Errorf("%s device root file differs from the stored root", name)
		}
		verifyAsClient(t, p, name, readFile(t, project.DeviceRootPath(p.Dir, name)), t0)
	}
	// The configuration round-trips through Open.
	q, err := project.Open(t.Context(), p.Dir, project.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer q.Close()
	if !reflect.DeepEqual(q.Config, p.Config) {
		t.Errorf("reopened config %+v, want %+v", q.Config, p.Config)
	}
}

func TestInitProductionEncryptsOfflineKeys(t *testing.T) {
	p := initProd(t, "correct horse")
	if p.Config.Dev || p.Config.RootKeys != 3 || p.Config.RootThreshold != 2 {
		t.Errorf("production config %+v, want 2-of-3 roots", p.Config)
	}
	offline, online := keyFiles(t, p.Dir, "offline"), keyFiles(t, p.Dir, "online")
	if len(offline) != 7 || len(online) != 5 {
		t.Errorf("%d offline and %d online keys, want 7 and 5", len(offline), len(online))
	}
	for _, f := range offline {
		if enc, err := keys.IsEncrypted(f); err != nil || !enc {
			t.Errorf("offline key %s: encrypted %v, %v", f, enc, err)
		}
		if _, err := keys.Load(f, []byte("wrong")); !errors.Is(err, keys.ErrWrongPassphrase) {
			t.Errorf("offline key %s opens with the wrong passphrase: %v", f, err)
		}
		if _, err := keys.Load(f, []byte("correct horse")); err != nil {
			t.Errorf("offline key %s: %v", f, err)
		}
	}
	for _, f := range online {
		if enc, err := keys.IsEncrypted(f); err != nil || enc {
			t.Errorf("online key %s: encrypted %v, %v; the server needs it unattended", f, enc, err)
		}
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("online key %s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		root, err := metadata.Root().FromBytes(readFile(t, project.DeviceRootPath(p.Dir, name)))
		if err != nil {
			t.Fatal(err)
		}
		if r := root.Signed.Roles[repo.RoleRoot]; r.Threshold != 2 || len(r.KeyIDs) != 3 {
			t.Errorf("%s root: threshold %d of %d keys, want 2 of 3", name, r.Threshold, len(r.KeyIDs))
		}
	}
}

func TestInitProductionNeedsPassphrase(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []project.Options{{}, {Passphrase: pass("")}} {
		p, err := project.Init(t.Context(), dir, project.InitOptions{Options: o})
		if err == nil {
			p.Close()
			t.Fatal("production Init without a passphrase succeeded")
		}
		if !strings.Contains(err.Error(), "UPTRUST_PASSPHRASE") {
			t.Errorf("error %q does not mention UPTRUST_PASSPHRASE", err)
		}
	}
	wantErr := errors.New("no terminal")
	if _, err := project.Init(t.Context(), dir, project.InitOptions{Options: project.Options{Passphrase: func() ([]byte, error) { return nil, wantErr }}}); !errors.Is(err, wantErr) {
		t.Errorf("Init with a failing passphrase source: %v, want %v", err, wantErr)
	}
	if _, err := project.Open(t.Context(), dir, project.Options{}); !errors.Is(err, project.ErrNotProject) {
		t.Errorf("Open after refused Init: %v, want ErrNotProject", err)
	}
	// Nothing was left behind that blocks a proper Init.
	p, err := project.Init(t.Context(), dir, project.InitOptions{Options: project.Options{Passphrase: pass("correct horse battery staple")}})
	if err != nil {
		t.Fatalf("Init with a passphrase after refused attempts: %v", err)
	}
	p.Close()
}

func TestInitTwiceFails(t *testing.T) {
	p := initDev(t, nil)
	root := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease))
	q, err := project.Init(t.Context(), p.Dir, project.InitOptions{Dev: true})
	if err == nil {
		q.Close()
		t.Fatal("second Init in the same directory succeeded")
	}
	if got := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease)); !bytes.Equal(got, root) {
		t.Error("second Init rewrote the device root")
	}
}

func TestOpenNotAProject(t *testing.T) {
	_, err := project.Open(t.Context(), t.TempDir(), project.Options{})
	if !errors.Is(err, project.ErrNotProject) {
		t.Errorf("Open of an empty directory: %v, want ErrNotProject", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	p := initProd(t, "right horse battery staple")
	dir := p.Dir
	p.Close()
	q, err := project.Open(t.Context(), dir, project.Options{Passphrase: pass("wrong horse battery staple")})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer q.Close()
	err = q.AddProduct(t.Context(), thermostat())
	if !errors.Is(err, keys.ErrWrongPassphrase) {
		t.Fatalf("AddProduct with the wrong passphrase: %v, want keys.ErrWrongPassphrase", err)
	}
	if _, err := q.Store.Product(t.Context(), "thermostat"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("product stored despite the wrong passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "offline", "product-thermostat.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a product key was created despite the wrong passphrase: %v", err)
	}
	// The right passphrase works on the same directory.
	r, err := project.Open(t.Context(), dir, project.Options{Passphrase: pass("right horse battery staple")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	addProduct(t, r, thermostat())
	if enc, err := keys.IsEncrypted(filepath.Join(dir, "keys", "offline", "product-thermostat.key")); err != nil || !enc {
		t.Errorf("product key encrypted %v, %v; want encrypted", enc, err)
	}
}

func TestAddProductValidation(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	for _, tc := range []struct {
		name string
		edit func(*project.ProductSpec)
	}{
		{"upper-case name", func(s *project.ProductSpec) { s.Name = "Thermostat" }},
		{"slash in name", func(s *project.ProductSpec) { s.Name = "thermo/stat" }},
		{"leading dash", func(s *project.ProductSpec) { s.Name = "-thermostat" }},
		{"empty name", func(s *project.ProductSpec) { s.Name = "" }},
		{"dot-dot name", func(s *project.ProductSpec) { s.Name = ".." }},
		{"no hardware", func(s *project.ProductSpec) { s.Hardware = nil }},
		{"bad hardware name", func(s *project.ProductSpec) { s.Hardware = []string{"rev-a", "Rev B"} }},
		{"bad date", func(s *project.ProductSpec) { s.SupportUntil = "2031-13-01" }},
		{"date in another format", func(s *project.ProductSpec) { s.SupportUntil = "31.12.2031" }},
		{"no date", func(s *project.ProductSpec) { s.SupportUntil = "" }},
	} {
		s := thermostat()
		tc.edit(&s)
		if err := p.AddProduct(t.Context(), s); err == nil {
			t.Errorf("%s: AddProduct succeeded", tc.name)
		}
	}
	if ps, err := p.Store.Products(t.Context()); err != nil || len(ps) != 0 {
		t.Fatalf("products after refused adds: %v, %v", ps, err)
	}
	if v := latest(t, p, deviceapi.RepoRelease, repo.RoleTargets).Version; v != 1 {
		t.Errorf("release targets version %d after refused adds, want 1", v)
	}
	// None of the refusals left anything (such as a key) that blocks the real add.
	addProduct(t, p, thermostat())
	err := p.AddProduct(t.Context(), thermostat())
	if err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("duplicate product: %v, want an exists error", err)
	}
}

func TestAddProduct(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	addProduct(t, p, thermostat())
	ctx := t.Context()
	prod, err := p.Store.Product(ctx, "thermostat")
	if err != nil {
		t.Fatal(err)
	}
	if prod.Model != "thermostat" || !reflect.DeepEqual(prod.Hardware, []string{"rev-a", "rev-b"}) {
		t.Errorf("stored product %+v", prod)
	}
	top := loadTargets(t, p, deviceapi.RepoRelease, repo.RoleTargets)
	if top.Signed.Version != 2 || top.Signed.Delegations == nil || len(top.Signed.Delegations.Roles) != 1 {
		t.Fatalf("targets v%d delegations %+v, want v2 with one delegation", top.Signed.Version, top.Signed.Delegations)
	}
	d := top.Signed.Delegations.Roles[0]
	if d.Name != "products/thermostat" || !d.Terminating || d.Threshold != 1 || !reflect.DeepEqual(d.Paths, []string{"thermostat/*"}) || len(d.KeyIDs) != 1 {
		t.Errorf("delegation %+v", d)
	}
	pk, err := keys.Load(filepath.Join(p.Dir, "keys", "offline", "product-thermostat.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyIDs[0] != pk.KeyID() {
		t.Errorf("delegation trusts key %s, the product key is %s", d.KeyIDs[0], pk.KeyID())
	}
	// The signed support declaration.
	prodRole := loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat"))
	tf := prodRole.Signed.Targets["thermostat/support.json"]
	if tf == nil {
		t.Fatal("product role has no support.json")
	}
	path, err := p.Blobs.(*blob.Store).Path(hex.EncodeToString(tf.Hashes["sha256"]))
	if err != nil {
		t.Fatal(err)
	}
	body := readFile(t, path)
	if err := tf.VerifyLengthHashes(body); err != nil {
		t.Errorf("support.json blob: %v", err)
	}
	var sup release.Support
	if err := json.Unmarshal(body, &sup); err != nil {
		t.Fatal(err)
	}
	if sup.Product != "thermostat" || sup.Until != "2031-12-31" || sup.Contact != "security@example.com" || !sup.Issued.Equal(t0) {
		t.Errorf("support declaration %+v", sup)
	}
	tm := verifyAsClient(t, p, deviceapi.RepoRelease, readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease)), t0, repo.ProductRole("thermostat"))
	if tm.Snapshot.Signed.Meta["products/thermostat.json"] == nil {
		t.Error("snapshot does not list the product role")
	}
	// A second product: its own delegation next to the first.
	addProduct(t, p, project.ProductSpec{Name: "doorbell", Hardware: []string{"v1"}, SupportUntil: "2030-01-01"})
	top = loadTargets(t, p, deviceapi.RepoRelease, repo.RoleTargets)
	if len(top.Signed.Delegations.Roles) != 2 {
		t.Errorf("%d delegations after the second product, want 2", len(top.Signed.Delegations.Roles))
	}
	verifyAsClient(t, p, deviceapi.RepoRelease, readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease)), t0,
		repo.ProductRole("thermostat"), repo.ProductRole("doorbell"))
}

func TestAddRelease(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	addProduct(t, p, thermostat())
	clk.Advance(time.Hour)
	payload := strings.Repeat("firmware image 1.1.0\n", 50_000) // > 1 MiB, several copy buffers
	spec := releaseSpec("thermostat", "1.1.0", 2, payload)
	spec.Advisories = []release.Advisory{{ID: "CVE-2026-1", Summary: "summary"}}
	rel := addRelease(t, p, spec)
	sum := sha256.Sum256([]byte(payload))
	sha := hex.EncodeToString(sum[:])
	if rel.SHA256 != sha || rel.Length != int64(len(payload)) || rel.Target != "thermostat/1.1.0" || rel.SecurityVersion != 2 || rel.Kind != "security" {
		t.Errorf("release %+v", rel)
	}
	info, err := p.Blobs.Stat(context.Background(), sha)
	if err != nil || info.Size != int64(len(payload)) {
		t.Fatalf("blob %s: %+v, %v", sha, info, err)
	}
	if !bytes.Equal(readFile(t, info.Path), []byte(payload)) {
		t.Error("blob content differs from the payload")
	}
	stored, err := p.Store.Release(ctx, "thermostat", "1.1.0")
	if err != nil || stored.SHA256 != sha {
		t.Errorf("stored release %+v, %v", stored, err)
	}

	tm := verifyAsClient(t, p, deviceapi.RepoRelease, readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease)), clk.Now(), repo.ProductRole("thermostat"))
	tf := tm.Targets[repo.ProductRole("thermostat")].Signed.Targets["thermostat/1.1.0"]
	if tf == nil {
		t.Fatal("product role does not list thermostat/1.1.0")
	}
	if err := tf.VerifyLengthHashes([]byte(payload)); err != nil {
		t.Errorf("target does not describe the payload: %v", err)
	}
	if len(tf.Hashes) != 1 {
		t.Errorf("target lists hashes %v, want only sha256", tf.Hashes)
	}
	m, err := release.ManifestFromCustom(tf.Custom)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	want := release.Manifest{Product: "thermostat", Version: "1.1.0", Hardware: []string{"rev-a", "rev-b"}, SecurityVersion: 2,
		Kind: release.KindSecurity, Impact: release.Impact{DataCollection: release.ChangeNone, Functionality: release.ChangeNone},
		Notes: "fixes things", Advisories: spec.Advisories, Payload: release.Payload{Type: "rootfs", Compression: "none"}, Published: clk.Now()}
	if !reflect.DeepEqual(*m, want) {
		t.Errorf("manifest\n %+v\nwant\n %+v", *m, want)
	}
	var sm release.Manifest
	if err := json.Unmarshal(stored.Manifest, &sm); err != nil || !reflect.DeepEqual(sm, want) {
		t.Errorf("stored manifest %+v (%v), want the signed one", sm, err)
	}

	// Explicit hardware subset.
	spec = releaseSpec("thermostat", "1.2.0", 2, "1.2.0 for rev-b")
	spec.Hardware = []string{"rev-b"}
	addRelease(t, p, spec)
	tf = loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Signed.Targets["thermostat/1.2.0"]
	if m, err := release.ManifestFromCustom(tf.Custom); err != nil || !reflect.DeepEqual(m.Hardware, []string{"rev-b"}) {
		t.Errorf("1.2.0 manifest %+v, %v; want hardware [rev-b]", m, err)
	}
	// The earlier release stays listed.
	if loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Signed.Targets["thermostat/1.1.0"] == nil {
		t.Error("1.1.0 disappeared from the product role")
	}
}

func TestAddReleaseRefusals(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	ctx := t.Context()
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 2, "one"))
	before := latest(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Version
	beforeTS := latest(t, p, deviceapi.RepoRelease, repo.RoleTimestamp).Version

	_, err := p.AddRelease(ctx, releaseSpec("thermostat", "1.1.0", 2, "another payload"))
	if err == nil || !strings.Contains(err.Error(), "published already") {
		t.Errorf("duplicate version: %v", err)
	}
	_, err = p.AddRelease(ctx, releaseSpec("thermostat", "1.2.0", 1, "lower"))
	if !errors.Is(err, release.ErrSecurityVersionLower) {
		t.Errorf("lower security version: %v, want ErrSecurityVersionLower", err)
	}
	spec := releaseSpec("thermostat", "1.2.0", 2, "hw")
	spec.Hardware = []string{"rev-c"}
	if _, err = p.AddRelease(ctx, spec); err == nil || !strings.Contains(err.Error(), "rev-c") {
		t.Errorf("unknown hardware: %v, want an error naming rev-c", err)
	}
	if _, err = p.AddRelease(ctx, releaseSpec("thermostat", "1.2.0", 2, "")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty payload: %v, want an empty payload error", err)
	}
	if _, err = p.AddRelease(ctx, releaseSpec("toaster", "1.0.0", 1, "t")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown product: %v, want store.ErrNotFound", err)
	}
	if _, err = p.AddRelease(ctx, releaseSpec("thermostat", "v1.2.0", 2, "v")); err == nil {
		t.Error("version with a leading v accepted")
	}
	spec = releaseSpec("thermostat", "1.2.0", 2, "k")
	spec.Kind = "urgent"
	if _, err = p.AddRelease(ctx, spec); err == nil {
		t.Error("unknown kind accepted")
	}
	p.Config.MaxPayloadBytes = 4
	_, err = p.AddRelease(ctx, releaseSpec("thermostat", "1.2.0", 2, "too large"))
	if !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("payload above MaxPayloadBytes: %v, want blob.ErrTooLarge", err)
	}
	p.Config.MaxPayloadBytes = 0

	rels, err := p.Store.Releases(ctx, "thermostat")
	if err != nil || len(rels) != 1 {
		t.Errorf("releases after refusals: %v, %v; want only 1.1.0", rels, err)
	}
	if v := latest(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Version; v != before {
		t.Errorf("product role version %d after refusals, want %d", v, before)
	}
	if v := latest(t, p, deviceapi.RepoRelease, repo.RoleTimestamp).Version; v != beforeTS {
		t.Errorf("timestamp version %d after refusals, want %d", v, beforeTS)
	}
	// Equal and higher security versions are fine.
	addRelease(t, p, releaseSpec("thermostat", "1.2.0", 2, "same"))
	addRelease(t, p, releaseSpec("thermostat", "1.3.0", 5, "higher"))
	if _, err = p.AddRelease(ctx, releaseSpec("thermostat", "1.4.0", 4, "below 5")); !errors.Is(err, release.ErrSecurityVersionLower) {
		t.Errorf("security version below the latest but above older ones: %v, want ErrSecurityVersionLower", err)
	}
}

// fleetTargets returns the targets of the latest fleet targets role.
// On a machine without the online keys the rotation cannot re-sign snapshot
// and timestamp; it must fail without losing the current root key, and a
// later attempt where the keys are present must still succeed.
func TestContent(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	ctx := t.Context()
	addProduct(t, p, thermostat())
	rel := addRelease(t, p, releaseSpec("thermostat", "1.1.0", 1, "payload 1.1.0"))
	if _, err := p.StartRollout(ctx, "thermostat", "1.1.0", 10); err != nil {
		t.Fatal(err)
	}
	c, err := p.Content(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{deviceapi.ReleaseBase, deviceapi.FleetBase} {
		name := strings.TrimPrefix(base, "/repo/")
		for _, role := range []string{"root", "timestamp", "targets", "snapshot"} {
			m := latest(t, p, name, role)
			path := deviceapi.MetadataPath(base, role, m.Version)
			if !bytes.Equal(c.Metadata[path], m.Body) {
				t.Errorf("content %s is not the latest %s %s", path, name, role)
			}
		}
		if !bytes.Equal(c.Metadata[base+"/metadata/root.json"], readFile(t, project.DeviceRootPath(p.Dir, name))) {
			t.Errorf("%s/metadata/root.json is not the device root", base)
		}
	}
	if c.Metadata[deviceapi.ReleaseBase+"/metadata/2.products/thermostat.json"] == nil {
		t.Error("the product role is not served")
	}
	wantPayloads := map[string]string{
		deviceapi.ReleaseBase + "/targets/thermostat/" + rel.SHA256 + ".1.1.0": rel.SHA256,
		deviceapi.FleetBase + "/targets/thermostat/" + rel.SHA256 + ".1.1.0":   rel.SHA256,
	}
	supportTF := loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Signed.Targets["thermostat/support.json"]
	supSHA := hex.EncodeToString(supportTF.Hashes["sha256"])
	wantPayloads[deviceapi.ReleaseBase+"/targets/thermostat/"+supSHA+".support.json"] = supSHA
	if len(c.Payloads) != len(wantPayloads) {
		t.Errorf("payloads %v, want %v", c.Payloads, wantPayloads)
	}
	for path, sha := range wantPayloads {
		pf, ok := c.Payloads[path]
		if !ok {
			t.Errorf("payload %s not served", path)
			continue
		}
		body, err := os.ReadFile(pf.Path)
		if err != nil {
			t.Errorf("payload %s: %v", path, err)
			continue
		}
		got := sha256.Sum256(body)
		if hex.EncodeToString(got[:]) != sha || pf.SHA256 != sha || pf.Size != int64(len(body)) {
			t.Errorf("payload %s: file sha %x size %d, entry %+v, want sha %s", path, got, len(body), pf, sha)
		}
	}
	gen1, err := p.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Percent = 20 }); err != nil {
		t.Fatal(err)
	}
	if gen2, err := p.Generation(ctx); err != nil || gen2 == gen1 {
		t.Errorf("generation %d → %d (%v) across a publish; want a change", gen1, gen2, err)
	}
}

func TestResignDue(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	if changed, err := p.ResignDue(ctx); err != nil || changed {
		t.Fatalf("fresh project: ResignDue %v, %v; want nothing to do", changed, err)
	}
	ts := map[string]store.Metadata{}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		ts[name] = latest(t, p, name, repo.RoleTimestamp)
	}
	clk.Advance(p.Lifetimes().Timestamp/2 + time.Minute)
	changed, err := p.ResignDue(ctx)
	if err != nil || !changed {
		t.Fatalf("after half the timestamp lifetime: ResignDue %v, %v; want a change", changed, err)
	}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		now := latest(t, p, name, repo.RoleTimestamp)
		if now.Version != ts[name].Version+1 || !now.Expires.After(ts[name].Expires) {
			t.Errorf("%s timestamp v%d expiring %v, was v%d expiring %v", name, now.Version, now.Expires, ts[name].Version, ts[name].Expires)
		}
	}
	if changed, err := p.ResignDue(ctx); err != nil || changed {
		t.Errorf("second ResignDue: %v, %v; want nothing to do", changed, err)
	}
	// A device checking after the original timestamp expired still gets
	// valid metadata.
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		verifyAsClient(t, p, name, readFile(t, project.DeviceRootPath(p.Dir, name)), t0.Add(p.Lifetimes().Timestamp+time.Hour))
	}

	// Only the release repository due: a rollout has just re-signed the fleet.
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.0.0", 1, "fw"))
	clk.Advance(p.Lifetimes().Timestamp/2 + time.Minute)
	if _, err := p.StartRollout(ctx, "thermostat", "1.0.0", 5); err != nil {
		t.Fatal(err)
	}
	fleetTS := latest(t, p, deviceapi.RepoFleet, repo.RoleTimestamp).Version
	releaseTS := latest(t, p, deviceapi.RepoRelease, repo.RoleTimestamp).Version
	if changed, err := p.ResignDue(ctx); err != nil || !changed {
		t.Fatalf("release timestamp due: ResignDue %v, %v; want a change", changed, err)
	}
	if v := latest(t, p, deviceapi.RepoRelease, repo.RoleTimestamp).Version; v != releaseTS+1 {
		t.Errorf("release timestamp v%d, want v%d", v, releaseTS+1)
	}
	if v := latest(t, p, deviceapi.RepoFleet, repo.RoleTimestamp).Version; v != fleetTS {
		t.Errorf("fleet timestamp re-signed (v%d) although it was fresh", v)
	}
}

// With a 2-of-3 root, one root key may live on another machine (or be lost):
// rotating another key must work with the two that are present.
// A rotation the old root's threshold does not allow fails inside the
// transaction; the old key must be back in place and in use afterwards.
