package fleetsim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unique"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/multirepo"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
)

// Enrolment states of a simulated device (the server's words).
const (
	stateNew uint8 = iota
	statePending
	stateAccepted
	stateRefused // rejected or decommissioned: the device stops
)

// device is one simulated device: only what a device must remember
// between checks. Everything immutable (roots, server, product, the HTTP
// transport) lives in Sim.
type device struct {
	key     ed25519.PrivateKey
	keyID   string
	id      string // the server's device_id
	state   uint8
	version string // running release
	secVer  uint64 // highest committed security version
	failed  string // the last version that failed here (not tried again)
	seed    [16]byte
	slot    memSlot
	repos   [2]repoCache // release, fleet
	fields  []string     // declared inventory fields, from GET state
	checks  int
	stopped bool
	// settled: the last full check found nothing to install; full is
	// then what it verified, for the agent's conditional check
	// (agent.ConditionalAllowed), zero otherwise.
	settled bool
	full    agent.FullRefresh
	// sentInv is the inventory the server has (inventoryKey), sent with
	// the last enrolment.
	sentInv string
	// reenrolled: the last check enrolled again (reenrol).
	reenrolled bool
}

// memSlot is the device's A/B pair in memory: of each slot only the
// length and SHA-256 of the image written into it, which is all a
// simulated device needs to prove it received the bytes.
type memSlot struct {
	active uint8
	image  [2]slotImage
}

type slotImage struct {
	length int64
	sha256 [sha256.Size]byte
}

// slotWriter hashes what is written into the inactive slot.
type slotWriter struct {
	h hash.Hash
	n int64
}

func (w *slotWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return w.h.Write(p) }
func (w *slotWriter) Sync() error                 { return nil }

// statusError is an answer with an unexpected status.
type statusError struct {
	method, path string
	status       int
	code         string // the problem document's code, if any
	detail       string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("fleetsim: %s %s: %d", e.method, e.path, e.status)
	if e.code != "" {
		msg += " " + e.code
	}
	if e.detail != "" {
		msg += ": " + e.detail
	}
	return msg
}

var errTooLong = errors.New("fleetsim: answer longer than allowed")

// do sends one request signed with d's key (a fresh nonce, redirects
// signed anew) and returns the body of a status in ok, at most max bytes.
func (s *Sim) do(ctx context.Context, d *device, method, urlPath string, body []byte, max int64, ok ...int) ([]byte, error) {
	return s.doHeader(ctx, d, method, urlPath, body, max, "", ok...)
}

// doHeader is do with an If-None-Match of inm when not "".
func (s *Sim) doHeader(ctx context.Context, d *device, method, urlPath string, body []byte, max int64, inm string, ok ...int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := urlPath
	if strings.HasPrefix(u, "/") {
		u = s.server + u
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("fleetsim: %s %s: %w", method, urlPath, err)
	}
	req.Header.Set("User-Agent", "uptrust-sim")
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := http.Client{Transport: &devauth.Transport{Base: s.transport, KeyID: d.keyID, Key: d.key}}
	s.stats.requests.Add(1)
	resp, err := c.Do(req)
	if err != nil {
		return nil, &netError{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, &netError{err: err}
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s %s: more than %d bytes", errTooLong, method, urlPath, max)
	}
	for _, c := range ok {
		if resp.StatusCode == c {
			return b, nil
		}
	}
	se := &statusError{method: method, path: req.URL.Path, status: resp.StatusCode}
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &p) == nil {
		se.code, se.detail = p.Code, p.Detail
	}
	return nil, se
}

// netError is a request that got no answer.
type netError struct{ err error }

func (e *netError) Error() string { return "fleetsim: " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// get is a signed GET answered 200.
func (s *Sim) get(ctx context.Context, d *device, urlPath string, max int64) ([]byte, error) {
	return s.do(ctx, d, http.MethodGet, urlPath, nil, max, http.StatusOK)
}

const maxDeviceAnswer = 64 << 10

type deviceAnswer struct {
	DeviceID        string   `json:"device_id"`
	State           string   `json:"state"`
	InventoryFields []string `json:"inventory_fields"`
}

// enrol runs the agent's enrolment (docs/device-protocol.md): POST enroll
// with the inventory known so far, GET state, and POST enroll once more
// when the declared fields call for other values.
func (s *Sim) enrol(ctx context.Context, d *device) error {
	sent := d.inventory()
	if err := s.postEnrol(ctx, d, sent); err != nil {
		return err
	}
	if d.state == stateRefused {
		return nil
	}
	if err := s.readState(ctx, d); err != nil {
		return err
	}
	if inv := d.inventory(); d.state != stateRefused && !sameInventory(inv, sent) {
		return s.postEnrol(ctx, d, inv)
	}
	return nil
}

func (s *Sim) postEnrol(ctx context.Context, d *device, inv map[string]string) error {
	body, err := json.Marshal(map[string]any{"product": s.product, "token": s.token, "inventory": inv,
		"public_key": base64.StdEncoding.EncodeToString(d.key.Public().(ed25519.PublicKey))})
	if err != nil {
		return err
	}
	b, err := s.do(ctx, d, http.MethodPost, deviceapi.DevicePrefix+"enroll", body, maxDeviceAnswer, http.StatusOK, http.StatusCreated)
	if refused(err) {
		d.state = stateRefused
		return nil
	}
	if err != nil {
		return err
	}
	d.sentInv = inventoryKey(inv)
	return d.record(b)
}

// inventoryKey is inv as one comparable string.
func inventoryKey(inv map[string]string) string {
	keys := make([]string, 0, len(inv))
	for k := range inv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + inv[k] + "\n")
	}
	return b.String()
}

