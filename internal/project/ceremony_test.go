package project_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
)

var holderPasses = map[string]string{
	"alice": "alice keeps seven blue lanterns",
	"bob":   "bob walks the quiet orchard",
	"carol": "carol counts eleven paper boats",
}

func holderPass(h string) ([]byte, error) {
	if p, ok := holderPasses[h]; ok {
		return []byte(p), nil
	}
	return nil, fmt.Errorf("no passphrase for %s", h)
}

// initHolders makes a project whose root keys are held by alice, bob and
// carol, 2 of 3.
func initHolders(t *testing.T, clk clock.Clock) *project.Project {
	t.Helper()
	p, err := project.Init(t.Context(), t.TempDir(), project.InitOptions{KeyHolders: []string{"alice", "bob", "carol"},
		Options: project.Options{Clock: clk, Passphrase: pass("correct horse battery staple"), HolderPassphrase: holderPass}})
	if err != nil {
		t.Fatalf("Init with key holders: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func sign(t *testing.T, p *project.Project, path, name, holder string) project.ProposalStatus {
	t.Helper()
	st, err := project.SignProposal(path, holder, project.HolderKeyFiles(p.Dir, name, holder), func() ([]byte, error) { return holderPass(holder) })
	if err != nil {
		t.Fatalf("%s signs %s: %v", holder, path, err)
	}
	return st
}

// rewrite applies edit to the decoded proposal file at path.
func rewrite(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFile(t, path), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v; want an error saying %q", what, err, want)
	}
}

func TestProposeRefusals(t *testing.T) {
	ctx := t.Context()
	dev := initDev(t, clock.NewFake(t0))
	_, err := dev.ProposeRoot(ctx, deviceapi.RepoRelease, project.RootChange{})
	wantErr(t, "propose in a project without key holders", err, "no key holders")

	p := initHolders(t, clock.NewFake(t0))
	_, err = p.ProposeRoot(ctx, "staging", project.RootChange{})
	wantErr(t, "propose for an unknown repository", err, `unknown repository "staging"`)
	_, err = p.ProposeRoot(ctx, deviceapi.RepoRelease, project.RootChange{Rotate: []string{"dave"}})
	wantErr(t, "rotating a stranger's key", err, `release root v1 lists no key of "dave" (holders with a key: alice, bob, carol)`)
	for _, tc := range []struct {
		ch   project.RootChange
		want string
	}{
		{project.RootChange{Remove: []string{"dave"}}, `lists no key of "dave"`},
		{project.RootChange{Add: []string{"alice"}}, "alice holds a key of release root v1 already"},
		{project.RootChange{Add: []string{"../x"}}, `key holder name "../x"`},
		{project.RootChange{Add: []string{"Bob"}}, `key holders "bob" and "Bob" would share the variable UPTRUST_PASSPHRASE_BOB`},
		{project.RootChange{Rotate: []string{"bob"}, Remove: []string{"bob"}}, "key holder bob named twice"},
		{project.RootChange{Threshold: 4}, "would need 4 of 3 root keys"},
		{project.RootChange{Remove: []string{"alice", "bob"}}, "would need 2 of 1 root keys"},
	} {
		_, err := p.ProposeRoot(ctx, deviceapi.RepoRelease, tc.ch)
		wantErr(t, fmt.Sprintf("propose %+v", tc.ch), err, tc.want)
	}
	if next, _ := filepath.Glob(filepath.Join(p.Dir, "keys", "offline", "*.next")); len(next) != 0 {
		t.Errorf("refused proposals generated keys: %v", next)
	}
	_, err = p.PublishRoot(ctx)
	wantErr(t, "publish with nothing pending", err, "no root change is pending")

	path, err := p.ProposeRoot(ctx, deviceapi.RepoFleet, project.RootChange{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = project.SignProposal(path, "dave", project.HolderKeyFiles(p.Dir, deviceapi.RepoFleet, "alice"), func() ([]byte, error) { return holderPass("alice") })
	wantErr(t, "signing as a stranger", err, `"dave" is not a key holder of this proposal`)
	_, err = project.SignProposal(path, "bob", project.HolderKeyFiles(p.Dir, deviceapi.RepoFleet, "alice"), func() ([]byte, error) { return holderPass("alice") })
	wantErr(t, "bob signing with alice's key", err, "is the root key of alice, not of bob")

	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"format", func(m map[string]any) { m["format"] = "uptrust-root-proposal/9" }, `format "uptrust-root-proposal/9"`},
		{"repository", func(m map[string]any) { m["repository"] = "staging" }, `unknown repository "staging"`},
		{"version", func(m map[string]any) { m["version"] = 7 }, "want one version after the previous root"},
		{"root", func(m map[string]any) { m["root"] = "x" }, ": root: "},
	} {
		cp := filepath.Join(dir, tc.name+".json")
		if err := os.WriteFile(cp, readFile(t, path), 0o644); err != nil {
			t.Fatal(err)
		}
		rewrite(t, cp, tc.edit)
		_, err := project.ReadProposal(cp)
		wantErr(t, "proposal with a bad "+tc.name, err, tc.want)
	}
	notJSON := filepath.Join(dir, "not.json")
	os.WriteFile(notJSON, []byte("root v2 please"), 0o644)
	_, err = project.ReadProposal(notJSON)
	wantErr(t, "a file that is not JSON", err, "is not a root proposal")
	_, err = project.ReadProposal(filepath.Join(dir, "none.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing proposal: %v", err)
	}

	// The same signature twice.
	sign(t, p, path, deviceapi.RepoFleet, "alice")
	twice := filepath.Join(dir, "twice.json")
	os.WriteFile(twice, readFile(t, path), 0o644)
	rewrite(t, twice, func(m map[string]any) {
		root := m["root"].(map[string]any)
		sigs := root["signatures"].([]any)
		root["signatures"] = append(sigs, sigs[0])
	})
	_, err = project.ReadProposal(twice)
	wantErr(t, "two signatures by one key", err, "multiple signatures found for key ID")
}

func TestPublishRefusesOtherProposals(t *testing.T) {
	ctx := t.Context()
	clk := clock.NewFake(t0)
	p := initHolders(t, clk)
	path, err := p.ProposeRoot(ctx, deviceapi.RepoRelease, project.RootChange{})
	if err != nil {
		t.Fatal(err)
	}
	sign(t, p, path, deviceapi.RepoRelease, "alice")
	elsewhere := filepath.Join(t.TempDir(), "release-root-2.json")
	if err := os.WriteFile(elsewhere, readFile(t, path), 0o644); err != nil {
		t.Fatal(err)
	}
	// Deleted and proposed again an hour later: a different root v2.
	os.Remove(path)
	_, err = p.CollectProposals(ctx, elsewhere)
	wantErr(t, "a copy with nothing pending", err, "no pending proposal for release root v2")
	clk.Advance(time.Hour)
	if _, err := p.ProposeRoot(ctx, deviceapi.RepoRelease, project.RootChange{}); err != nil {
		t.Fatal(err)
	}
	_, err = p.PublishRoot(ctx, elsewhere)
	wantErr(t, "a copy of an earlier proposal", err, "proposes a different release root v2 than the pending proposal")

	// Published, then put back: stale.
	sign(t, p, path, deviceapi.RepoRelease, "bob")
	st := sign(t, p, path, deviceapi.RepoRelease, "carol")
	if !st.Publishable() {
		t.Fatalf("signed by bob and carol: %+v", st)
	}
	saved := readFile(t, path)
	v1 := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease))
	if _, err := p.PublishRoot(ctx); err != nil {
		t.Fatalf("PublishRoot: %v", err)
	}
	if err := os.WriteFile(path, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = p.PublishRoot(ctx)
	wantErr(t, "a proposal published already", err, "stale: it replaces release root v1, but the latest is v2")
	os.Remove(path)
	if tm := verifyAsClient(t, p, deviceapi.RepoRelease, v1, t0.Add(time.Hour)); tm.Root.Signed.Version != 2 {
		t.Errorf("client ends on root v%d", tm.Root.Signed.Version)
	}
}

