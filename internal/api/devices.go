package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// Managed fleets, the operator's side (permission access.Devices; reading
// devices access.ReadDevices): product mode and inventory declaration,
// enrolment tokens, pre-authorised keys, devices and their export and
// erasure. The device-facing routes (enrolment, inventory and events sent
// by devices) are not here: they authenticate devices by request
// signatures, not bearer tokens. Device lists page by a keyset cursor (the
// last device ID), so a list of many devices is never read whole.

// DevicePolicy is a product's device policy as the API and the CLI show it.
type DevicePolicy struct {
	Product   string     `json:"product"`
	Mode      string     `json:"mode"`
	Inventory []string   `json:"inventory"`
	Updated   *time.Time `json:"updated,omitempty"`
}

// DevicePolicyOf returns p as the API shows it.
func DevicePolicyOf(p store.DevicePolicy) DevicePolicy {
	out := DevicePolicy{Product: p.Product, Mode: p.Mode, Inventory: nonNil(p.Inventory)}
	if !p.Updated.IsZero() {
		u := p.Updated.UTC()
		out.Updated = &u
	}
	return out
}

// ModeSet is the body of PUT /api/v1/products/{product}/mode.
type ModeSet struct {
	Mode string `json:"mode"`
}

// InventorySet is the body of PUT /api/v1/products/{product}/inventory.
type InventorySet struct {
	Fields []string `json:"fields"`
}

// Device is a device as the API and the CLI show it.
type Device struct {
	ID        string            `json:"id"`
	Product   string            `json:"product"`
	PublicKey string            `json:"public_key"`
	State     string            `json:"state"`
	Inventory map[string]string `json:"inventory"`
	Enrolled  time.Time         `json:"enrolled"`
	Updated   time.Time         `json:"updated"`
}

// DeviceOf returns d as the API shows it.
func DeviceOf(d store.Device) Device {
	inv := d.Inventory
	if inv == nil {
		inv = map[string]string{}
	}
	return Device{ID: d.ID, Product: d.Product, PublicKey: d.PublicKey, State: d.State, Inventory: inv,
		Enrolled: d.Enrolled.UTC(), Updated: d.Updated.UTC()}
}