// reenrol repeats the enrolment when the declared inventory changed since
// the server last had it (after an update), as the agent does: once, the
// next check tries again if it fails.
func (s *Sim) reenrol(ctx context.Context, d *device) error {
	inv := d.inventory()
	if len(d.fields) == 0 || inventoryKey(inv) == d.sentInv {
		return nil
	}
	d.reenrolled = true
	return s.postEnrol(ctx, d, inv)
}

func (s *Sim) readState(ctx context.Context, d *device) error {
	b, err := s.get(ctx, d, deviceapi.DevicePrefix+"state", maxDeviceAnswer)
	if refused(err) {
		d.state = stateRefused
		return nil
	}
	if err != nil {
		return err
	}
	return d.record(b)
}

// refused says whether err is the server's 403 rejected/decommissioned.
func refused(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.status == http.StatusForbidden && (se.code == "rejected" || se.code == "decommissioned")
}

// record takes the server's answer about the device.
func (d *device) record(b []byte) error {
	var a deviceAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("fleetsim: device answer: %w", err)
	}
	switch a.State {
	case "pending":
		d.state = statePending
	case "accepted":
		d.state = stateAccepted
	case "rejected", "decommissioned":
		d.state = stateRefused
	default:
		return fmt.Errorf("fleetsim: device answer: state %q", a.State)
	}
	if a.DeviceID != "" {
		d.id = a.DeviceID
	}
	if a.InventoryFields != nil {
		d.fields = a.InventoryFields
	}
	return nil
}

// inventory is the device's values of the declared fields only.
func (d *device) inventory() map[string]string {
	known := map[string]string{"version": d.version, "security_version": fmt.Sprint(d.secVer),
		"agent_version": "uptrust-sim", "slot": string("ab"[d.slot.active])}
	inv := map[string]string{}
	for _, f := range d.fields {
		if v, ok := known[f]; ok {
			inv[f] = v
		}
	}
	return inv
}

