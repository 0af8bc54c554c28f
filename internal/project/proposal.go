package project

// Root proposals: a root change that key holders sign one at a time, on
// the project's machine or each on their own with a copy of the file and
// their key file, until go-tuf finds the threshold of the previous root's
// keys and of the new root's keys. Nothing is stored or served before then.
//
// A proposal file holds the previous root as published and the proposed
// root with the signatures collected so far. Every signature is verified
// with go-tuf, each on its own, whenever the file is read: a proposed root
// changed after someone signed it, or a signature by a key that is no root
// key of either root, makes the file refused, never silently ignored.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// proposalFormat names the proposal file format and its version.
const proposalFormat = "uptrust-root-proposal/1"

// ActionRootPublish is the audit action of a root published from a proposal
// signed by key holders.
const ActionRootPublish = "root.publish"

// RootProposal is a proposal file: a new root of one repository and the
// signatures collected for it.
type RootProposal struct {
	Format     string `json:"format"`
	Repository string `json:"repository"`
	// Version of the proposed root (the previous root's plus one).
	Version int64 `json:"version"`
	// Change says in words what the proposer meant to change; signers are
	// shown what actually changes (Diff), computed from the two roots.
	Change string `json:"change"`
	// Holders maps the holders' names to their key ids in either root, as
	// the project recorded them when the proposal was written.
	Holders  []KeyHolder     `json:"holders"`
	Previous json.RawMessage `json:"previous_root"`
	Root     json.RawMessage `json:"root"`

	prev, next *metadata.Metadata[metadata.RootType]
}

// pendingDir holds the proposals of a project.
func pendingDir(dir string) string { return filepath.Join(dir, "pending") }

// ProposalPath is where a project keeps the proposal of root version of
// repository name.
func ProposalPath(dir, name string, version int64) string {
	return filepath.Join(pendingDir(dir), fmt.Sprintf("%s-root-%d.json", name, version))
}

// ReadProposal reads and checks a proposal file: its format, both roots,
// their versions, and every signature on the proposed root (see
// checkSignatures).
func ReadProposal(path string) (*RootProposal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("project: proposal: %w", err)
	}
	var pr RootProposal
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, fmt.Errorf("project: %s is not a root proposal: %w", path, err)
	}
	if pr.Format != proposalFormat {
		return nil, fmt.Errorf("project: %s: format %q, want %q", path, pr.Format, proposalFormat)
	}
	if pr.Repository != deviceapi.RepoRelease && pr.Repository != deviceapi.RepoFleet {
		return nil, fmt.Errorf("project: %s: unknown repository %q (want release or fleet)", path, pr.Repository)
	}
	if pr.prev, err = metadata.Root().FromBytes(pr.Previous); err != nil {
		return nil, fmt.Errorf("project: %s: previous_root: %w", path, err)
	}
	if pr.next, err = metadata.Root().FromBytes(pr.Root); err != nil {
		return nil, fmt.Errorf("project: %s: root: %w", path, err)
	}
	if pr.next.Signed.Version != pr.Version || pr.prev.Signed.Version+1 != pr.Version {
		return nil, fmt.Errorf("project: %s: proposes root v%d (file says v%d) after v%d; want one version after the previous root",
			path, pr.next.Signed.Version, pr.Version, pr.prev.Signed.Version)
	}
	if err := pr.checkSignatures(path); err != nil {
		return nil, err
	}
	return &pr, nil
}

