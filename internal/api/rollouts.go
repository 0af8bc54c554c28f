package api

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// The rollout routes: list, one with its ETag, start, change (If-Match),
// history.

func rolloutJSON(ro store.Rollout) Rollout {
	return Rollout{Product: ro.Product, Version: ro.Version, Percent: ro.Percent, Halted: ro.Halted, Started: ro.Start.UTC(), Updated: ro.Updated.UTC()}
}

// ETag is the entity tag of a rollout's current state: it changes with
// every change of the rollout.
func ETag(ro store.Rollout) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%v\x00%d\x00%d", ro.Product, ro.Version, ro.Percent, ro.Halted,
		ro.Start.UnixNano(), ro.Updated.UnixNano()))
	return `"` + hex.EncodeToString(h[:12]) + `"`
}

func (a *API) listRollouts(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor", "product", "halted") {
		return
	}
	q := r.URL.Query()
	var halted *bool
	if s := q.Get("halted"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("halted %q: want true or false", s))
			return
		}
		halted = &b
	}
	all, err := a.p.Store.Rollouts(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]Rollout, 0, len(all))
	for _, ro := range all {
		if p := q.Get("product"); p != "" && ro.Product != p || halted != nil && ro.Halted != *halted {
			continue
		}
		out = append(out, rolloutJSON(ro))
	}
	paginate(w, r, "rollouts", out)
}

func (a *API) getRollout(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	ro, err := a.p.Store.Rollout(r.Context(), r.PathValue("product"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("rollout of %s: %w", r.PathValue("product"), err))
		return
	}
	w.Header().Set("ETag", ETag(ro))
	writeJSON(w, r, http.StatusOK, rolloutJSON(ro))
}

// checkIfMatch compares If-Match with the current rollout's ETag: 428 when
// missing, 412 when stale. On failure it answers and returns false.
func checkIfMatch(w http.ResponseWriter, r *http.Request, cur store.Rollout) (string, bool) {
	im := r.Header.Get("If-Match")
	if im == "" {
		writeProblem(w, r, http.StatusPreconditionRequired, "If-Match is required: send the rollout's ETag from GET "+Prefix+"/rollouts/"+cur.Product)
		return "missing If-Match", false
	}
	if im != ETag(cur) {
		w.Header().Set("ETag", ETag(cur))
		writeProblem(w, r, http.StatusPreconditionFailed, "the rollout of "+cur.Product+" changed since you read it: read it again and retry")
		return "stale If-Match", false
	}
	return "", true
}

