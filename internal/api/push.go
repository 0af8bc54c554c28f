package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// MaxPushBody bounds the metadata of one push (POST /push). Payloads travel
// separately (PUT /blobs/{sha256}); a product role with thousands of
// releases is a few MiB.
const MaxPushBody = 64 << 20

// MetadataState is the answer of GET /metadata: the latest version of every
// role signed offline (what uptrust push and pull compare).
type MetadataState struct {
	Roles []project.RoleVersion `json:"roles"`
}

// PushRequest is the body of POST /push: documents signed offline, each
// with its exact bytes (base64 in JSON).
type PushRequest struct {
	Metadata []PushDocument `json:"metadata"`
}

// PushDocument is one signed document of a push.
type PushDocument struct {
	Repo    string `json:"repo"`
	Role    string `json:"role"`
	Version int64  `json:"version"`
	Body    []byte `json:"body"`
}

func (a *API) metadataState(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	roles, err := a.p.SignedState(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, MetadataState{Roles: roles})
}

// getMetadata answers one document's exact bytes. {role} is path-escaped
// ("products%2Fthermostat").
func (a *API) getMetadata(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	v, err := strconv.ParseInt(r.PathValue("version"), 10, 64)
	if err != nil || v < 1 {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("version %q: want a positive integer", r.PathValue("version")))
		return
	}
	body, err := a.p.SignedDocument(r.Context(), r.PathValue("repo"), r.PathValue("role"), v)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != "HEAD" {
		_, _ = w.Write(body)
	}
}

// push accepts documents signed offline (project.AcceptSigned): 200 with
// what changed; 409 when they do not follow the server's metadata (the
// offline project is behind or diverged); 422 when they fail verification
// or name payloads not uploaded. A refused push changes nothing and is
// recorded as refused.
func (a *API) push(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionPush
	var body PushRequest
	if !decodeBodyUpTo(w, r, &body, MaxPushBody) {
		a.noteRefusal(r, action, "repositories", "bad request body")
		return
	}
	docs := make([]store.Metadata, len(body.Metadata))
	for i, d := range body.Metadata {
		docs[i] = store.Metadata{Repo: d.Repo, Role: d.Role, Version: d.Version, Body: d.Body}
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	res, err := a.p.AcceptSigned(r.Context(), docs, action)
	switch {
	case err == nil:
		writeJSON(w, r, http.StatusOK, res)
	case errors.Is(err, repo.ErrDiverged), errors.Is(err, project.ErrNotSeeded):
		a.refuse(w, r, action, "repositories", http.StatusConflict, "push: "+err.Error())
	case errors.Is(err, repo.ErrRefused), errors.Is(err, project.ErrMissingPayload), errors.Is(err, store.ErrConflict):
		a.refuse(w, r, action, "repositories", http.StatusUnprocessableEntity, "push: "+err.Error())
	default:
		_ = a.failed(r, action, "repositories", err.Error())
		writeProblem(w, r, http.StatusInternalServerError, "push: "+err.Error())
	}
}

// refuse records a refused mutation and answers status with detail.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, action, object string, status int, detail string) {
	if err := a.refused(r, action, object, detail); err != nil {
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	writeProblem(w, r, status, detail)
}