// TestFleetRotation: a holder's fleet root key is rotated with the
// signatures of the two other holders; clients follow and the holder's new
// key signs the next change.
func TestFleetRotation(t *testing.T) {
	ctx := t.Context()
	p := initHolders(t, clock.NewFake(t0))
	v1 := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoFleet))
	path, err := p.ProposeRoot(ctx, deviceapi.RepoFleet, project.RootChange{Rotate: []string{"carol"}})
	if err != nil {
		t.Fatal(err)
	}
	// carol signs with her old and new keys: 1 of 2 for each root.
	st := sign(t, p, path, deviceapi.RepoFleet, "carol")
	if st.Publishable() || len(st.Old.Signed) != 1 || len(st.New.Signed) != 1 {
		t.Fatalf("signed by carol alone: old %v, new %v", st.Old, st.New)
	}
	_, err = p.PublishRoot(ctx)
	if !errors.Is(err, project.ErrBelowThreshold) {
		t.Fatalf("PublishRoot signed by carol alone: %v", err)
	}
	sign(t, p, path, deviceapi.RepoFleet, "alice")
	if _, err := p.PublishRoot(ctx); err != nil {
		t.Fatalf("PublishRoot: %v", err)
	}
	tm := verifyAsClient(t, p, deviceapi.RepoFleet, v1, t0)
	r2 := tm.Root
	if r2.Signed.Version != 2 {
		t.Fatalf("client on fleet root v%d", r2.Signed.Version)
	}
	if _, err := os.Stat(project.HolderKeyPath(p.Dir, deviceapi.RepoFleet, "carol") + ".next"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("carol's .next key left after publish: %v", err)
	}
	// The release root is untouched.
	if _, err := p.ProposeRoot(ctx, deviceapi.RepoFleet, project.RootChange{}); err != nil {
		t.Fatal(err)
	}
	path = project.ProposalPath(p.Dir, deviceapi.RepoFleet, 3)
	sign(t, p, path, deviceapi.RepoFleet, "carol")
	sign(t, p, path, deviceapi.RepoFleet, "bob")
	if _, err := p.PublishRoot(ctx); err != nil {
		t.Fatalf("PublishRoot v3 signed by carol's new key and bob: %v", err)
	}
	if tm := verifyAsClient(t, p, deviceapi.RepoFleet, v1, t0); tm.Root.Signed.Version != 3 {
		t.Errorf("client on fleet root v%d, want 3", tm.Root.Signed.Version)
	}
	if v := latest(t, p, deviceapi.RepoRelease, metadata.ROOT).Version; v != 1 {
		t.Errorf("release root v%d after fleet changes", v)
	}
	// A second rotation of carol's key keeps both retired keys.
	second, err := keys.PublicKeyID(project.HolderKeyPath(p.Dir, deviceapi.RepoFleet, "carol"))
	if err != nil {
		t.Fatal(err)
	}
	if path, err = p.ProposeRoot(ctx, deviceapi.RepoFleet, project.RootChange{Rotate: []string{"carol"}}); err != nil {
		t.Fatal(err)
	}
	sign(t, p, path, deviceapi.RepoFleet, "alice")
	sign(t, p, path, deviceapi.RepoFleet, "bob")
	if _, err := p.PublishRoot(ctx); err != nil {
		t.Fatalf("PublishRoot of the second rotation: %v", err)
	}
	retired, _ := filepath.Glob(project.HolderKeyPath(p.Dir, deviceapi.RepoFleet, "carol") + ".retired*")
	if len(retired) != 2 || !slices.Contains(retired, project.HolderKeyPath(p.Dir, deviceapi.RepoFleet, "carol")+".retired-"+second[:12]) {
		t.Errorf("retired keys of carol after two rotations: %v", retired)
	}
}

