package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// The routes of managed rollouts in waves and of device groups and tags.
// Starting, pausing, resuming and aborting need access.Rollouts (the
// operator); labels need access.Devices; reading needs access.Read
// (rollouts) or access.ReadDevices (labels). The project audits what
// succeeds; refusals are audited here.

// ManagedRolloutStart is the body of POST /api/v1/managed-rollouts; the
// strings are those of `uptrust rollout start` (rollout.ParsePlan and
// rollout.ParseSelector).
type ManagedRolloutStart struct {
	Product    string `json:"product"`
	Version    string `json:"version"`
	Select     string `json:"select,omitempty"`
	Waves      string `json:"waves"`
	MaxFailure string `json:"max_failure"`
	MinSuccess *int   `json:"min_success"`
	Soak       string `json:"soak"`
	// Start is RFC 3339; empty means now.
	Start  string `json:"start,omitempty"`
	Window string `json:"window,omitempty"`
}

// RolloutAction is the optional body of POST
// /api/v1/managed-rollouts/{rollout}/pause and /abort.
type RolloutAction struct {
	Reason string `json:"reason,omitempty"`
}

// MaxReason bounds the reason of a pause or abort.
const MaxReason = 200

// ManagedRolloutJSON is a managed rollout as the API shows it; Waves
// (with counts) only in GET /api/v1/managed-rollouts/{rollout}.
type ManagedRolloutJSON struct {
	ID         string    `json:"id"`
	Product    string    `json:"product"`
	Version    string    `json:"version"`
	Seq        int64     `json:"seq"`
	Select     string    `json:"select"`
	Plan       []string  `json:"plan_waves"`
	MaxFailure string    `json:"max_failure"`
	MinSuccess int       `json:"min_success"`
	Soak       string    `json:"soak"`
	Start      time.Time `json:"start"`
	Window     string    `json:"window,omitempty"`
	Phase      string    `json:"phase"`
	// ActiveWave is 1-based; 0 while scheduled.
	ActiveWave int                  `json:"active_wave"`
	Since      *time.Time           `json:"since,omitempty"`
	Reason     string               `json:"reason,omitempty"`
	Created    time.Time            `json:"created"`
	Updated    time.Time            `json:"updated"`
	Waves      []rollout.WaveStatus `json:"waves,omitempty"`
}

// ManagedRolloutOf returns m as the API shows it.
func ManagedRolloutOf(m project.ManagedRollout) ManagedRolloutJSON {
	out := ManagedRolloutJSON{ID: m.ID, Product: m.Product, Version: m.Version, Seq: m.Seq, Select: m.Selection,
		MaxFailure: rollout.FormatShare(m.Plan.MaxFailure), MinSuccess: m.Plan.MinSuccess, Soak: m.Plan.Soak.String(),
		Start: m.Plan.Start.UTC(), Phase: string(m.State.Phase), Reason: m.State.Reason, Created: m.Created.UTC(), Updated: m.Updated.UTC()}
	for _, w := range m.Plan.Waves {
		out.Plan = append(out.Plan, rollout.FormatShare(w))
	}
	if m.Plan.Window != nil {
		out.Window = m.Plan.Window.String()
	}
	if m.State.Phase != rollout.PhaseScheduled {
		out.ActiveWave = m.State.Wave + 1
	}
	if !m.State.Since.IsZero() {
		s := m.State.Since.UTC()
		out.Since = &s
	}
	return out
}

// DeviceLabelJSON is a device's group or tag.
type DeviceLabelJSON struct {
	Device string    `json:"device"`
	Kind   string    `json:"kind"`
	Name   string    `json:"name"`
	Added  time.Time `json:"added"`
}

// DeviceLabelOf returns l as the API shows it.
func DeviceLabelOf(l store.DeviceLabel) DeviceLabelJSON {
	return DeviceLabelJSON{Device: l.Device, Kind: l.Kind, Name: l.Name, Added: l.Added.UTC()}
}

func (a *API) listManagedRollouts(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor", "product") {
		return
	}
	product := r.URL.Query().Get("product")
	rs, err := a.p.ManagedRollouts(r.Context(), product)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	paginateAs(w, r, "managed-rollouts:"+product, rs, ManagedRolloutOf)
}

func (a *API) getManagedRollout(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	st, err := a.p.RolloutStatus(r.Context(), r.PathValue("rollout"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := ManagedRolloutOf(st.Rollout)
	out.Waves = st.Waves
	writeJSON(w, r, http.StatusOK, out)
}

func (a *API) startManagedRollout(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionWavesStart
	var body ManagedRolloutStart
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, "", "bad request body")
		return
	}
	object := body.Product + "/" + body.Version
	refuse := a.refuser(w, r, action, object)
	if body.Product == "" || body.Version == "" || body.Waves == "" || body.MaxFailure == "" || body.MinSuccess == nil || body.Soak == "" {
		refuse(http.StatusBadRequest, "product, version, waves, max_failure, min_success and soak are required")
		return
	}
	plan, err := rollout.ParsePlan(rollout.PlanFlags{Waves: body.Waves, MaxFailure: body.MaxFailure, MinSuccess: fmt.Sprint(*body.MinSuccess),
		Soak: body.Soak, Start: body.Start, Window: body.Window}, a.p.Clock.Now().UTC())
	if err != nil {
		refuse(http.StatusUnprocessableEntity, err.Error())
		return
	}
	a.mutateDevices(w, r, action, object, http.StatusCreated, func() (any, error) {
		m, err := a.p.StartManagedRollout(r.Context(), body.Product, body.Version, body.Select, plan)
		if err != nil {
			return nil, err
		}
		w.Header().Set("Location", Prefix+"/managed-rollouts/"+m.ID)
		return ManagedRolloutOf(m), nil
	})
}