// DeviceEvent is one event of a device's history.
type DeviceEvent struct {
	Seq        int64     `json:"seq"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Version    string    `json:"version"`
	Progress   int       `json:"progress,omitempty"`
	ErrorClass string    `json:"error_class,omitempty"`
	Message    string    `json:"message,omitempty"`
	Reason     string    `json:"reason,omitempty"`
}

// DeviceExport is everything the server holds about a device (GET
// /api/v1/devices/{device}/export, uptrust device export).
type DeviceExport struct {
	Device Device        `json:"device"`
	Events []DeviceEvent `json:"events"`
	// Labels are the device's static groups and tags.
	Labels []DeviceLabelJSON `json:"labels"`
	Audit  []AuditEntry      `json:"audit"`
}

// DeviceExportOf returns x as the API shows it.
func DeviceExportOf(x project.DeviceExport) DeviceExport {
	out := DeviceExport{Device: DeviceOf(x.Device), Events: []DeviceEvent{}, Labels: []DeviceLabelJSON{}, Audit: []AuditEntry{}}
	for _, l := range x.Labels {
		out.Labels = append(out.Labels, DeviceLabelOf(l))
	}
	for _, e := range x.Events {
		out.Events = append(out.Events, DeviceEvent{Seq: e.Seq, Time: e.Time.UTC(), Kind: e.Kind, Version: e.Version,
			Progress: e.Progress, ErrorClass: e.ErrorClass, Message: e.Message, Reason: e.Reason})
	}
	for _, e := range x.Audit {
		out.Audit = append(out.Audit, AuditEntryOf(e))
	}
	return out
}

// EnrollmentToken is an enrolment token as the API shows it; Token (its
// text) only in the answer that created it.
type EnrollmentToken struct {
	ID         string     `json:"id"`
	Product    string     `json:"product"`
	Uses       int        `json:"uses"`
	AutoAccept bool       `json:"auto_accept"`
	Created    time.Time  `json:"created"`
	Expires    time.Time  `json:"expires"`
	Revoked    *time.Time `json:"revoked,omitempty"`
	Token      string     `json:"token,omitempty"`
}

// EnrollmentTokenOf returns t as the API shows it.
func EnrollmentTokenOf(t store.EnrollmentToken) EnrollmentToken {
	out := EnrollmentToken{ID: t.ID, Product: t.Product, Uses: t.Uses, AutoAccept: t.AutoAccept,
		Created: t.Created.UTC(), Expires: t.Expires.UTC()}
	if !t.Revoked.IsZero() {
		r := t.Revoked.UTC()
		out.Revoked = &r
	}
	return out
}

// EnrollmentTokenCreate is the body of POST /api/v1/enrollment-tokens.
type EnrollmentTokenCreate struct {
	Product    string `json:"product"`
	Uses       int    `json:"uses"`
	Expires    string `json:"expires,omitempty"`
	AutoAccept bool   `json:"auto_accept,omitempty"`
}

// PreauthorizeKey is the body of POST
// /api/v1/products/{product}/preauthorized-keys.
type PreauthorizeKey struct {
	PublicKey string `json:"public_key"`
}

// deviceStatus is the status of a refused device-management request.
func deviceStatus(err error) int {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrConflict), errors.Is(err, project.ErrNotManaged), errors.Is(err, rollout.ErrTransition):
		return http.StatusConflict
	case errors.Is(err, project.ErrInvalid):
		return http.StatusUnprocessableEntity
	}
	return 0
}

// mutateDevices runs a device-management change under the mutation lock
// and answers it: refusals are audited as refused, failures as failed
// (the project audits successes).
func (a *API) mutateDevices(w http.ResponseWriter, r *http.Request, action, object string, status int, do func() (any, error)) {
	a.mutate.Lock()
	defer a.mutate.Unlock()
	v, err := do()
	if err == nil {
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, r, status, v)
		return
	}
	if s := deviceStatus(err); s != 0 {
		a.refuser(w, r, action, object)(s, err.Error())
		return
	}
	_ = a.failed(r, action, object, err.Error())
	writeProblem(w, r, http.StatusInternalServerError, err.Error())
}

func (a *API) getDevicePolicy(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	pol, err := a.p.DevicePolicy(r.Context(), r.PathValue("product"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, DevicePolicyOf(pol))
}

// putPolicy is a PUT that changes a product's device policy with the
// decoded body B.
func putPolicy[B any](a *API, action string, set func(r *http.Request, product string, body B) (store.DevicePolicy, error)) func(http.ResponseWriter, *http.Request, project.Principal) {
	return func(w http.ResponseWriter, r *http.Request, _ project.Principal) {
		product := r.PathValue("product")
		var body B
		if !decodeBody(w, r, &body) {
			a.noteRefusal(r, action, product, "bad request body")
			return
		}
		a.mutateDevices(w, r, action, product, http.StatusOK, func() (any, error) {
			pol, err := set(r, product, body)
			return DevicePolicyOf(pol), err
		})
	}
}

func (a *API) listEnrollmentTokens(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor", "product") {
		return
	}
	product := r.URL.Query().Get("product")
	ts, err := a.p.EnrollmentTokens(r.Context(), product)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	paginateAs(w, r, "enrollment-tokens:"+product, ts, EnrollmentTokenOf)
}

func (a *API) createEnrollmentToken(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionEnrollTokenNew
	var body EnrollmentTokenCreate
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, "", "bad request body")
		return
	}
	var ttl time.Duration
	if body.Expires != "" {
		per, err := project.ParsePeriod(body.Expires)
		if err != nil || per <= 0 {
			a.refuser(w, r, action, body.Product)(http.StatusUnprocessableEntity,
				fmt.Sprintf("expires %q: want a positive period such as 24h or 7d", body.Expires))
			return
		}
		ttl = time.Duration(per)
	}
	a.mutateDevices(w, r, action, body.Product, http.StatusCreated, func() (any, error) {
		ct, err := a.p.CreateEnrollmentToken(r.Context(), project.EnrollmentTokenSpec{Product: body.Product, Uses: body.Uses,
			TTL: ttl, AutoAccept: body.AutoAccept})
		if err != nil {
			return nil, err
		}
		out := EnrollmentTokenOf(ct.Token)
		out.Token = ct.Text
		w.Header().Set("Location", Prefix+"/enrollment-tokens/"+ct.Token.ID)
		return out, nil
	})
}

func (a *API) revokeEnrollmentToken(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionEnrollTokenRevk
	id := r.PathValue("id")
	if !checkQuery(w, r) {
		a.noteRefusal(r, action, id, "unknown query parameter")
		return
	}
	a.mutateDevices(w, r, action, id, http.StatusOK, func() (any, error) {
		tk, err := a.p.RevokeEnrollmentToken(r.Context(), id)
		return EnrollmentTokenOf(tk), err
	})
}

func (a *API) preauthorize(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionDevicePreauth
	product := r.PathValue("product")
	var body PreauthorizeKey
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, product, "bad request body")
		return
	}
	key, err := project.ParsePublicKey(body.PublicKey)
	if err != nil {
		a.refuser(w, r, action, product)(http.StatusUnprocessableEntity, err.Error())
		return
	}
	a.mutateDevices(w, r, action, product, http.StatusNoContent, func() (any, error) {
		return nil, a.p.Preauthorize(r.Context(), product, key)
	})
}

// deviceCursor encodes the keyset cursor after device id.
func deviceCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1:devices:" + id))
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor", "product", "state") {
		return
	}
	q := r.URL.Query()
	f := store.DeviceFilter{Product: q.Get("product"), State: q.Get("state"), Limit: DefaultLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", s, MaxLimit))
			return
		}
		f.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		after, ok := strings.CutPrefix(string(b), "v1:devices:")
		if err != nil || !ok || after == "" {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("cursor %q is not a cursor of this list", c))
			return
		}
		f.AfterID = after
	}
	want := f.Limit
	f.Limit++ // one more tells whether there is a next page
	ds, err := a.p.Devices(r.Context(), f)
	if errors.Is(err, project.ErrInvalid) {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := Page[Device]{Items: make([]Device, 0, min(len(ds), want))}
	for i, d := range ds {
		if i == want {
			page.Next = deviceCursor(ds[want-1].ID)
			break
		}
		page.Items = append(page.Items, DeviceOf(d))
	}
	writeJSON(w, r, http.StatusOK, page)
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	d, err := a.p.Device(r.Context(), r.PathValue("device"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, DeviceOf(d))
}

func (a *API) exportDevice(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	x, err := a.p.ExportDevice(r.Context(), r.PathValue("device"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="device-`+url.PathEscape(x.Device.ID)+`.json"`)
	writeJSON(w, r, http.StatusOK, DeviceExportOf(x))
}

