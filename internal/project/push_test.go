package project_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// kitServer writes a server kit of off and opens it as a server project
// seeded with off's roots, on the clock clk.
func kitServer(t *testing.T, off *project.Project, clk clock.Clock) *project.Project {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "server")
	if err := off.WriteServerKit(t.Context(), dir); err != nil {
		t.Fatalf("WriteServerKit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "offline")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the server kit holds keys/offline (%v)", err)
	}
	srv, err := project.Open(t.Context(), dir, project.Options{Clock: clk})
	if err != nil {
		t.Fatalf("opening the server kit: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	if seeded, err := srv.SeedTrusted(t.Context()); err != nil || !seeded {
		t.Fatalf("SeedTrusted = %v, %v", seeded, err)
	}
	return srv
}

// outgoing is what off would push to srv, with the payloads copied into
// srv's blob store when upload is true.
func outgoing(t *testing.T, off, srv *project.Project, upload bool) []store.Metadata {
	t.Helper()
	state, err := srv.SignedState(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	docs, err := off.Outgoing(t.Context(), state)
	if err != nil {
		t.Fatalf("Outgoing: %v", err)
	}
	if upload {
		copyPayloads(t, off, srv, docs)
	}
	return docs
}

// copyPayloads copies the payloads docs name from one project's blob store
// to another's.
func copyPayloads(t *testing.T, from, to *project.Project, docs []store.Metadata) {
	t.Helper()
	for _, tr := range project.TargetsNamed(docs) {
		obj, err := from.Blobs.Open(t.Context(), tr.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := to.Blobs.Put(t.Context(), obj, 0); err != nil {
			t.Fatal(err)
		}
		obj.Close()
	}
}

func push(t *testing.T, off, srv *project.Project) project.AcceptResult {
	t.Helper()
	res, err := srv.AcceptSigned(t.Context(), outgoing(t, off, srv, true), project.ActionPush)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return res
}

// copyProject copies a project directory, as a second offline machine.
func copyProject(t *testing.T, p *project.Project, clk clock.Clock) *project.Project {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", p.Dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	q, err := project.Open(t.Context(), dst, project.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestPushPublishesToServer(t *testing.T) {
	clk := clock.NewFake(t0)
	off := initDev(t, clk)
	addProduct(t, off, thermostat())
	addRelease(t, off, releaseSpec("thermostat", "1.0.0", 1, "image one"))
	srv := kitServer(t, off, clk)

	res := push(t, off, srv)
	if !slices.Equal(res.Products, []string{"thermostat"}) || !slices.Equal(res.Releases, []string{"thermostat/1.0.0"}) {
		t.Fatalf("first push = %+v", res)
	}
	rel, err := srv.Store.Release(t.Context(), "thermostat", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := off.Store.Release(t.Context(), "thermostat", "1.0.0")
	if rel.SHA256 != want.SHA256 || rel.Length != want.Length || !bytes.Equal(rel.Manifest, want.Manifest) || !rel.Created.Equal(want.Created) {
		t.Errorf("server's release = %+v, offline = %+v", rel, want)
	}
	devRoot := readFile(t, project.DeviceRootPath(off.Dir, deviceapi.RepoRelease))
	tm := verifyAsClient(t, srv, deviceapi.RepoRelease, devRoot, t0.Add(time.Hour), "products/thermostat")
	if _, ok := tm.Targets["products/thermostat"].Signed.Targets["thermostat/1.0.0"]; !ok {
		t.Error("a device does not see thermostat/1.0.0 on the server")
	}
	verifyAsClient(t, srv, deviceapi.RepoFleet, readFile(t, project.DeviceRootPath(off.Dir, deviceapi.RepoFleet)), t0.Add(time.Hour))
	sup, err := srv.Support(t.Context(), "thermostat")
	if err != nil || sup.Until != "2031-12-31" {
		t.Errorf("server's support declaration = %+v, %v", sup, err)
	}

	// Pushing again changes nothing; a new release and a support
	// extension arrive together.
	if again := push(t, off, srv); len(again.Accepted) != 0 {
		t.Errorf("second push accepted %v", again.Accepted)
	}
	addRelease(t, off, releaseSpec("thermostat", "1.1.0", 2, "image two"))
	if _, err := off.ExtendSupport(t.Context(), "thermostat", "2033-12-31"); err != nil {
		t.Fatal(err)
	}
	res = push(t, off, srv)
	if !slices.Equal(res.Releases, []string{"thermostat/1.1.0"}) || !slices.Equal(res.Support, []string{"thermostat"}) || len(res.Products) != 0 {
		t.Errorf("third push = %+v", res)
	}
	if sup, _ := srv.Support(t.Context(), "thermostat"); sup == nil || sup.Until != "2033-12-31" {
		t.Errorf("server's support after the extension = %+v", sup)
	}
	// A root key rotation travels too: devices provisioned with root v1
	// follow the chain on the server.
	if err := off.RotateRootKey(t.Context(), deviceapi.RepoRelease, 1); err != nil {
		t.Fatal(err)
	}
	res = push(t, off, srv)
	if len(res.Accepted) != 1 || res.Accepted[0] != "release root v2" {
		t.Errorf("push of a rotated root = %+v", res)
	}
	verifyAsClient(t, srv, deviceapi.RepoRelease, devRoot, t0.Add(time.Hour), "products/thermostat")
	entries, err := srv.Audit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, a := range []string{project.ActionSeed, project.ActionProductAdd, project.ActionReleaseAdd, project.ActionSupportExtend, project.ActionPush} {
		if !slices.Contains(actions, a) {
			t.Errorf("server audit log has no %s entry: %v", a, actions)
		}
	}
}

// state is everything a refused push must leave unchanged.
func state(t *testing.T, p *project.Project) string {
	t.Helper()
	var b strings.Builder
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		all, err := p.Store.AllMetadata(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			b.WriteString(m.Repo + m.Role + string(rune(m.Version)) + string(m.Body))
		}
	}
	rels, _ := p.Store.Releases(t.Context(), "")
	prods, _ := p.Store.Products(t.Context())
	b.WriteString(strings.Repeat("r", len(rels)) + strings.Repeat("p", len(prods)))
	return b.String()
}

// resign re-signs a targets document with key after change.
func resign(t *testing.T, body []byte, change func(*metadata.TargetsType), key *keys.Key) []byte {
	t.Helper()
	md, err := metadata.Targets().FromBytes(body)
	if err != nil {
		t.Fatal(err)
	}
	change(&md.Signed)
	md.ClearSignatures()
	if key != nil {
		if _, err := md.Sign(key); err != nil {
			t.Fatal(err)
		}
	}
	b, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPushRefusals(t *testing.T) {
	clk := clock.NewFake(t0)
	off := initDev(t, clk)
	addProduct(t, off, thermostat())
	addRelease(t, off, releaseSpec("thermostat", "1.0.0", 1, "image one"))
	srv := kitServer(t, off, clk)
	push(t, off, srv)
	addRelease(t, off, releaseSpec("thermostat", "1.1.0", 2, "image two"))
	productKey, err := keys.Load(filepath.Join(off.Dir, "keys", "offline", "product-thermostat.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := keys.Generate()
	role := repo.ProductRole("thermostat")

	// withRole returns the push with the product role's document changed.
	withRole := func(change func(d *store.Metadata)) []store.Metadata {
		docs := outgoing(t, off, srv, true)
		for i := range docs {
			if docs[i].Role == role {
				change(&docs[i])
			}
		}
		return docs
	}
	cases := []struct {
		name string
		docs func() []store.Metadata
		want error
		says string
	}{
		{"payload not uploaded", func() []store.Metadata { return outgoing(t, off, srv, false) }, project.ErrMissingPayload, "thermostat/1.1.0"},
		{"tampered", func() []store.Metadata {
			return withRole(func(d *store.Metadata) {
				d.Body = bytes.Replace(d.Body, []byte("fixes things"), []byte("fixes thingz"), 1)
			})
		}, repo.ErrRefused, "not signed by the threshold"},
		{"wrong key", func() []store.Metadata {
			return withRole(func(d *store.Metadata) { d.Body = resign(t, d.Body, func(*metadata.TargetsType) {}, stranger) })
		}, repo.ErrRefused, "wrong key"},
		{"no signature", func() []store.Metadata {
			return withRole(func(d *store.Metadata) { d.Body = resign(t, d.Body, func(*metadata.TargetsType) {}, nil) })
		}, repo.ErrRefused, "threshold"},
		{"rolled back version", func() []store.Metadata {
			return withRole(func(d *store.Metadata) {
				d.Version--
				d.Body = resign(t, d.Body, func(s *metadata.TargetsType) { s.Version-- }, productKey)
			})
		}, repo.ErrDiverged, "different v"},
		{"skipped version", func() []store.Metadata {
			return withRole(func(d *store.Metadata) {
				d.Version++
				d.Body = resign(t, d.Body, func(s *metadata.TargetsType) { s.Version++ }, productKey)
			})
		}, repo.ErrDiverged, "missing"},
		{"release rewritten", func() []store.Metadata {
			return withRole(func(d *store.Metadata) {
				d.Body = resign(t, d.Body, func(s *metadata.TargetsType) {
					s.Targets["thermostat/1.0.0"].Length++
				}, productKey)
			})
		}, repo.ErrRefused, "changes the length or hashes of the published target thermostat/1.0.0"},
		{"release withdrawn", func() []store.Metadata {
			return withRole(func(d *store.Metadata) {
				d.Body = resign(t, d.Body, func(s *metadata.TargetsType) { delete(s.Targets, "thermostat/1.0.0") }, productKey)
			})
		}, repo.ErrRefused, "removes the published target"},
		{"outside delegation", func() []store.Metadata {
			return withRole(func(d *store.Metadata) {
				d.Body = resign(t, d.Body, func(s *metadata.TargetsType) {
					s.Targets["doorbell/1.0.0"] = s.Targets["thermostat/1.1.0"]
				}, productKey)
			})
		}, repo.ErrRefused, "outside the paths"},
		{"no support declaration", func() []store.Metadata {
			return withRole(func(d *store.Metadata) {
				d.Body = resign(t, d.Body, func(s *metadata.TargetsType) { delete(s.Targets, "thermostat/support.json") }, productKey)
			})
		}, repo.ErrRefused, "names no support declaration"},
		{"snapshot pushed", func() []store.Metadata {
			return append(outgoing(t, off, srv, true), latest(t, off, deviceapi.RepoRelease, repo.RoleSnapshot))
		}, repo.ErrRefused, "signed by the server"},
	}
	before := state(t, srv)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := srv.AcceptSigned(t.Context(), c.docs(), project.ActionPush)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want %v saying %q", err, c.want, c.says)
			}
			if state(t, srv) != before {
				t.Error("a refused push changed the server")
			}
		})
	}
	// Expired: the server's clock is past the product role's expiry.
	late := clock.NewFake(t0.Add(400 * 24 * time.Hour))
	lateSrv, err := project.Open(t.Context(), srv.Dir, project.Options{Clock: late})
	if err != nil {
		t.Fatal(err)
	}
	defer lateSrv.Close()
	if _, err := lateSrv.AcceptSigned(t.Context(), outgoing(t, off, srv, true), project.ActionPush); !errors.Is(err, repo.ErrRefused) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired push: %v", err)
	}
	if state(t, srv) != before {
		t.Error("the expired push changed the server")
	}
	// After all that, the genuine push goes through.
	if res := push(t, off, srv); !slices.Equal(res.Releases, []string{"thermostat/1.1.0"}) {
		t.Errorf("genuine push = %+v", res)
	}
}

