package managed

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/director"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// The device cache is refreshed by Poll (the server calls it every
// server.DefaultPollEvery):
//   - every call reads the generation; when it changed, the shared fleet
//     documents, the rollouts and the fleet's online keys are read again
//     and every device record is reloaded;
//   - otherwise the devices changed since the previous call (minus
//     pollMargin, for transactions that committed late and clocks of other
//     replicas a little behind) are read: one query returning the few
//     recent changes (the devices table has no index on updated yet, so
//     it scans);
//   - every fullReloadEvery the whole device table is read again, so that
//     an erased device (a deleted row the change query cannot see) is
//     forgotten within it.
const (
	pollMargin      = 30 * time.Second
	fullReloadEvery = time.Minute
	// unknownPollEvery bounds the polls an unknown keyid triggers (a
	// device enrolled through another replica a moment ago).
	unknownPollEvery = time.Second
)

// fleetState is what every view is computed from at one generation.
type fleetState struct {
	generation int64
	shared     *metadata.TargetsType
	// sharedMax is the highest version of the shared fleet targets,
	// snapshot and timestamp (a term of director.Version).
	sharedMax int64
	// release holds, by product, the release repository's targets role
	// of the product (products/PRODUCT), whose targets assignments offer.
	release  map[string]*metadata.TargetsType
	expires  director.Expiry
	keys     repo.OnlineKeys
	assigner director.Assigner
}

// entry is one device in the cache. Its record is replaced by polls; its
// views are computed on demand and kept while the generation and the
// record's Updated stay the same.
type entry struct {
	dev atomic.Pointer[store.Device]
	// mu serialises the computation of the device's view.
	mu sync.Mutex
	// rechecked is when (Unix nanoseconds) a pending device's record was
	// last read from the store by recheck.
	rechecked atomic.Int64
	// cur is the latest view, prev the one before (a device that read
	// the timestamp just before cur replaced it still finds its snapshot
	// and targets).
	cur, prev atomic.Pointer[servedView]
}

// servedView is a device's view with its response headers.
type servedView struct {
	generation int64
	updated    time.Time
	version    int64
	timestamp  *doc
	snapshot   *doc
	targets    *doc
}

type doc struct {
	body    []byte
	etag    string
	etagHdr []string
	lenHdr  []string
}

func newDoc(b []byte) *doc {
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	return &doc{body: b, etag: etag, etagHdr: []string{etag}, lenHdr: []string{strconv.Itoa(len(b))}}
}

// views is the device cache and the per-device fleet views.
type views struct {
	p *project.Project
	// assigner decides what each device runs: the project's managed
	// rollouts in waves (project.AssignDevice) unless SetAssigner
	// replaced it.
	assigner director.Assigner

	mu    sync.RWMutex
	byKey map[string]*entry
	fleet atomic.Pointer[fleetState]

	// pollMu serialises polls; the fields below are the poller's.
	pollMu   sync.Mutex
	since    time.Time // Updated bound of the next change query (p.Clock)
	lastFull time.Time // real time of the last full reload
	lastPoll time.Time // real time of the last poll
}

func newViews(p *project.Project) *views {
	return &views{p: p, byKey: map[string]*entry{}, assigner: director.AssignerFunc(p.AssignDevice)}
}

func keyOf(d store.Device) (string, bool) {
	raw, err := base64.StdEncoding.DecodeString(d.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return "", false
	}
	return devauth.KeyID(raw), true
}

// put records d (an enrolment here, or a poll's answer).
func (v *views) put(d store.Device) {
	id, ok := keyOf(d)
	if !ok {
		return
	}
	v.mu.RLock()
	e := v.byKey[id]
	v.mu.RUnlock()
	if e == nil {
		v.mu.Lock()
		if e = v.byKey[id]; e == nil {
			e = &entry{}
			v.byKey[id] = e
		}
		v.mu.Unlock()
	}
	d.Inventory = maps.Clone(d.Inventory)
	e.dev.Store(&d)
}