// rolloutOp is POST /api/v1/managed-rollouts/{rollout}/{pause,resume,abort}.
func (a *API) rolloutOp(action string, op func(r *http.Request, id, reason string) (project.ManagedRollout, error)) func(http.ResponseWriter, *http.Request, project.Principal) {
	return func(w http.ResponseWriter, r *http.Request, _ project.Principal) {
		id := r.PathValue("rollout")
		if !checkQuery(w, r) {
			a.noteRefusal(r, action, id, "unknown query parameter")
			return
		}
		var body RolloutAction
		if r.ContentLength != 0 && !decodeBody(w, r, &body) {
			a.noteRefusal(r, action, id, "bad request body")
			return
		}
		if len(body.Reason) > MaxReason || strings.IndexFunc(body.Reason, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
			a.refuser(w, r, action, id)(http.StatusUnprocessableEntity, fmt.Sprintf("reason: at most %d printable characters", MaxReason))
			return
		}
		a.mutateDevices(w, r, action, id, http.StatusOK, func() (any, error) {
			m, err := op(r, id, body.Reason)
			if err != nil {
				return nil, err
			}
			return ManagedRolloutOf(m), nil
		})
	}
}

func (a *API) listDeviceLabels(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor", "kind") {
		return
	}
	product, kind := r.PathValue("product"), r.URL.Query().Get("kind")
	if kind != "" && kind != store.LabelGroup && kind != store.LabelTag {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("kind %q: want group or tag", kind))
		return
	}
	ls, err := a.p.DeviceLabels(r.Context(), product, kind)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	paginateAs(w, r, "device-labels:"+product+":"+kind, ls, DeviceLabelOf)
}

// labelRoute is PUT (add) or DELETE (remove) of
// /api/v1/devices/{device}/{groups,tags}/{name}.
func (a *API) labelRoute(kind string, add bool) func(http.ResponseWriter, *http.Request, project.Principal) {
	action := project.ActionDeviceLabel
	if !add {
		action = project.ActionDeviceUnlabl
	}
	return func(w http.ResponseWriter, r *http.Request, _ project.Principal) {
		id, name := r.PathValue("device"), r.PathValue("name")
		if !checkQuery(w, r) {
			a.noteRefusal(r, action, id, "unknown query parameter")
			return
		}
		a.mutateDevices(w, r, action, id, http.StatusNoContent, func() (any, error) {
			if add {
				return nil, a.p.AddDeviceLabel(r.Context(), id, kind, name)
			}
			return nil, a.p.RemoveDeviceLabel(r.Context(), id, kind, name)
		})
	}
}

// wavesRoutes are the routes of this file.
func (a *API) wavesRoutes() []Route {
	return []Route{
		{"GET", Prefix + "/managed-rollouts", access.Read, a.listManagedRollouts},
		{"POST", Prefix + "/managed-rollouts", access.Rollouts, a.startManagedRollout},
		{"GET", Prefix + "/managed-rollouts/{rollout}", access.Read, a.getManagedRollout},
		{"POST", Prefix + "/managed-rollouts/{rollout}/pause", access.Rollouts, a.rolloutOp(project.ActionWavesPause,
			func(r *http.Request, id, reason string) (project.ManagedRollout, error) {
				return a.p.PauseRollout(r.Context(), id, reason)
			})},
		{"POST", Prefix + "/managed-rollouts/{rollout}/resume", access.Rollouts, a.rolloutOp(project.ActionWavesResume,
			func(r *http.Request, id, _ string) (project.ManagedRollout, error) {
				return a.p.ResumeRollout(r.Context(), id)
			})},
		{"POST", Prefix + "/managed-rollouts/{rollout}/abort", access.Rollouts, a.rolloutOp(project.ActionWavesAbort,
			func(r *http.Request, id, reason string) (project.ManagedRollout, error) {
				return a.p.AbortRollout(r.Context(), id, reason)
			})},
		{"GET", Prefix + "/products/{product}/device-labels", access.ReadDevices, a.listDeviceLabels},
		{"PUT", Prefix + "/devices/{device}/groups/{name}", access.Devices, a.labelRoute(store.LabelGroup, true)},
		{"DELETE", Prefix + "/devices/{device}/groups/{name}", access.Devices, a.labelRoute(store.LabelGroup, false)},
		{"PUT", Prefix + "/devices/{device}/tags/{name}", access.Devices, a.labelRoute(store.LabelTag, true)},
		{"DELETE", Prefix + "/devices/{device}/tags/{name}", access.Devices, a.labelRoute(store.LabelTag, false)},
	}
}

// wavesAuditAction is the audit action of a mutating route of this file,
// or "".
func wavesAuditAction(method, path string) string {
	switch {
	case method == "POST" && strings.HasSuffix(path, "/managed-rollouts"):
		return project.ActionWavesStart
	case method == "POST" && strings.HasSuffix(path, "/pause"):
		return project.ActionWavesPause
	case method == "POST" && strings.HasSuffix(path, "/resume"):
		return project.ActionWavesResume
	case method == "POST" && strings.HasSuffix(path, "/abort"):
		return project.ActionWavesAbort
	case method == "PUT" && (strings.Contains(path, "/groups/") || strings.Contains(path, "/tags/")):
		return project.ActionDeviceLabel
	case method == "DELETE" && (strings.Contains(path, "/groups/") || strings.Contains(path, "/tags/")):
		return project.ActionDeviceUnlabl
	}
	return ""
}