// deviceAction is a state change of one device (accept, reject,
// decommission); it takes no body.
func (a *API) deviceAction(action string, do func(ctx context.Context, id string) (store.Device, error)) func(http.ResponseWriter, *http.Request, project.Principal) {
	return func(w http.ResponseWriter, r *http.Request, _ project.Principal) {
		id := r.PathValue("device")
		if !checkQuery(w, r) {
			a.noteRefusal(r, action, id, "unknown query parameter")
			return
		}
		a.mutateDevices(w, r, action, id, http.StatusOK, func() (any, error) {
			d, err := do(r.Context(), id)
			return DeviceOf(d), err
		})
	}
}

func (a *API) eraseDevice(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionDeviceErase
	id := r.PathValue("device")
	if !checkQuery(w, r) {
		a.noteRefusal(r, action, id, "unknown query parameter")
		return
	}
	a.mutateDevices(w, r, action, id, http.StatusNoContent, func() (any, error) {
		return nil, a.p.EraseDevice(r.Context(), id)
	})
}

// deviceRoutes are the routes of this file; erase comes last, so a test
// walking the routes in order finds the device until then.
func (a *API) deviceRoutes() []Route {
	return []Route{
		{"GET", Prefix + "/products/{product}/device-policy", access.Read, a.getDevicePolicy},
		{"PUT", Prefix + "/products/{product}/mode", access.Devices, putPolicy(a, project.ActionProductMode,
			func(r *http.Request, product string, b ModeSet) (store.DevicePolicy, error) {
				return a.p.SetProductMode(r.Context(), product, b.Mode)
			})},
		{"PUT", Prefix + "/products/{product}/inventory", access.Devices, putPolicy(a, project.ActionProductInventory,
			func(r *http.Request, product string, b InventorySet) (store.DevicePolicy, error) {
				return a.p.SetInventoryFields(r.Context(), product, b.Fields)
			})},
		{"POST", Prefix + "/products/{product}/preauthorized-keys", access.Devices, a.preauthorize},
		{"GET", Prefix + "/enrollment-tokens", access.Devices, a.listEnrollmentTokens},
		{"POST", Prefix + "/enrollment-tokens", access.Devices, a.createEnrollmentToken},
		{"DELETE", Prefix + "/enrollment-tokens/{id}", access.Devices, a.revokeEnrollmentToken},
		{"GET", Prefix + "/devices", access.ReadDevices, a.listDevices},
		{"GET", Prefix + "/devices/{device}", access.ReadDevices, a.getDevice},
		{"GET", Prefix + "/devices/{device}/export", access.ReadDevices, a.exportDevice},
		{"POST", Prefix + "/devices/{device}/accept", access.Devices, a.deviceAction(project.ActionDeviceAccept, a.p.AcceptDevice)},
		{"POST", Prefix + "/devices/{device}/reject", access.Devices, a.deviceAction(project.ActionDeviceReject, a.p.RejectDevice)},
		{"POST", Prefix + "/devices/{device}/decommission", access.Devices, a.deviceAction(project.ActionDeviceDecommiss, a.p.DecommissionDevice)},
		{"DELETE", Prefix + "/devices/{device}", access.Devices, a.eraseDevice},
	}
}

// deviceAuditAction is the audit action of a mutating route of this file,
// or "".
func deviceAuditAction(method, path string) string {
	switch {
	case method == "PUT" && strings.HasSuffix(path, "/mode"):
		return project.ActionProductMode
	case method == "PUT" && strings.HasSuffix(path, "/inventory"):
		return project.ActionProductInventory
	case method == "POST" && strings.HasSuffix(path, "/preauthorized-keys"):
		return project.ActionDevicePreauth
	case method == "POST" && strings.HasSuffix(path, "/enrollment-tokens"):
		return project.ActionEnrollTokenNew
	case method == "DELETE" && strings.Contains(path, "/enrollment-tokens/"):
		return project.ActionEnrollTokenRevk
	case method == "POST" && strings.HasSuffix(path, "/accept"):
		return project.ActionDeviceAccept
	case method == "POST" && strings.HasSuffix(path, "/reject"):
		return project.ActionDeviceReject
	case method == "POST" && strings.HasSuffix(path, "/decommission"):
		return project.ActionDeviceDecommiss
	case method == "DELETE" && strings.Contains(path, "/devices/"):
		return project.ActionDeviceErase
	}
	return ""
}