// TestHolderAndThresholdChanges: dave joins the release root with the
// threshold raised to 3 of 4, then carol leaves (3 of 3); each change needs
// the old root's threshold and the new one's, and clients follow both.
func TestHolderAndThresholdChanges(t *testing.T) {
	ctx := t.Context()
	holderPasses["dave"] = "dave draws nine silver circles"
	t.Cleanup(func() { delete(holderPasses, "dave") })
	p := initHolders(t, clock.NewFake(t0))
	v1 := readFile(t, project.DeviceRootPath(p.Dir, deviceapi.RepoRelease))
	path, err := p.ProposeRoot(ctx, deviceapi.RepoRelease, project.RootChange{Add: []string{"dave"}, Threshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	sign(t, p, path, deviceapi.RepoRelease, "alice")
	st := sign(t, p, path, deviceapi.RepoRelease, "bob")
	if !st.Old.Met() || st.New.Met() || st.New.Threshold != 3 || !slices.Contains(st.New.Missing, "dave") {
		t.Fatalf("signed by alice and bob: old %v, new %v; want the old met and the new needing 3 of 4", st.Old, st.New)
	}
	if _, err := p.PublishRoot(ctx); !errors.Is(err, project.ErrBelowThreshold) {
		t.Fatalf("PublishRoot 2 of a new 3-of-4: %v", err)
	}
	sign(t, p, path, deviceapi.RepoRelease, "dave")
	if _, err := p.PublishRoot(ctx); err != nil {
		t.Fatalf("PublishRoot: %v", err)
	}
	if holders := p.Config.Holders(); !slices.Equal(holders, []string{"alice", "bob", "carol", "dave"}) {
		t.Errorf("holders after adding dave: %v", holders)
	}
	// The fleet root still has 3 keys, 2 needed: uptrust.json keeps 2 of 3.
	if p.Config.RootKeys != 3 || p.Config.RootThreshold != 2 {
		t.Errorf("root_keys %d, root_threshold %d while the repositories differ; want 3 and 2", p.Config.RootKeys, p.Config.RootThreshold)
	}
	path, err = p.ProposeRoot(ctx, deviceapi.RepoRelease, project.RootChange{Remove: []string{"carol"}})
	if err != nil {
		t.Fatal(err)
	}
	// carol signs her own removal: her key counts for the old root only.
	st = sign(t, p, path, deviceapi.RepoRelease, "carol")
	if len(st.Old.Signed) != 1 || len(st.New.Signed) != 0 || slices.Contains(st.New.Missing, "carol") {
		t.Errorf("signed by carol: old %v, new %v", st.Old, st.New)
	}
	sign(t, p, path, deviceapi.RepoRelease, "alice")
	sign(t, p, path, deviceapi.RepoRelease, "dave")
	_, err = p.PublishRoot(ctx)
	wantErr(t, "removing carol signed by carol, alice and dave", err, "root v3 keys: 3 needed, 2 signed (alice, dave); missing 1 more of: bob")
	sign(t, p, path, deviceapi.RepoRelease, "bob")
	if _, err := p.PublishRoot(ctx); err != nil {
		t.Fatalf("PublishRoot without carol: %v", err)
	}
	tm := verifyAsClient(t, p, deviceapi.RepoRelease, v1, t0)
	if role := tm.Root.Signed.Roles[metadata.ROOT]; tm.Root.Signed.Version != 3 || role.Threshold != 3 || len(role.KeyIDs) != 3 {
		t.Errorf("client on root v%d, %d of %d keys; want v3, 3 of 3", tm.Root.Signed.Version, role.Threshold, len(role.KeyIDs))
	}
	// Reopened, the project still reads its uptrust.json.
	q := reopen(t, p, "correct horse battery staple")
	if got := q.Config.Holders(); len(got) != 4 {
		t.Errorf("holders after reopening: %v", got)
	}
}

// TestThresholdBothRepositories: once both roots need 3 of 3, uptrust.json
// says so; one PublishRoot publishes both proposals.
func TestThresholdBothRepositories(t *testing.T) {
	ctx := t.Context()
	p := initHolders(t, clock.NewFake(t0))
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		path, err := p.ProposeRoot(ctx, name, project.RootChange{Threshold: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"alice", "bob", "carol"} {
			sign(t, p, path, name, h)
		}
	}
	done, err := p.PublishRoot(ctx)
	if err != nil || len(done) != 2 {
		t.Fatalf("PublishRoot: %d published, %v", len(done), err)
	}
	q := reopen(t, p, "correct horse battery staple")
	if q.Config.RootKeys != 3 || q.Config.RootThreshold != 3 {
		t.Errorf("uptrust.json: %d root keys, threshold %d; want 3 of 3", q.Config.RootKeys, q.Config.RootThreshold)
	}
}
