package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
)

// The conditional check of a managed device (Uptane's director check, in
// TUF's terms; docs/device-protocol.md, "Conditional checks").
//
// A managed device's fleet timestamp is its own: the server signs one per
// device view and answers 304 Not Modified to a GET that names its ETag in
// If-None-Match. When the device's last full check (the TUF client
// workflow on both repositories) succeeded and found nothing to install,
// its next checks begin with that one conditional request; a 304 says the
// view the device verified is still the server's, and the check ends
// there. Anything else (a 200, an error, a refusal) runs the full workflow
// as in anonymous mode, as does a check for which the full refresh is due:
// the last one is FullCheckEvery old, or some trusted metadata expires
// within FullCheckEvery, or something is pending (a download, a release
// waiting for the owner or a maintenance window).
//
// Security: a 304 is unsigned. It can only end a check with nothing done;
// it cannot make the device install, trust or report anything. A network
// attacker (TLS aside) who forges 304s can therefore hide a new view from
// the device for at most FullCheckEvery, and never past the expiry of the
// metadata it trusts (the bound includes the expiry margin). Everything
// installed is still verified by the full refresh: the release repository
// must sign it, both repositories must agree, and the rollback and freeze
// protection of TUF (versions, expiry) is that of the full refresh,
// unchanged. Anonymous devices never send a validator (it would link
// their checks).

// DefaultFullCheckEvery is Config.FullCheckEvery's default.
const DefaultFullCheckEvery = time.Hour

// FullRefresh is what a managed device remembers of its last full check
// that succeeded and found nothing to install (State.FullRefresh).
type FullRefresh struct {
	// At is when it ran (the device's clock).
	At time.Time `json:"at"`
	// Expires is the earliest expiry of the trusted root, timestamp,
	// snapshot and top-level targets of both repositories.
	Expires time.Time `json:"expires"`
	// Validator is the quoted SHA-256 of the verified fleet timestamp,
	// which is the server's ETag of it (TimestampValidator).
	Validator string `json:"validator"`
}

// TimestampValidator is the entity tag the server gives a timestamp
// document: its SHA-256 in lower-case hex, quoted.
func TimestampValidator(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// ConditionalAllowed says whether a check at now may be the conditional
// request alone, given the last full refresh f (nil: none recorded),
// whether something is pending, and the bound every; when not, why (for
// the log). A clock that went back before f.At forces the full check.
func ConditionalAllowed(f *FullRefresh, pending bool, now time.Time, every time.Duration) (bool, string) {
	switch {
	case f == nil || f.Validator == "":
		return false, "no full refresh recorded"
	case pending:
		return false, "something is pending"
	case now.Before(f.At):
		return false, "the clock is before the last full refresh"
	case now.Sub(f.At) >= every:
		return false, fmt.Sprintf("the last full refresh is older than %v", every)
	case !now.Add(every).Before(f.Expires):
		return false, fmt.Sprintf("trusted metadata expires within %v", every)
	}
	return true, ""
}

// pendingWork says whether s has something a check must look at with the
// full workflow: a download in progress, releases waiting for the owner or
// a maintenance window.
func pendingWork(s *State) bool {
	return s.Phase != PhaseIdle || s.Pending != nil || len(s.Waiting) > 0 || s.Window != nil
}

// conditionalCheck runs the conditional request when allowed and says
// whether the check ends with it (a 304). Any other outcome, errors
// included, leaves the check to the full workflow, which reports them.
func (a *Agent) conditionalCheck(ctx context.Context, s *State, now time.Time) bool {
	ok, why := ConditionalAllowed(s.FullRefresh, pendingWork(s), now, a.cfg.fullCheckEvery())
	if !ok {
		a.log.Debug("full check", "reason", why)
		return false
	}
	u := strings.TrimSuffix(a.cfg.Server, "/") + deviceapi.MetadataDir(deviceapi.FleetBase) + "/timestamp.json"
	ans, err := a.http.CallHeader(ctx, http.MethodGet, u, nil, int64(a.cfg.metadataMax().Timestamp),
		http.Header{"If-None-Match": {s.FullRefresh.Validator}})
	if err != nil {
		a.log.Debug("conditional check failed; running the full check", "err", err)
		return false
	}
	return ans.StatusCode == http.StatusNotModified
}

// recordFull sets s.FullRefresh after a full check at now: from the
// refreshed repositories r when it succeeded with nothing to install
// (ok), else nil, so that the next check is a full one too.
func (a *Agent) recordFull(s *State, r *repos, now time.Time, ok bool) {
	s.FullRefresh = nil
	if !ok || r == nil || !a.cfg.Managed() {
		return
	}
	b, err := os.ReadFile(filepath.Join(a.tufDir(deviceapi.RepoFleet), "timestamp.json"))
	if err != nil {
		return
	}
	var exp time.Time
	for _, u := range r.multi.TUFClients {
		t := u.GetTrustedMetadataSet()
		es := []time.Time{t.Root.Signed.Expires}
		if t.Timestamp != nil {
			es = append(es, t.Timestamp.Signed.Expires)
		}
		if t.Snapshot != nil {
			es = append(es, t.Snapshot.Signed.Expires)
		}
		if tg := t.Targets["targets"]; tg != nil {
			es = append(es, tg.Signed.Expires)
		}
		for _, e := range es {
			if exp.IsZero() || e.Before(exp) {
				exp = e
			}
		}
	}
	s.FullRefresh = &FullRefresh{At: now, Expires: exp, Validator: TimestampValidator(b)}
}