func (a *API) startRollout(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionRolloutStart
	var body RolloutStart
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, "", "bad request body")
		return
	}
	object := body.Product + "/" + body.Version
	refuse := func(status int, detail string) {
		if err := a.refused(r, action, object, detail); err != nil {
			writeProblem(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		writeProblem(w, r, status, detail)
	}
	if body.Product == "" || body.Version == "" || body.Percent == nil {
		refuse(http.StatusBadRequest, "product, version and percent are required")
		return
	}
	if *body.Percent < 0 || *body.Percent > 100 {
		refuse(http.StatusUnprocessableEntity, fmt.Sprintf("percent %d is not in 0..100", *body.Percent))
		return
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	ctx := r.Context()
	if err := a.p.CheckProduct(ctx, body.Product); err != nil {
		refuse(http.StatusNotFound, err.Error())
		return
	}
	if _, err := a.p.Store.Release(ctx, body.Product, body.Version); err != nil {
		refuse(http.StatusNotFound, fmt.Sprintf("no release %s of %s", body.Version, body.Product))
		return
	}
	if cur, err := a.p.Store.Rollout(ctx, body.Product); err == nil {
		if why, ok := checkIfMatch(w, r, cur); !ok {
			a.noteRefusal(r, action, object, why+": replacing the rollout of "+cur.Version)
			return
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		_ = a.failed(r, action, object, "reading the rollout failed")
		a.fail(w, r, err)
		return
	}
	// The project audits the start, by the token of the request.
	ro, err := a.p.StartRollout(ctx, body.Product, body.Version, *body.Percent)
	if errors.Is(err, project.ErrManaged) {
		refuse(http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		_ = a.failed(r, action, object, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	answerRollout(w, r, http.StatusCreated, ro)
}

// answerRollout answers a changed rollout with its new ETag.
func answerRollout(w http.ResponseWriter, r *http.Request, status int, ro store.Rollout) {
	w.Header().Set("ETag", ETag(ro))
	w.Header().Set("Location", Prefix+"/rollouts/"+ro.Product)
	writeJSON(w, r, status, rolloutJSON(ro))
}

func (a *API) patchRollout(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionRolloutChange
	product := r.PathValue("product")
	var body RolloutPatch
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, product, "bad request body")
		return
	}
	refuse := func(status int, detail string) {
		if err := a.refused(r, action, product, detail); err != nil {
			writeProblem(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		writeProblem(w, r, status, detail)
	}
	if body.Percent == nil && body.Halted == nil {
		refuse(http.StatusBadRequest, "nothing to change: give percent, halted or both")
		return
	}
	if body.Percent != nil && (*body.Percent < 0 || *body.Percent > 100) {
		refuse(http.StatusUnprocessableEntity, fmt.Sprintf("percent %d is not in 0..100", *body.Percent))
		return
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	ctx := r.Context()
	cur, err := a.p.Store.Rollout(ctx, product)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			refuse(http.StatusNotFound, "no rollout of "+product)
			return
		}
		_ = a.failed(r, action, product, "reading the rollout failed")
		a.fail(w, r, err)
		return
	}
	if why, ok := checkIfMatch(w, r, cur); !ok {
		a.noteRefusal(r, action, product+"/"+cur.Version, why)
		return
	}
	// The project audits the change, by the token of the request. a.mutate
	// serialises this process only: another replica may change the
	// rollout between the check above and the write, so the project
	// checks If-Match again and writes only if the rollout is still that
	// state when the write commits.
	im := r.Header.Get("If-Match")
	ro, err := a.p.ChangeRolloutIf(ctx, product, func(cur store.Rollout) error {
		if ETag(cur) != im {
			return project.ErrRolloutChanged
		}
		return nil
	}, func(ro *store.Rollout) {
		if body.Percent != nil {
			ro.Percent = *body.Percent
		}
		if body.Halted != nil {
			ro.Halted = *body.Halted
		}
	})
	if errors.Is(err, project.ErrRolloutChanged) {
		a.noteRefusal(r, action, product+"/"+cur.Version, "stale If-Match")
		writeProblem(w, r, http.StatusPreconditionFailed, "the rollout of "+product+" changed since you read it: read it again and retry")
		return
	}
	if err != nil {
		_ = a.failed(r, action, product+"/"+cur.Version, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	answerRollout(w, r, http.StatusOK, ro)
}

// rolloutHistory lists the starts and changes of a product's rollout,
// oldest first.
func (a *API) rolloutHistory(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor") {
		return
	}
	product := r.PathValue("product")
	if err := a.p.CheckProduct(r.Context(), product); err != nil {
		a.fail(w, r, err)
		return
	}
	var hist []store.AuditEntry
	for _, action := range []string{project.ActionRolloutStart, project.ActionRolloutChange} {
		es, err := a.p.AuditQuery(r.Context(), store.AuditFilter{Action: action, Outcome: store.OutcomeOK})
		if err != nil {
			a.fail(w, r, err)
			return
		}
		for _, e := range es {
			if strings.HasPrefix(e.Object, product+"/") {
				hist = append(hist, e)
			}
		}
	}
	slices.SortFunc(hist, func(x, y store.AuditEntry) int { return cmp.Compare(x.Seq, y.Seq) })
	paginateAs(w, r, "history:"+product, hist, AuditEntryOf)
}
