package cli_test

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/repo"
)

// The passphrases of the three key holders of the ceremony tests and of
// the project's other offline keys.
const (
	projectPass  = "correct horse battery staple"
	opsLeadPass  = "ops lead purple elephant dances"
	ctoPass      = "cto quietly counts seven lanterns"
	securityPass = "security officer walks the orchard"
)

var holderPass = map[string]string{"ops-lead": opsLeadPass, "cto": ctoPass, "security-officer": securityPass}

// holderVars sets the passphrase of the named holders only (and, with
// project, the project passphrase).
func holderVars(project bool, holders ...string) map[string]string {
	v := map[string]string{}
	if project {
		v["UPTRUST_PASSPHRASE"] = projectPass
	}
	for _, h := range holders {
		v[projectHolderEnv(h)] = holderPass[h]
	}
	return v
}

func projectHolderEnv(h string) string { return project.HolderEnv(h) }

// ceremonyProject runs init with the three key holders.
func ceremonyProject(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	r := mustRun(t, holderVars(true, "ops-lead", "cto", "security-officer"), "init", "--dir", dir, "--key-holders", "ops-lead,cto,security-officer")
	if !strings.Contains(r.stdout, "root keys: 3, threshold 2") || !strings.Contains(r.stdout, "key holder cto: ") {
		t.Fatalf("init --key-holders output:\n%s", r.stdout)
	}
	return dir
}