// putNewer is put unless the cache holds a record of d changed later
// (d was read before a change the cache already has, such as a
// decommissioning): a record read from the database never takes the cache
// back.
func (v *views) putNewer(d store.Device) {
	id, ok := keyOf(d)
	if !ok {
		return
	}
	e := v.lookup(id)
	if e == nil {
		v.mu.Lock()
		if e = v.byKey[id]; e == nil {
			e = &entry{}
			v.byKey[id] = e
		}
		v.mu.Unlock()
	}
	d.Inventory = maps.Clone(d.Inventory)
	for {
		cur := e.dev.Load()
		if cur != nil && cur.Updated.After(d.Updated) {
			return
		}
		if e.dev.CompareAndSwap(cur, &d) {
			return
		}
	}
}

func (v *views) lookup(keyID string) *entry {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.byKey[keyID]
}

// DeviceKey implements devauth.KeyStore from memory. An unknown keyid
// polls for changes first (at most once per unknownPollEvery), for a
// device that enrolled through another replica a moment ago.
func (v *views) DeviceKey(ctx context.Context, id string) (ed25519.PublicKey, error) {
	if e := v.lookup(id); e != nil {
		return publicKey(e), nil
	}
	if v.pollIfIdle(ctx) {
		if e := v.lookup(id); e != nil {
			return publicKey(e), nil
		}
	}
	return nil, fmt.Errorf("%w: %s", devauth.ErrUnknownKey, id)
}

func publicKey(e *entry) ed25519.PublicKey {
	raw, _ := base64.StdEncoding.DecodeString(e.dev.Load().PublicKey)
	return raw
}

// pollIfIdle polls when no poll ran for unknownPollEvery and says whether
// it did.
func (v *views) pollIfIdle(ctx context.Context) bool {
	v.pollMu.Lock()
	idle := time.Since(v.lastPoll) >= unknownPollEvery
	v.pollMu.Unlock()
	return idle && v.poll(ctx) == nil
}

// poll refreshes the cache; see the comment on pollMargin.
func (v *views) poll(ctx context.Context) error {
	v.pollMu.Lock()
	defer v.pollMu.Unlock()
	v.lastPoll = time.Now()
	start := v.p.Clock.Now()
	gen, err := v.p.Store.Generation(ctx)
	if err != nil {
		return fmt.Errorf("managed: poll: generation: %w", err)
	}
	full := time.Since(v.lastFull) >= fullReloadEvery
	if cur := v.fleet.Load(); cur == nil || cur.generation != gen {
		fs, err := v.loadFleet(ctx, gen)
		if err != nil {
			return err
		}
		v.fleet.Store(fs)
		full = true
	}
	if full {
		if err := v.reloadAll(ctx); err != nil {
			return err
		}
		v.lastFull = time.Now()
	} else {
		devs, err := v.p.Store.Devices(ctx, store.DeviceFilter{UpdatedSince: v.since})
		if err != nil {
			return fmt.Errorf("managed: poll: changed devices: %w", err)
		}
		for _, d := range devs {
			v.put(d)
		}
	}
	v.since = start.Add(-pollMargin)
	return nil
}

// reloadAll reads every device again; devices no longer stored are
// forgotten.
func (v *views) reloadAll(ctx context.Context) error {
	// The pages are not one snapshot: a device that enrols while they are
	// read (and is put here by its enrolment) may sort before the cursor.
	// Only entries the cache held before the reload began are dropped when
	// the pages do not name them (erased devices).
	v.mu.RLock()
	before := make(map[string]*entry, len(v.byKey))
	for id, e := range v.byKey {
		before[id] = e
	}
	v.mu.RUnlock()
	seen := map[string]bool{}
	f := store.DeviceFilter{Limit: 1000}
	for {
		devs, err := v.p.Store.Devices(ctx, f)
		if err != nil {
			return fmt.Errorf("managed: loading devices: %w", err)
		}
		for _, d := range devs {
			if id, ok := keyOf(d); ok {
				seen[id] = true
				v.put(d)
			}
		}
		if len(devs) < f.Limit {
			break
		}
		f.AfterID = devs[len(devs)-1].ID
	}
	v.mu.Lock()
	for id, e := range v.byKey {
		if !seen[id] && before[id] == e {
			delete(v.byKey, id)
		}
	}
	v.mu.Unlock()
	return nil
}