// Two offline machines must not fork the repository: the second one's
// push is refused, and a third, pulled up to date, publishes on top.
func TestPushRefusesForkAndPullCatchesUp(t *testing.T) {
	clk := clock.NewFake(t0)
	off := initDev(t, clk)
	addProduct(t, off, thermostat())
	srv := kitServer(t, off, clk)
	push(t, off, srv)
	second := copyProject(t, off, clk)
	third := copyProject(t, off, clk)

	addRelease(t, off, releaseSpec("thermostat", "1.1.0", 1, "from the first machine"))
	push(t, off, srv)
	addRelease(t, second, releaseSpec("thermostat", "1.2.0", 1, "from the second machine"))
	state0 := state(t, srv)
	s, _ := srv.SignedState(t.Context())
	if _, err := second.Outgoing(t.Context(), s); !errors.Is(err, repo.ErrDiverged) {
		t.Errorf("second machine's Outgoing: %v, want ErrDiverged", err)
	}
	// The server refuses it too, should a client skip the check.
	all, _ := second.Store.AllMetadata(t.Context(), deviceapi.RepoRelease)
	var forked []store.Metadata
	for _, m := range all {
		if m.Role == "products/thermostat" {
			forked = append(forked, m)
		}
	}
	if _, err := srv.AcceptSigned(t.Context(), forked, project.ActionPush); !errors.Is(err, repo.ErrDiverged) {
		t.Errorf("server accepting the fork: %v, want ErrDiverged", err)
	}
	if state(t, srv) != state0 {
		t.Error("the refused fork changed the server")
	}

	// The third machine is behind: push says pull first; pull brings it up.
	if _, err := third.Outgoing(t.Context(), s); !errors.Is(err, project.ErrBehind) {
		t.Errorf("third machine's Outgoing before pull: %v, want ErrBehind", err)
	}
	fetch := func(name, role string, v int64) ([]byte, error) {
		return srv.SignedDocument(t.Context(), name, role, v)
	}
	docs, err := third.Incoming(t.Context(), s, fetch)
	if err != nil {
		t.Fatal(err)
	}
	copyPayloads(t, srv, third, docs)
	res, err := third.AcceptSigned(t.Context(), docs, project.ActionPull)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if !slices.Equal(res.Releases, []string{"thermostat/1.1.0"}) {
		t.Errorf("pull = %+v", res)
	}
	if _, err := second.Incoming(t.Context(), s, fetch); !errors.Is(err, repo.ErrDiverged) {
		t.Errorf("pull into the diverged machine: %v, want ErrDiverged", err)
	}
	addRelease(t, third, releaseSpec("thermostat", "1.2.0", 1, "from the third machine"))
	if res := push(t, third, srv); !slices.Equal(res.Releases, []string{"thermostat/1.2.0"}) {
		t.Errorf("push after pull = %+v", res)
	}
	verifyAsClient(t, srv, deviceapi.RepoRelease, readFile(t, project.DeviceRootPath(off.Dir, deviceapi.RepoRelease)), t0.Add(time.Hour), "products/thermostat")
}