// write stores the proposal at path, with the signatures it has now.
func (pr *RootProposal) write(path string) error {
	var err error
	if pr.Root, err = pr.next.ToBytes(false); err != nil {
		return fmt.Errorf("project: encoding proposal: %w", err)
	}
	if pr.Previous, err = pr.prev.ToBytes(false); err != nil {
		return fmt.Errorf("project: encoding proposal: %w", err)
	}
	b, err := json.MarshalIndent(pr, "", "  ")
	if err != nil {
		return fmt.Errorf("project: encoding proposal: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	return nil
}

// rootKeys returns the keys of md's root role by id.
func rootKeys(md *metadata.Metadata[metadata.RootType]) map[string]*metadata.Key {
	out := map[string]*metadata.Key{}
	for _, id := range md.Signed.Roles[metadata.ROOT].KeyIDs {
		if k, ok := md.Signed.Keys[id]; ok {
			out[id] = k
		}
	}
	return out
}

// holderOf names the holder of key id as the proposal records it, or
// "key <id prefix>" for a key no holder is recorded for.
func (pr *RootProposal) holderOf(id string) string {
	for _, h := range pr.Holders {
		if slices.Contains(h.KeyIDs, id) {
			return h.Name
		}
	}
	return "key " + shortID(id)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// verifySignature checks one signature over md with go-tuf: it builds a
// root that trusts key alone, with threshold 1, and asks it to verify md
// carrying that signature alone.
func verifySignature(id string, key *metadata.Key, sig metadata.Signature, md *metadata.Metadata[metadata.RootType]) error {
	trust := metadata.Root()
	trust.Signed.Keys = map[string]*metadata.Key{id: key}
	trust.Signed.Roles[metadata.ROOT] = &metadata.Role{KeyIDs: []string{id}, Threshold: 1}
	one := &metadata.Metadata[metadata.RootType]{Signed: md.Signed, Signatures: []metadata.Signature{sig}}
	return trust.VerifyDelegate(metadata.ROOT, one)
}

// checkSignatures verifies every signature on the proposed root on its
// own. A signature must be by a root key of the previous or the proposed
// root and match the proposed root as it is now; anything
// else means the file was changed after signing or signed with a wrong key.
func (pr *RootProposal) checkSignatures(path string) error {
	known := rootKeys(pr.prev)
	for id, k := range rootKeys(pr.next) {
		known[id] = k
	}
	// go-tuf's parser refuses two signatures by one key.
	for _, sig := range pr.next.Signatures {
		k, ok := known[sig.KeyID]
		if !ok {
			return fmt.Errorf("project: %s: refused: signature by key %s, which is no root key of %s root v%d or v%d",
				path, shortID(sig.KeyID), pr.Repository, pr.prev.Signed.Version, pr.next.Signed.Version)
		}
		if err := verifySignature(sig.KeyID, k, sig, pr.next); err != nil {
			return fmt.Errorf("project: %s: refused: the signature of %s (key %s) does not match the proposed root: the proposal was changed after it was signed",
				path, pr.holderOf(sig.KeyID), shortID(sig.KeyID))
		}
	}
	return nil
}

// signedPayload is the proposed root's signed part as JSON (object keys
// sorted), equal for two proposals exactly when they propose the same root.
func (pr *RootProposal) signedPayload() ([]byte, error) {
	b, err := json.Marshal(pr.next.Signed)
	if err != nil {
		return nil, fmt.Errorf("project: encoding proposed root: %w", err)
	}
	return b, nil
}

// Diff describes what the proposed root changes, computed from the two
// roots rather than taken from the proposal's own words.
func (pr *RootProposal) Diff() []string {
	var out []string
	old, next := pr.prev.Signed, pr.next.Signed
	for role := range next.Roles {
		if _, ok := old.Roles[role]; !ok {
			out = append(out, "adds role "+role)
		}
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		o, n := old.Roles[role], next.Roles[role]
		if o == nil || n == nil {
			if o != n {
				out = append(out, "removes role "+role)
			}
			continue
		}
		for _, id := range o.KeyIDs {
			if !slices.Contains(n.KeyIDs, id) {
				out = append(out, fmt.Sprintf("%s: removes key %s (%s)", role, shortID(id), pr.holderOf(id)))
			}
		}
		for _, id := range n.KeyIDs {
			if !slices.Contains(o.KeyIDs, id) {
				out = append(out, fmt.Sprintf("%s: adds key %s (%s)", role, shortID(id), pr.holderOf(id)))
			}
		}
		if o.Threshold != n.Threshold {
			out = append(out, fmt.Sprintf("%s: threshold %d -> %d", role, o.Threshold, n.Threshold))
		}
	}
	if old.ConsistentSnapshot != next.ConsistentSnapshot {
		out = append(out, fmt.Sprintf("consistent_snapshot %v -> %v", old.ConsistentSnapshot, next.ConsistentSnapshot))
	}
	out = append(out, fmt.Sprintf("expires %s (was %s)", next.Expires.Format("2006-01-02"), old.Expires.Format("2006-01-02")))
	return out
}

// Threshold is how one root's threshold stands on a proposal.
type Threshold struct {
	// Root is the root version whose root keys count.
	Root      int64
	Threshold int
	// Signed and Missing name the holders (or keys) of that root who have
	// and have not signed.
	Signed, Missing []string
}

// Met reports whether the threshold is reached.
func (t Threshold) Met() bool { return len(t.Signed) >= t.Threshold }

func (t Threshold) String() string {
	s := fmt.Sprintf("root v%d keys: %d needed, %d signed", t.Root, t.Threshold, len(t.Signed))
	if len(t.Signed) > 0 {
		s += " (" + strings.Join(t.Signed, ", ") + ")"
	}
	if !t.Met() {
		s += fmt.Sprintf("; missing %d more of: %s", t.Threshold-len(t.Signed), strings.Join(t.Missing, ", "))
	}
	return s
}

// ProposalStatus is what a proposal still needs.
type ProposalStatus struct {
	Path       string
	Repository string
	Version    int64
	Change     string
	Diff       []string
	// Old is the previous root's threshold, New the proposed root's: TUF
	// clients follow the new root only when both are met.
	Old, New Threshold
}

// Publishable reports whether both thresholds are met.
func (s ProposalStatus) Publishable() bool { return s.Old.Met() && s.New.Met() }

// Status computes what the proposal has and needs. Signatures must have
// been checked (ReadProposal does).
func (pr *RootProposal) Status(path string) ProposalStatus {
	signed := map[string]bool{}
	for _, sig := range pr.next.Signatures {
		signed[sig.KeyID] = true
	}
	count := func(md *metadata.Metadata[metadata.RootType]) Threshold {
		role := md.Signed.Roles[metadata.ROOT]
		t := Threshold{Root: md.Signed.Version, Threshold: role.Threshold}
		for _, id := range role.KeyIDs {
			if signed[id] {
				t.Signed = append(t.Signed, pr.holderOf(id))
			} else {
				t.Missing = append(t.Missing, pr.holderOf(id))
			}
		}
		return t
	}
	return ProposalStatus{Path: path, Repository: pr.Repository, Version: pr.Version, Change: pr.Change, Diff: pr.Diff(),
		Old: count(pr.prev), New: count(pr.next)}
}

// SignProposal signs the proposal file at path with the key files given,
// opened with the passphrase pass returns (asked only for an encrypted key
// file, after the proposal has been checked), and rewrites the file with the new signatures. It
// needs no project: a holder can sign a copy on their own machine with
// their key file alone. holder, when not empty, must be the holder the
// proposal records for every key. A key that is no root key of the
// previous or the proposed root is refused, and so is a file whose
// existing signatures do not verify. Signing again with the same key
// replaces that key's signature.
func SignProposal(path, holder string, keyFiles []string, pass func() ([]byte, error)) (ProposalStatus, error) {
	pr, err := ReadProposal(path)
	if err != nil {
		return ProposalStatus{}, err
	}
	if holder != "" && !slices.ContainsFunc(pr.Holders, func(h KeyHolder) bool { return h.Name == holder }) {
		var names []string
		for _, h := range pr.Holders {
			names = append(names, h.Name)
		}
		return ProposalStatus{}, fmt.Errorf("project: %s: %q is not a key holder of this proposal (holders: %s)", path, holder, strings.Join(names, ", "))
	}
	if len(keyFiles) == 0 {
		return ProposalStatus{}, fmt.Errorf("project: no key file of key holder %s to sign %s with", holder, path)
	}
	roots := rootKeys(pr.prev)
	for id, k := range rootKeys(pr.next) {
		roots[id] = k
	}
	var pw []byte
	for _, f := range keyFiles {
		enc, err := keys.IsEncrypted(f)
		if err != nil {
			return ProposalStatus{}, fmt.Errorf("project: %w", err)
		}
		if enc && pw == nil {
			if pw, err = pass(); err != nil {
				return ProposalStatus{}, err
			}
		}
		k, err := keys.Load(f, pw)
		if err != nil {
			return ProposalStatus{}, fmt.Errorf("project: key holder %s: %w", holder, err)
		}
		id := k.KeyID()
		if _, ok := roots[id]; !ok {
			return ProposalStatus{}, fmt.Errorf("project: %s (key %s) is no root key of %s root v%d or v%d: nothing signed",
				f, shortID(id), pr.Repository, pr.prev.Signed.Version, pr.next.Signed.Version)
		}
		if owner := pr.holderOf(id); holder != "" && owner != holder {
			return ProposalStatus{}, fmt.Errorf("project: %s (key %s) is the root key of %s, not of %s: nothing signed", f, shortID(id), owner, holder)
		}
		pr.next.Signatures = slices.DeleteFunc(pr.next.Signatures, func(s metadata.Signature) bool { return s.KeyID == id })
		sig, err := pr.next.Sign(k)
		if err != nil {
			return ProposalStatus{}, fmt.Errorf("project: signing %s: %w", path, err)
		}
		if err := verifySignature(id, roots[id], *sig, pr.next); err != nil {
			return ProposalStatus{}, fmt.Errorf("project: the new signature of key %s does not verify: %w", shortID(id), err)
		}
	}
	if err := pr.write(path); err != nil {
		return ProposalStatus{}, err
	}
	return pr.Status(path), nil
}

// merge adds the signatures of copies (the same proposal signed
// elsewhere) to pr. A copy must propose exactly the same root; its
// signatures were verified when it was read.
func (pr *RootProposal) merge(copies map[string]*RootProposal) (bool, error) {
	want, err := pr.signedPayload()
	if err != nil {
		return false, err
	}
	changed := false
	for path, c := range copies {
		got, err := c.signedPayload()
		if err != nil {
			return false, err
		}
		if string(got) != string(want) {
			return false, fmt.Errorf("project: %s: refused: it proposes a different %s root v%d than the pending proposal (changed after it was proposed?)",
				path, c.Repository, c.Version)
		}
		for _, sig := range c.next.Signatures {
			if !slices.ContainsFunc(pr.next.Signatures, func(s metadata.Signature) bool { return s.KeyID == sig.KeyID }) {
				pr.next.Signatures = append(pr.next.Signatures, sig)
				changed = true
			}
		}
	}
	return changed, nil
}

// pendingFiles lists the proposal files of repository name ("" for all)
// in project directory dir.
func pendingFiles(dir, name string) ([]string, error) {
	pattern := "*-root-*.json"
	if name != "" {
		pattern = name + "-root-*.json"
	}
	files, err := filepath.Glob(filepath.Join(pendingDir(dir), pattern))
	if err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	sort.Strings(files)
	return files, nil
}

// PendingProposals lists the proposal files waiting in project directory
// dir; it needs no key and does not open the store.
func PendingProposals(dir string) ([]string, error) { return pendingFiles(dir, "") }

// CollectProposals reads every pending proposal, adds to each the
// signatures of the copies given (the same proposal signed on other
// machines) and saves it, and returns their status. The holder of each key
// is taken from uptrust.json, not from the files. A copy that matches no
// pending proposal, proposes a different root, or carries a signature that
// does not verify is refused and nothing is saved.
func (p *Project) CollectProposals(ctx context.Context, copies ...string) ([]ProposalStatus, error) {
	if err := p.settleAll(ctx); err != nil {
		return nil, err
	}
	files, err := pendingFiles(p.Dir, "")
	if err != nil {
		return nil, err
	}
	props := map[string]*RootProposal{}
	for _, f := range files {
		if props[f], err = ReadProposal(f); err != nil {
			return nil, err
		}
		props[f].Holders = p.Config.KeyHolders
	}
	byFile := map[string]map[string]*RootProposal{}
	for _, c := range copies {
		cp, err := ReadProposal(c)
		if err != nil {
			return nil, err
		}
		target := ProposalPath(p.Dir, cp.Repository, cp.Version)
		if props[target] == nil {
			return nil, fmt.Errorf("project: %s: no pending proposal for %s root v%d in %s", c, cp.Repository, cp.Version, pendingDir(p.Dir))
		}
		if byFile[target] == nil {
			byFile[target] = map[string]*RootProposal{}
		}
		byFile[target][c] = cp
	}
	for target, cs := range byFile {
		if _, err := props[target].merge(cs); err != nil {
			return nil, err
		}
	}
	var out []ProposalStatus
	for _, f := range files {
		if byFile[f] != nil {
			if err := props[f].write(f); err != nil {
				return nil, err
			}
		}
		out = append(out, props[f].Status(f))
	}
	return out, nil
}

// ErrBelowThreshold is returned by PublishRoot for a proposal that lacks
// signatures.
var ErrBelowThreshold = errors.New("not enough signatures")

// PublishRoot collects the copies given (see CollectProposals) and
// publishes every pending proposal whose signatures meet both thresholds,
// as go-tuf verifies them: the root is stored, snapshot and timestamp are
// re-signed, rotated key files take their place (the old key kept as
// .retired), the device roots are rewritten and the proposal moves to
// pending/published/. A proposal below either threshold, or one whose
// previous root is no longer the latest, is not published and the error
// says who is missing. It returns the statuses of the proposals published.
func (p *Project) PublishRoot(ctx context.Context, copies ...string) ([]ProposalStatus, error) {
	sts, err := p.CollectProposals(ctx, copies...)
	if err != nil {
		return nil, err
	}
	if len(sts) == 0 {
		return nil, fmt.Errorf("project: no root change is pending in %s (uptrust root propose)", pendingDir(p.Dir))
	}
	var done []ProposalStatus
	var errs []error
	for _, st := range sts {
		if !st.Publishable() {
			var need []string
			for _, t := range []Threshold{st.Old, st.New} {
				if !t.Met() {
					need = append(need, t.String())
				}
			}
			errs = append(errs, fmt.Errorf("project: %s root v%d not published: %w: %s", st.Repository, st.Version, ErrBelowThreshold, strings.Join(need, "; ")))
			continue
		}
		if err := p.publishProposal(ctx, st.Path); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, st)
	}
	return done, errors.Join(errs...)
}

func (p *Project) publishProposal(ctx context.Context, path string) error {
	pr, err := ReadProposal(path)
	if err != nil {
		return err
	}
	name := pr.Repository
	latest, err := repo.LoadRoot(ctx, p.Store, name)
	if err != nil {
		return err
	}
	lb, err := latest.ToBytes(false)
	if err != nil {
		return fmt.Errorf("project: %w", err)
	}
	pb, err := pr.prev.ToBytes(false)
	if err != nil {
		return fmt.Errorf("project: %w", err)
	}
	if string(lb) != string(pb) {
		return fmt.Errorf("project: %s: stale: it replaces %s root v%d, but the latest is v%d (or differs); delete it and propose again",
			path, name, pr.prev.Signed.Version, latest.Signed.Version)
	}
	online, err := p.keys.online(name)
	if err != nil {
		return err
	}
	now := p.Clock.Now()
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		if err := repo.PutRoot(ctx, tx, name, pr.next); err != nil {
			return err
		}
		var signers []string
		for _, sig := range pr.next.Signatures {
			signers = append(signers, p.holderName(sig.KeyID))
		}
		if err := audit(ctx, tx, now, ActionRootPublish, name, fmt.Sprintf("root v%d published: %s; signed by %s",
			pr.Version, strings.Join(pr.Diff(), "; "), strings.Join(signers, ", "))); err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, name, now, p.Lifetimes(), online.Snapshot, online.Timestamp)
	})
	if err != nil {
		return err
	}
	if err := p.settleHolderKeys(name, pr.next); err != nil {
		return err
	}
	if err := p.syncRootConfig(ctx); err != nil {
		return err
	}
	if err := p.WriteDeviceRoots(ctx); err != nil {
		return err
	}
	done := filepath.Join(pendingDir(p.Dir), "published")
	if err := os.MkdirAll(done, 0o755); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	if err := os.Rename(path, filepath.Join(done, filepath.Base(path))); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	return nil
}