func TestInitKeyHolders(t *testing.T) {
	dir := ceremonyProject(t)
	if _, err := os.Stat(filepath.Join(dir, "keys", "offline", "release-root-1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key ceremony project has a numbered root key: %v", err)
	}
	var cfg project.Config
	if err := json.Unmarshal(readBytes(t, filepath.Join(dir, "uptrust.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Holders(); !slices.Equal(got, []string{"ops-lead", "cto", "security-officer"}) || cfg.RootThreshold != 2 {
		t.Fatalf("uptrust.json key holders %v, threshold %d", got, cfg.RootThreshold)
	}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		root, err := metadata.Root().FromBytes(readBytes(t, project.DeviceRootPath(dir, name)))
		if err != nil {
			t.Fatal(err)
		}
		listed := root.Signed.Roles[metadata.ROOT]
		if listed.Threshold != 2 || len(listed.KeyIDs) != 3 {
			t.Errorf("%s root: threshold %d of %d keys, want 2 of 3", name, listed.Threshold, len(listed.KeyIDs))
		}
		for _, h := range cfg.KeyHolders {
			path := project.HolderKeyPath(dir, name, h.Name)
			k, err := keys.Load(path, []byte(holderPass[h.Name]))
			if err != nil {
				t.Fatalf("%s with its holder's passphrase: %v", path, err)
			}
			if !slices.Contains(listed.KeyIDs, k.KeyID()) || !slices.Contains(h.KeyIDs, k.KeyID()) {
				t.Errorf("%s: key %s not in the %s root (%v) or not recorded for %s (%v)", path, k.KeyID(), name, listed.KeyIDs, h.Name, h.KeyIDs)
			}
			for other, pass := range holderPass {
				if other == h.Name {
					continue
				}
				if _, err := keys.Load(path, []byte(pass)); !errors.Is(err, keys.ErrWrongPassphrase) {
					t.Errorf("%s opens with %s's passphrase: %v", path, other, err)
				}
			}
			if _, err := keys.Load(path, []byte(projectPass)); !errors.Is(err, keys.ErrWrongPassphrase) {
				t.Errorf("%s opens with the project passphrase: %v", path, err)
			}
		}
	}
	// The other offline keys keep the project passphrase: no holder is needed
	// to add a product.
	if _, err := keys.Load(filepath.Join(dir, "keys", "offline", "release-targets.key"), []byte(projectPass)); err != nil {
		t.Errorf("release targets key with the project passphrase: %v", err)
	}
	mustRun(t, holderVars(true), "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", dir)
	// The old one-passphrase rotation refuses a project with key holders.
	p := openProject(t, dir)
	if err := p.RotateRootKey(t.Context(), deviceapi.RepoRelease, 1); err == nil || !strings.Contains(err.Error(), "root propose") {
		t.Errorf("RotateRootKey in a key ceremony project: %v", err)
	}
}

func TestInitKeyHoldersRefusals(t *testing.T) {
	tmp := t.TempDir()
	all := holderVars(true, "ops-lead", "cto", "security-officer")
	with := func(k, v string) map[string]string {
		m := maps.Clone(all)
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string
	}{
		{"same passphrase", with("UPTRUST_PASSPHRASE_SECURITY_OFFICER", ctoPass), nil, 1, "key holders cto and security-officer gave the same passphrase"},
		{"weak", with("UPTRUST_PASSPHRASE_CTO", "a"), nil, 1, "key holder cto: keys: passphrase too weak"},
		{"project passphrase", with("UPTRUST_PASSPHRASE_OPS_LEAD", projectPass), nil, 1, "key holder ops-lead: the passphrase is the project passphrase"},
		{"missing", holderVars(true, "ops-lead", "security-officer"), nil, 1, "key holder cto: set UPTRUST_PASSPHRASE_CTO"},
		{"threshold above holders", all, []string{"--root-threshold", "4"}, 1, "root threshold 4 with 3 key holders"},
		{"one holder, threshold 2", all, []string{"--key-holders", "ops-lead", "--root-threshold", "2"}, 1, "root threshold 2 with 1 key holders"},
		{"threshold alone", all, []string{"--key-holders", "", "--root-threshold", "2"}, 2, "--root-threshold goes with --key-holders"},
		{"dev", all, []string{"--dev"}, 1, "--key-holders needs encrypted keys"},
		{"bad name", all, []string{"--key-holders", "ops-lead,../cto"}, 1, `key holder name "../cto"`},
		{"same variable", all, []string{"--key-holders", "ops-lead,ops_lead"}, 1, "would share the variable UPTRUST_PASSPHRASE_OPS_LEAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(tmp, strings.ReplaceAll(tc.name, " ", "-"))
			args := append([]string{"init", "--dir", dir, "--key-holders", "ops-lead,cto,security-officer"}, tc.args...)
			r := run(t, tc.vars, args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v; want exit %d saying %q", r, tc.code, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "uptrust.json")); err == nil {
				t.Error("a project was created")
			}
		})
	}
	// Prompts name the holder and ask twice.
	var prompts []string
	prompt := func(s string) ([]byte, error) {
		prompts = append(prompts, s)
		for h, pass := range holderPass {
			if strings.Contains(s, "key holder "+h+":") {
				return []byte(pass), nil
			}
		}
		return []byte(projectPass), nil
	}
	r := runEnv(t, env(nil, prompt), "init", "--dir", filepath.Join(tmp, "prompted"), "--key-holders", "ops-lead,cto")
	if r.code != 0 || !strings.Contains(r.stdout, "root keys: 2, threshold 2") {
		t.Fatalf("init with prompted holder passphrases: %v", r)
	}
	if want := []string{"Passphrase for offline keys: ", "Repeat passphrase: ", "Passphrase of key holder ops-lead: ", "Repeat passphrase of key holder ops-lead: ",
		"Passphrase of key holder cto: ", "Repeat passphrase of key holder cto: "}; !slices.Equal(prompts, want) {
		t.Errorf("prompts %q, want %q", prompts, want)
	}
}