// loadFleet reads what views are computed from at generation gen.
func (v *views) loadFleet(ctx context.Context, gen int64) (*fleetState, error) {
	fs := &fleetState{generation: gen}
	docs := map[string]store.Metadata{}
	for _, role := range []string{repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp} {
		m, err := v.p.Store.LatestMetadata(ctx, deviceapi.RepoFleet, role)
		if err != nil {
			return nil, fmt.Errorf("managed: shared fleet %s: %w", role, err)
		}
		docs[role] = m
		fs.sharedMax = max(fs.sharedMax, m.Version)
	}
	t, err := metadata.Targets().FromBytes(docs[repo.RoleTargets].Body)
	if err != nil {
		return nil, fmt.Errorf("managed: shared fleet targets: %w", err)
	}
	fs.shared = &t.Signed
	fs.expires = director.Expiry{Targets: docs[repo.RoleTargets].Expires, Snapshot: docs[repo.RoleSnapshot].Expires,
		Timestamp: docs[repo.RoleTimestamp].Expires}
	if fs.keys, err = v.p.FleetOnlineKeys(); err != nil {
		return nil, fmt.Errorf("managed: fleet online keys: %w", err)
	}
	if fs.release, err = releaseTargets(ctx, v.p.Store); err != nil {
		return nil, err
	}
	fs.assigner = v.assigner
	return fs, nil
}

// releaseTargets reads the release repository's targets role of every
// product (the offline-signed product roles devices verify targets
// against).
func releaseTargets(ctx context.Context, r store.Reader) (map[string]*metadata.TargetsType, error) {
	prods, err := r.Products(ctx)
	if err != nil {
		return nil, fmt.Errorf("managed: products: %w", err)
	}
	out := map[string]*metadata.TargetsType{}
	for _, pr := range prods {
		md, err := repo.LoadTargets(ctx, r, deviceapi.RepoRelease, repo.ProductRole(pr.Name))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("managed: release targets of %s: %w", pr.Name, err)
		}
		out[pr.Name] = &md.Signed
	}
	return out, nil
}

// errNoFleet: no poll has loaded the fleet yet.
var errNoFleet = errors.New("managed: the fleet repository is not loaded yet")

// view returns e's current view, computing it when the generation or the
// device record changed since it was computed (and only then).
func (v *views) view(ctx context.Context, e *entry) (*servedView, error) {
	fs := v.fleet.Load()
	if fs == nil {
		return nil, errNoFleet
	}
	dev := e.dev.Load()
	if cv := e.cur.Load(); cv != nil && cv.generation == fs.generation && cv.updated.Equal(dev.Updated) {
		return cv, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	dev = e.dev.Load()
	if cv := e.cur.Load(); cv != nil && cv.generation == fs.generation && cv.updated.Equal(dev.Updated) {
		return cv, nil
	}
	in := director.Input{Keys: fs.keys, Device: dev.ID, Product: dev.Product, Shared: fs.shared, Release: fs.release[dev.Product], Expires: fs.expires,
		Version: director.Version(fs.generation, fs.sharedMax, dev.Updated)}
	a, ok, err := fs.assigner.Assign(ctx, *dev)
	if err != nil {
		return nil, fmt.Errorf("managed: assignment of %s: %w", dev.ID, err)
	}
	if ok {
		in.Assignment = &a
	}
	built, err := director.Build(in)
	if err != nil {
		return nil, err
	}
	sv := &servedView{generation: fs.generation, updated: dev.Updated, version: built.Version,
		timestamp: newDoc(built.Timestamp), snapshot: newDoc(built.Snapshot), targets: newDoc(built.Targets)}
	if old := e.cur.Load(); old != nil && old.version != sv.version {
		e.prev.Store(old)
	}
	e.cur.Store(sv)
	return sv, nil
}

// fleetMetadataDir is where the fleet's metadata is served.
var fleetMetadataDir = deviceapi.MetadataDir(deviceapi.FleetBase) + "/"

// viewDoc returns the document of sv (or of the view before it) that the
// fleet metadata name asks for, or nil.
func (e *entry) viewDoc(sv *servedView, name string) *doc {
	if name == "timestamp.json" {
		return sv.timestamp
	}
	ver, role, ok := strings.Cut(name, ".")
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return nil
	}
	for _, cand := range []*servedView{sv, e.prev.Load()} {
		if cand == nil || cand.version != n {
			continue
		}
		switch role {
		case "snapshot.json":
			return cand.snapshot
		case "targets.json":
			return cand.targets
		}
	}
	return nil
}

