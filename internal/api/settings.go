package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// Settings changes: GET shows the values in effect (uptrust.json with the
// database's overrides applied, see project.Runtime) with an ETag; PATCH
// is a JSON merge patch (RFC 7396) of the changeable fields, report_k and
// retention, with If-Match. null removes an override, so the value of
// uptrust.json applies again. The ETag is checked in the transaction of
// the change (project.ChangeSettings), so it holds across replicas.

// settingsObject is the audit object of settings changes.
const settingsObject = "settings"

func (a *API) getSettings(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	rs, err := a.p.Runtime(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	answerSettings(w, r, a.settings, rs)
}

func answerSettings(w http.ResponseWriter, r *http.Request, s Settings, rs project.RuntimeSettings) {
	s.ReportK = rs.ReportK
	s.Retention = map[string]string{}
	for _, t := range rs.Retention.Tables() {
		s.Retention[t.Table] = t.Period.String()
	}
	s.Overridden = rs.Overridden
	w.Header().Set("ETag", rs.ETag)
	writeJSON(w, r, http.StatusOK, s)
}

// settingsPatch reads a merge patch into the change project.ChangeSettings
// takes ("" removes an override). Errors name the field.
func settingsPatch(body []byte) (map[string]string, error) {
	var top map[string]json.RawMessage
	if err := strictObject(body, &top); err != nil {
		return nil, err
	}
	change := map[string]string{}
	for k, v := range top {
		switch k {
		case "report_k":
			if isNull(v) {
				change[project.SettingReportK] = ""
				continue
			}
			var x any
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.UseNumber()
			n, ok := x.(json.Number)
			if err := dec.Decode(&x); err == nil {
				n, ok = x.(json.Number)
			}
			if !ok {
				return nil, fmt.Errorf("report_k: want a whole number of at least 1 or null, not %s", v)
			}
			k, err := strconv.Atoi(n.String())
			if err != nil || k < 1 {
				return nil, fmt.Errorf("report_k: want a whole number of at least 1 or null, not %s", v)
			}
			change[project.SettingReportK] = strconv.Itoa(k)
		case "retention":
			tables := []string{store.TableReportCounts, store.TableAudit, store.TableTokens}
			if isNull(v) {
				for _, t := range tables {
					change["retention."+t] = ""
				}
				continue
			}
			var ret map[string]json.RawMessage
			if err := strictObject(v, &ret); err != nil {
				return nil, fmt.Errorf("retention: %w", err)
			}
			for t, pv := range ret {
				if !slices.Contains(tables, t) {
					return nil, fmt.Errorf("retention.%s: unknown table (known: %s)", t, strings.Join(tables, ", "))
				}
				if isNull(pv) {
					change["retention."+t] = ""
					continue
				}
				var s string
				if err := json.Unmarshal(pv, &s); err != nil || s == "" {
					return nil, fmt.Errorf("retention.%s: want a period such as \"400d\" or null, not %s", t, pv)
				}
				change["retention."+t] = s
			}
		default:
			return nil, fmt.Errorf("%s: unknown or read-only field (changeable: report_k, retention)", k)
		}
	}
	if len(change) == 0 {
		return nil, errors.New("nothing to change: give report_k, retention or both")
	}
	return change, nil
}

// strictObject decodes one JSON object.
func strictObject(b []byte, v *map[string]json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil || *v == nil {
		return fmt.Errorf("want a JSON object, not %.40s", bytes.TrimSpace(b))
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func (a *API) patchSettings(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionSettingsChange
	refuse := func(status int, detail string) {
		if err := a.refused(r, action, settingsObject, detail); err != nil {
			writeProblem(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		writeProblem(w, r, status, detail)
	}
	if !checkQuery(w, r) {
		a.noteRefusal(r, action, settingsObject, "unknown query parameter")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" && mt != "application/merge-patch+json" {
		refuse(http.StatusUnsupportedMediaType, fmt.Sprintf("request body must be application/merge-patch+json or application/json, not %q", r.Header.Get("Content-Type")))
		return
	}
	var raw json.RawMessage
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	if err := dec.Decode(&raw); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBody))
			return
		}
		refuse(http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	change, err := settingsPatch(raw)
	if err != nil {
		refuse(http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	im := r.Header.Get("If-Match")
	if im == "" {
		refuse(http.StatusPreconditionRequired, "If-Match is required: send the ETag from GET "+Prefix+"/settings")
		return
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	// The project audits the change, by the token of the request.
	_, after, err := a.p.ChangeSettings(r.Context(), change, im)
	switch {
	case err == nil:
		answerSettings(w, r, a.settings, after)
	case errors.Is(err, project.ErrStale):
		if cur, rerr := a.p.Runtime(r.Context()); rerr == nil {
			w.Header().Set("ETag", cur.ETag)
		}
		refuse(http.StatusPreconditionFailed, "the settings changed since you read them: read them again and retry")
	case errors.Is(err, project.ErrSetting):
		refuse(http.StatusBadRequest, strings.TrimPrefix(err.Error(), "project: settings: invalid setting: "))
	default:
		_ = a.failed(r, action, settingsObject, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
	}
}