func sameInventory(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// outcome is what one update check did.
type outcome uint8

const (
	outcomeNone      outcome = iota // up to date, or nothing admitted
	outcomeSucceeded                // installed and committed
	outcomeFailed                   // installed and failed (--fail-ratio)
)

// check is one update check of an accepted device: refresh both
// repositories, choose the highest offered release both list identically
// that is newer than the running one, admitted by the fleet's rule, not
// below the security floor and not failed here before; download and hash
// it into the inactive slot; decide its outcome (failRatio); send the
// outcome as a signed event.
func (s *Sim) check(ctx context.Context, d *device) (outcome, error) {
	now := time.Now()
	if !s.fullVerify {
		full := &d.full
		if !d.settled {
			full = nil
		}
		if ok, _ := agent.ConditionalAllowed(full, false, now, s.fullEvery); ok {
			same, err := s.conditional(ctx, d)
			if err != nil || same {
				return outcomeNone, err
			}
		}
	}
	d.settled, d.full = false, agent.FullRefresh{}
	m, fetchers, us, err := s.refresh(ctx, d)
	if err != nil {
		return outcomeNone, err
	}
	target, rel, top, err := s.choose(m, d)
	if err == nil && target != "" {
		err = s.download(ctx, d, target, rel)
	}
	if err != nil {
		for _, f := range fetchers {
			f.cache.files, f.cache.ts = nil, unique.Handle[string]{}
		}
		return outcomeNone, err
	}
	for i, f := range fetchers {
		f.commit(us[i])
	}
	s.stats.verified.Add(1)
	if target == "" {
		d.settle(now)
		return outcomeNone, s.reenrol(ctx, d)
	}
	m2, _ := release.ManifestFromCustom(rel.Custom)
	ev := map[string]any{"kind": "succeeded", "version": m2.Version}
	out := outcomeSucceeded
	if s.fails(d, m2.Version) {
		out = outcomeFailed
		ev = map[string]any{"kind": "failed", "version": m2.Version, "error_class": "health-check",
			"message": "simulated failure (uptrust sim --fail-ratio)"}
		d.failed = m2.Version
	} else {
		d.slot.active ^= 1
		d.version, d.secVer = m2.Version, max(d.secVer, m2.SecurityVersion)
		// The highest offered release now runs: the same metadata would
		// decide nothing at the next check.
		if top {
			d.settle(now)
		}
	}
	body, _ := json.Marshal(ev)
	if _, err := s.do(ctx, d, http.MethodPost, deviceapi.DevicePrefix+"events", body, maxDeviceAnswer, http.StatusCreated, http.StatusOK); err != nil {
		return out, fmt.Errorf("fleetsim: event %s: %w", ev["kind"], err)
	}
	if err := s.reenrol(ctx, d); err != nil {
		return out, fmt.Errorf("fleetsim: enrolling again with the new inventory: %w", err)
	}
	return out, nil
}

// settle records that d's full check at now leaves nothing to install:
// the next checks may be conditional (agent.ConditionalAllowed).
func (d *device) settle(now time.Time) {
	exp := d.repos[0].expires
	if e := d.repos[1].expires; e.Before(exp) {
		exp = e
	}
	d.settled = true
	d.full = agent.FullRefresh{At: now, Expires: exp, Validator: agent.TimestampValidator([]byte(d.repos[1].ts.Value()))}
}

// fails decides, the same way for a device and a version every time,
// whether the install fails: a fraction failRatio of devices fails.
func (s *Sim) fails(d *device, version string) bool {
	if s.failRatio <= 0 {
		return false
	}
	if s.failRatio >= 1 {
		return true
	}
	h := sha256.Sum256(append(d.seed[:], version...))
	return float64(binary.BigEndian.Uint64(h[:8])>>11)/float64(1<<53) < s.failRatio
}

// choose returns the target to install ("" for none) with the release
// repository's entry, and whether it is the highest version offered.
func (s *Sim) choose(m *multirepo.MultiRepoClient, d *device) (string, *metadata.TargetFiles, bool, error) {
	var versions []string
	for p := range m.TUFClients["fleet"].GetTopLevelTargets() {
		if v, ok := strings.CutPrefix(p, s.product+"/"); ok && release.ValidVersion(v) == nil {
			versions = append(versions, v)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return release.CompareVersions(versions[i], versions[j]) > 0 })
	for _, v := range versions {
		if release.CompareVersions(v, d.version) <= 0 {
			return "", nil, false, nil
		}
		if v == d.failed {
			continue
		}
		name := release.TargetName(s.product, v)
		info, _, err := m.GetTargetInfo(name)
		if err != nil {
			return "", nil, false, &tufError{repo: "both", err: fmt.Errorf("%s: the repositories do not agree: %w", name, err)}
		}
		rel, err := m.TUFClients["release"].GetTargetInfo(name)
		if err != nil || !rel.Equal(*info) {
			return "", nil, false, &tufError{repo: "both", err: fmt.Errorf("%s: the repositories do not agree", name)}
		}
		fleet, err := m.TUFClients["fleet"].GetTargetInfo(name)
		if err != nil {
			return "", nil, false, &tufError{repo: "fleet", err: err}
		}
		man, err := release.ManifestFromCustom(rel.Custom)
		if err != nil || man.Product != s.product || man.Version != v {
			return "", nil, false, fmt.Errorf("fleetsim: %s: bad manifest (%v)", name, err)
		}
		if s.hardware != "" && !man.SupportsHardware(s.hardware) {
			continue
		}
		if man.SecurityVersion < d.secVer {
			return "", nil, false, fmt.Errorf("fleetsim: %s: security version %d below the device's %d", name, man.SecurityVersion, d.secVer)
		}
		if fleet.Custom != nil {
			rule, err := rollout.RuleFromCustom(*fleet.Custom)
			if err != nil {
				return "", nil, false, err
			}
			if rule != nil && !rollout.Admit(*rule, rollout.Bucket(d.seed[:], s.product, v)).Admitted {
				return "", nil, false, nil // waiting for its wave
			}
		}
		return name, rel, v == versions[0], nil
	}
	return "", nil, false, nil
}

// download fetches the target (signed) and hashes it into the inactive
// slot, checking length and hashes against the release repository's entry.
func (s *Sim) download(ctx context.Context, d *device, name string, rel *metadata.TargetFiles) error {
	hashes := map[string][]byte{}
	for k, v := range rel.Hashes {
		hashes[k] = v
	}
	u := s.server + deviceapi.TargetPath(deviceapi.ReleaseBase, name, hex.EncodeToString(rel.Hashes["sha256"]))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	c := http.Client{Transport: &devauth.Transport{Base: s.transport, KeyID: d.keyID, Key: d.key}}
	s.stats.requests.Add(1)
	resp, err := c.Do(req)
	if err != nil {
		return &netError{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{method: http.MethodGet, path: req.URL.Path, status: resp.StatusCode}
	}
	w := &slotWriter{h: sha256.New()}
	res, err := payload.Install(ctx, resp.Body, w, rel.Length, hashes)
	if err != nil {
		return fmt.Errorf("fleetsim: payload %s: %w", name, err)
	}
	s.stats.payloadBytes.Add(res.Bytes)
	img := &d.slot.image[d.slot.active^1]
	img.length = w.n
	copy(img.sha256[:], w.h.Sum(nil))
	return nil
}