// isViewPath says whether p names a document of a device's own view: the
// fleet's timestamp, snapshot or targets (the fleet's root is shared).
func isViewPath(p string) (string, bool) {
	name, ok := strings.CutPrefix(p, fleetMetadataDir)
	if !ok {
		return "", false
	}
	return name, name == "timestamp.json" || strings.HasSuffix(name, ".snapshot.json") || strings.HasSuffix(name, ".targets.json")
}

var (
	hdrJSON    = []string{"application/json"}
	hdrPrivate = []string{"private, no-cache"}
	hdrNosniff = []string{"nosniff"}
)

// serveView answers a device's request for a document of its own view.
// The documents are the device's alone: Cache-Control private keeps them
// out of shared caches (a CDN must not hand them to anyone else).
func (h *Handler) serveView(w http.ResponseWriter, r *http.Request, e *entry, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem(w, http.StatusMethodNotAllowed, "method-not-allowed", "read metadata with GET", nil)
		return
	}
	sv, err := h.views.view(r.Context(), e)
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "unavailable", "the server cannot answer now; try again later", nil)
		return
	}
	d := e.viewDoc(sv, name)
	if d == nil {
		problem(w, http.StatusNotFound, "not-found", "no such document in this device's fleet view", nil)
		return
	}
	hd := w.Header()
	hd["Etag"] = d.etagHdr
	hd["Cache-Control"] = hdrPrivate
	if inm, ok := r.Header["If-None-Match"]; ok && etagMatches(inm, d.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd["Content-Type"] = hdrJSON
	hd["Content-Length"] = d.lenHdr
	hd["X-Content-Type-Options"] = hdrNosniff
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(d.body)
	}
}

// etagMatches is If-None-Match's weak comparison (RFC 9110 §13.1.2)
// against a strong quoted etag.
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// recheckEvery bounds how often a pending device's /repo/ requests read
// its record from the store (recheck).
const recheckEvery = time.Second

// recheck returns the record of a device the cache holds as pending, read
// again from the store at most once per recheckEvery: an operator's accept
// reaches this server's cache at its next poll, but a device told
// "accepted" by the state endpoint (perhaps through another replica)
// checks at once. Pending devices are not the hot path.
func (v *views) recheck(ctx context.Context, e *entry, d *store.Device) *store.Device {
	now := time.Now().UnixNano()
	last := e.rechecked.Load()
	if now-last < int64(recheckEvery) || !e.rechecked.CompareAndSwap(last, now) {
		return d
	}
	fresh, err := v.p.Store.DeviceByKey(ctx, d.PublicKey)
	if err != nil {
		return d
	}
	v.putNewer(fresh)
	return e.dev.Load()
}

// refusal answers a device that may not read metadata: pending, rejected
// or decommissioned.
func refusal(w http.ResponseWriter, d *store.Device) bool {
	switch d.State {
	case store.DeviceAccepted:
		return false
	case store.DevicePending:
		problem(w, http.StatusForbidden, "pending", "the operator has not accepted this device yet", nil)
	default:
		problem(w, http.StatusForbidden, d.State, "the operator "+d.State+" this device", nil)
	}
	return true
}