// holderName names the holder of key id from uptrust.json, or the key.
func (p *Project) holderName(id string) string {
	if h := p.Config.holderOfKey(id); h != "" {
		return h
	}
	return "key " + shortID(id)
}

// settleAll runs settleHolderKeys for both repositories' latest roots, so
// that a publish interrupted between storing the root and moving the key
// files is completed.
func (p *Project) settleAll(ctx context.Context) error {
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		root, err := repo.LoadRoot(ctx, p.Store, name)
		if err != nil {
			return err
		}
		if err := p.settleHolderKeys(name, root); err != nil {
			return err
		}
	}
	return nil
}

// settleHolderKeys puts each holder's ".next" key file of repository name
// in place of the current one once root lists it (the current one becomes
// ".retired", or ".retired-<key id>" when an earlier one is there). Key
// files not on this machine are left to their holders.
func (p *Project) settleHolderKeys(name string, root *metadata.Metadata[metadata.RootType]) error {
	listed := rootKeys(root)
	for _, h := range p.Config.KeyHolders {
		cur := HolderKeyPath(p.Dir, name, h.Name)
		id, err := keys.PublicKeyID(cur + ".next")
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("project: %w", err)
		}
		if _, ok := listed[id]; !ok {
			continue
		}
		if _, err := os.Stat(cur); err == nil {
			retired := cur + ".retired"
			if _, err := os.Stat(retired); err == nil {
				// Keep every retired key: name the later ones by key id.
				old, err := keys.PublicKeyID(cur)
				if err != nil {
					return fmt.Errorf("project: %w", err)
				}
				retired += "-" + shortID(old)
			}
			if err := os.Rename(cur, retired); err != nil {
				return fmt.Errorf("project: retiring %s: %w", cur, err)
			}
		}
		if err := os.Rename(cur+".next", cur); err != nil {
			return fmt.Errorf("project: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(cur)); err != nil {
			return fmt.Errorf("project: %w", err)
		}
	}
	return nil
}