func TestRootCeremony(t *testing.T) {
	dir := ceremonyProject(t)
	v1 := readBytes(t, project.DeviceRootPath(dir, deviceapi.RepoRelease))
	proposal := project.ProposalPath(dir, deviceapi.RepoRelease, 2)

	// Proposing a rotation of ops-lead's key needs ops-lead's passphrase
	// alone; the new key is encrypted under it.
	r := run(t, nil, "root", "propose", "release", "--rotate", "ops-lead", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "UPTRUST_PASSPHRASE_OPS_LEAD") {
		t.Errorf("propose without ops-lead's passphrase: %v", r)
	}
	r = mustRun(t, holderVars(false, "ops-lead"), "root", "propose", "release", "--rotate", "ops-lead", "--dir", dir)
	if !strings.Contains(r.stdout, proposal) || !strings.Contains(r.stdout, "rotate the root key of ops-lead") ||
		!strings.Contains(r.stdout, "root: removes key") || !strings.Contains(r.stdout, "publishable: no") {
		t.Errorf("root propose output:\n%s", r.stdout)
	}
	next := project.HolderKeyPath(dir, deviceapi.RepoRelease, "ops-lead") + ".next"
	newKey, err := keys.Load(next, []byte(opsLeadPass))
	if err != nil {
		t.Fatalf("the new key of ops-lead: %v", err)
	}
	if _, err := keys.Load(next, []byte(ctoPass)); !errors.Is(err, keys.ErrWrongPassphrase) {
		t.Errorf("the new key of ops-lead opens with cto's passphrase: %v", err)
	}
	if r := run(t, holderVars(false, "cto"), "root", "propose", "release", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "pending already") {
		t.Errorf("a second proposal for release: %v", r)
	}

	// cto signs on the project's machine: 1 of 2 for both roots.
	r = mustRun(t, holderVars(false, "cto"), "root", "sign", "--holder", "cto", "--dir", dir)
	if !strings.Contains(r.stdout, "root v1 keys: 2 needed, 1 signed (cto); missing 1 more of: ops-lead, security-officer") {
		t.Errorf("root sign output:\n%s", r.stdout)
	}
	// Below threshold: nothing is published, and publish names who is missing.
	r = run(t, nil, "root", "publish", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "release root v2 not published: not enough signatures") ||
		!strings.Contains(r.stderr, "root v1 keys: 2 needed, 1 signed (cto); missing 1 more of: ops-lead, security-officer; root v2 keys: 2 needed, 1 signed (cto); missing 1 more of: security-officer, ops-lead") {
		t.Errorf("publish signed by 1 of 2: %v", r)
	}
	if got := readBytes(t, project.DeviceRootPath(dir, deviceapi.RepoRelease)); string(got) != string(v1) {
		t.Error("the device root changed below threshold")
	}
	if v := latestRoot(t, dir); v != 1 {
		t.Errorf("root v%d stored below threshold", v)
	}

	// security-officer signs a copy on their own machine, with their key
	// file alone and no project.
	laptop := t.TempDir()
	myCopy := copyFile(t, proposal, filepath.Join(laptop, "release-root-2.json"))
	myKey := copyFile(t, project.HolderKeyPath(dir, deviceapi.RepoRelease, "security-officer"), filepath.Join(laptop, "my.key"))
	// The wrong holder's key or passphrase signs nothing.
	if r := run(t, holderVars(false, "security-officer"), "root", "sign", "--holder", "cto", "--key", myKey, myCopy); r.code != 1 {
		t.Errorf("signing as cto with security-officer's key and passphrase: %v", r)
	}
	r = mustRun(t, holderVars(false, "security-officer"), "root", "sign", "--holder", "security-officer", "--key", myKey, "--dir", filepath.Join(laptop, "none"), myCopy)
	if !strings.Contains(r.stdout, "2 needed, 2 signed (cto, security-officer)") || !strings.Contains(r.stdout, "publishable: yes") {
		t.Errorf("signing the copy:\n%s", r.stdout)
	}

	// Copies changed after signing, or signed by a key that is no root key,
	// are refused.
	tampered := editProposal(t, myCopy, filepath.Join(laptop, "tampered.json"), func(root map[string]any) {
		root["signed"].(map[string]any)["expires"] = "2099-01-01T00:00:00Z"
	})
	for _, args := range [][]string{{"root", "publish", tampered}, {"root", "status", tampered}} {
		if r := run(t, nil, append(args, "--dir", dir)...); r.code != 1 || !strings.Contains(r.stderr, "the proposal was changed after it was signed") {
			t.Errorf("%s of a tampered copy: %v", args[1], r)
		}
	}
	if r := run(t, holderVars(false, "ops-lead"), "root", "sign", "--holder", "ops-lead", "--key", next, tampered); r.code != 1 || !strings.Contains(r.stderr, "changed after it was signed") {
		t.Errorf("signing a tampered copy: %v", r)
	}
	stranger, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	strangerFile := filepath.Join(laptop, "stranger.key")
	if err := stranger.Save(strangerFile, nil); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, "root", "sign", "--holder", "cto", "--key", strangerFile, myCopy); r.code != 1 || !strings.Contains(r.stderr, "no root key of release root v1 or v2") {
		t.Errorf("signing with a key that is no root key: %v", r)
	}
	forged := editProposal(t, myCopy, filepath.Join(laptop, "forged.json"), nil)
	signWith(t, forged, stranger)
	if r := run(t, nil, "root", "publish", forged, "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "which is no root key of release root v1 or v2") {
		t.Errorf("publish of a copy signed by a stranger: %v", r)
	}
	if v := latestRoot(t, dir); v != 1 {
		t.Fatalf("root v%d stored after refused copies", v)
	}

	// The signed copy brought back: both thresholds are met.
	r = mustRun(t, nil, "root", "status", myCopy, "--dir", dir)
	if !strings.Contains(r.stdout, "publishable: yes") {
		t.Errorf("status with the signed copy:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "root", "status", "--json", "--dir", dir)
	var sts []cli.ProposalJSON
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil || len(sts) != 1 {
		t.Fatalf("root status --json: %v\n%s", err, r.stdout)
	}
	if st := sts[0]; !st.Publishable || st.Repository != "release" || st.Version != 2 || st.Previous.Root != 1 ||
		len(st.Previous.Signed) < st.Previous.Threshold || len(st.New.Signed) < st.New.Threshold {
		t.Errorf("root status --json after both holders signed: %+v", st)
	}
	r = mustRun(t, nil, "root", "publish", "--dir", dir)
	if !strings.Contains(r.stdout, "published release root v2") {
		t.Errorf("publish output:\n%s", r.stdout)
	}
	if v := latestRoot(t, dir); v != 2 {
		t.Fatalf("root v%d after publish, want 2", v)
	}
	cur, err := keys.Load(project.HolderKeyPath(dir, deviceapi.RepoRelease, "ops-lead"), []byte(opsLeadPass))
	if err != nil || cur.KeyID() != newKey.KeyID() {
		t.Errorf("ops-lead's key file after publish: %v (the new key: %v)", err, err == nil && cur.KeyID() == newKey.KeyID())
	}
	if _, err := os.Stat(project.HolderKeyPath(dir, deviceapi.RepoRelease, "ops-lead") + ".retired"); err != nil {
		t.Errorf("old key not kept as .retired: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pending", "published", "release-root-2.json")); err != nil {
		t.Errorf("published proposal not moved: %v", err)
	}
	if r := mustRun(t, nil, "audit", "--dir", dir); !strings.Contains(r.stdout, "root.publish") || !strings.Contains(r.stdout, "signed by cto, security-officer") {
		t.Errorf("audit log:\n%s", r.stdout)
	}
	if got := followRoots(t, dir, v1); got != 2 {
		t.Errorf("a client provisioned with root v1 ends on v%d, want 2", got)
	}

	// A publish interrupted after storing the root, before moving the key
	// files, is completed by the next command.
	opsKey := project.HolderKeyPath(dir, deviceapi.RepoRelease, "ops-lead")
	for _, mv := range [][2]string{{opsKey, opsKey + ".next"}, {opsKey + ".retired", opsKey}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, nil, "root", "status", "--dir", dir)
	if id, err := keys.PublicKeyID(opsKey); err != nil || id != newKey.KeyID() {
		t.Errorf("after an interrupted publish, ops-lead's key file holds %s (%v), want the published %s", id, err, newKey.KeyID())
	}

	// ops-lead's new key signs the next change: a re-sign by ops-lead and
	// cto, which devices on v1 follow through v2.
	mustRun(t, nil, "root", "propose", "release", "--dir", dir)
	mustRun(t, holderVars(false, "ops-lead"), "root", "sign", "--holder", "ops-lead", "--dir", dir)
	mustRun(t, holderVars(false, "cto"), "root", "sign", "--holder", "cto", "--dir", dir)
	mustRun(t, nil, "root", "publish", "--dir", dir)
	if got := followRoots(t, dir, v1); got != 3 {
		t.Errorf("a client provisioned with root v1 ends on v%d, want 3", got)
	}

	// Holders and the threshold change by proposal too.
	dave := map[string]string{"UPTRUST_PASSPHRASE_DAVE": "dave draws nine silver circles"}
	r = mustRun(t, dave, "root", "propose", "fleet", "--add-holder", "dave", "--threshold", "3", "--dir", dir)
	if !strings.Contains(r.stdout, "fleet root v2: add key holder dave; threshold 2 -> 3") || !strings.Contains(r.stdout, "(dave)") ||
		!strings.Contains(r.stdout, "change: root: threshold 2 -> 3") || !strings.Contains(r.stdout, "new      root v2 keys: 3 needed, 0 signed") {
		t.Errorf("root propose --add-holder dave --threshold 3:\n%s", r.stdout)
	}
}

func TestKeysPassphraseHolder(t *testing.T) {
	dir := ceremonyProject(t)
	const newCTO = "cto picks a fresh long passphrase"
	vars := holderVars(false, "cto")
	vars["UPTRUST_NEW_PASSPHRASE"] = opsLeadPass
	if r := run(t, vars, "keys", "passphrase", "--holder", "cto", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "the passphrase also opens") {
		t.Errorf("cto taking ops-lead's passphrase: %v", r)
	}
	vars["UPTRUST_NEW_PASSPHRASE"] = newCTO
	r := mustRun(t, vars, "keys", "passphrase", "--holder", "cto", "--dir", dir)
	if n := strings.Count(r.stdout, "re-encrypted "); n != 2 {
		t.Errorf("keys passphrase --holder cto re-encrypted %d files, want 2:\n%s", n, r.stdout)
	}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		path := project.HolderKeyPath(dir, name, "cto")
		if _, err := keys.Load(path, []byte(newCTO)); err != nil {
			t.Errorf("%s with the new passphrase: %v", path, err)
		}
		if _, err := keys.Load(path, []byte(ctoPass)); !errors.Is(err, keys.ErrWrongPassphrase) {
			t.Errorf("%s still opens with the old passphrase: %v", path, err)
		}
		if _, err := keys.Load(project.HolderKeyPath(dir, name, "ops-lead"), []byte(opsLeadPass)); err != nil {
			t.Errorf("ops-lead's key after cto's change: %v", err)
		}
	}
	// The project passphrase change leaves the holders' keys alone.
	r = mustRun(t, map[string]string{"UPTRUST_PASSPHRASE": projectPass, "UPTRUST_NEW_PASSPHRASE": "a new project passphrase here"}, "keys", "passphrase", "--dir", dir)
	if n := strings.Count(r.stdout, "re-encrypted "); n != 1 || !strings.Contains(r.stdout, "release-targets.key") {
		t.Errorf("keys passphrase re-encrypted %d files, want release-targets.key alone:\n%s", n, r.stdout)
	}
	if _, err := keys.Load(project.HolderKeyPath(dir, deviceapi.RepoRelease, "security-officer"), []byte(securityPass)); err != nil {
		t.Errorf("security-officer's key after the project passphrase change: %v", err)
	}
	if r := run(t, vars, "keys", "passphrase", "--holder", "ceo", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, `"ceo" is not a key holder`) {
		t.Errorf("keys passphrase --holder ceo: %v", r)
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) string {
	t.Helper()
	if err := os.WriteFile(to, readBytes(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// editProposal writes a copy of the proposal at from to to, with edit
// applied to its proposed root (as decoded JSON).
func editProposal(t *testing.T, from, to string, edit func(root map[string]any)) string {
	t.Helper()
	var pr map[string]any
	if err := json.Unmarshal(readBytes(t, from), &pr); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(pr["root"].(map[string]any))
	}
	b, err := json.Marshal(pr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// signWith adds a signature by k to the proposed root in the file at path.
func signWith(t *testing.T, path string, k *keys.Key) {
	t.Helper()
	var pr map[string]json.RawMessage
	if err := json.Unmarshal(readBytes(t, path), &pr); err != nil {
		t.Fatal(err)
	}
	root, err := metadata.Root().FromBytes(pr["root"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Sign(k); err != nil {
		t.Fatal(err)
	}
	if pr["root"], err = root.ToBytes(false); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(pr)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func latestRoot(t *testing.T, dir string) int64 {
	t.Helper()
	p := openProject(t, dir)
	defer p.Close()
	root, err := repo.LoadRoot(t.Context(), p.Store, deviceapi.RepoRelease)
	if err != nil {
		t.Fatal(err)
	}
	return root.Signed.Version
}

// followRoots serves the release repository as published and refreshes
// go-tuf's stock updater, provisioned with trusted, against it; it returns
// the root version the updater ends on.
func followRoots(t *testing.T, dir string, trusted []byte) int64 {
	t.Helper()
	p := openProject(t, dir)
	files, err := repo.Published(t.Context(), p.Store, deviceapi.RepoRelease, deviceapi.ReleaseBase)
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files.Metadata[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	cfg, err := config.New(srv.URL+deviceapi.ReleaseBase+"/metadata", trusted)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = srv.URL + deviceapi.ReleaseBase + "/targets"
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	u, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Refresh(); err != nil {
		t.Fatalf("go-tuf updater from the provisioned root: %v", err)
	}
	return u.GetTrustedMetadataSet().Root.Signed.Version
}