func TestSeedTrusted(t *testing.T) {
	clk := clock.NewFake(t0)
	off := initDev(t, clk)
	srv := kitServer(t, off, clk)
	if seeded, err := srv.SeedTrusted(t.Context()); err != nil || seeded {
		t.Errorf("seeding twice = %v, %v; want false, nil", seeded, err)
	}
	// A kit whose root was replaced by another project's is refused.
	other := initDev(t, clk)
	dir := filepath.Join(t.TempDir(), "kit")
	if err := off.WriteServerKit(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if err := off.WriteServerKit(t.Context(), dir); err == nil {
		t.Error("WriteServerKit into a non-empty directory succeeded")
	}
	otherRoot := latest(t, other, deviceapi.RepoFleet, repo.RoleRoot)
	if err := os.WriteFile(filepath.Join(dir, project.TrustedDir, "fleet", "1.root.json"), otherRoot.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err := project.Open(t.Context(), dir, project.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.SeedTrusted(t.Context()); err == nil || !strings.Contains(err.Error(), "does not name the") {
		t.Errorf("seeding with another project's fleet root: %v", err)
	}
	if _, err := bad.Store.LatestMetadata(t.Context(), deviceapi.RepoRelease, repo.RoleRoot); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused seed stored roots: %v", err)
	}
	// Nothing is accepted before the seed.
	if _, err := bad.AcceptSigned(t.Context(), outgoing(t, off, srv, false), project.ActionPush); err == nil || !strings.Contains(err.Error(), "no root yet") {
		t.Errorf("push into an unseeded server: %v", err)
	}
}
