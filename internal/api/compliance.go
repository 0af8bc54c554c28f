package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/compliance"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
)

// The product-level compliance record that is not signed: attestations of
// facts outside uptrust and the market declaration (release-manager), and
// the compliance report computed from the running server's project, so an
// auditor can read it without the project directory. The project audits
// every change (compliance.attest, compliance.withdraw, product.market)
// by the token of the request.

// Attestation is one attestation as `uptrust compliance attestations
// --json` prints it (the CLI's type is this one).
type Attestation struct {
	Item      string     `json:"item"`
	URL       string     `json:"url"`
	Note      string     `json:"note"`
	By        string     `json:"by"`
	Time      time.Time  `json:"time"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
}

// AttestationOf returns a as the API and the CLI show it.
func AttestationOf(a store.Attestation) Attestation {
	j := Attestation{Item: a.Item, URL: a.URL, Note: a.Note, By: a.By, Time: a.Time.UTC()}
	if !a.Withdrawn.IsZero() {
		w := a.Withdrawn.UTC()
		j.Withdrawn = &w
	}
	return j
}

// AttestationCreate is the body of POST
// /api/v1/products/{product}/attestations.
type AttestationCreate struct {
	Item string `json:"item"`
	URL  string `json:"url"`
	Note string `json:"note"`
	By   string `json:"by,omitempty"`
}

// Market is a product's market declaration as `uptrust compliance market
// --json` prints it (the CLI's MarketJSON is this type).
type Market struct {
	Product           string    `json:"product"`
	PlacedOn          string    `json:"placed_on"` // YYYY-MM-DD
	ExpectedUseMonths int       `json:"expected_use_months"`
	Justification     string    `json:"justification"`
	Recorded          time.Time `json:"recorded"`
}

// MarketOf returns m as the API and the CLI show it.
func MarketOf(m store.Market) Market {
	return Market{Product: m.Product, PlacedOn: m.PlacedOn.Format(time.DateOnly), ExpectedUseMonths: m.ExpectedUseMonths,
		Justification: m.Justification, Recorded: m.Recorded.UTC()}
}

// MarketDeclare is the body of PUT /api/v1/products/{product}/market.
type MarketDeclare struct {
	PlacedOn      string `json:"placed_on"`
	ExpectedUse   string `json:"expected_use"`
	Justification string `json:"justification,omitempty"`
}

func (a *API) listAttestations(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor") {
		return
	}
	product := r.PathValue("product")
	as, err := a.p.Attestations(r.Context(), product)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	paginateAs(w, r, "attestations:"+product, as, AttestationOf)
}

// refuser answers a refused mutation after recording it.
func (a *API) refuser(w http.ResponseWriter, r *http.Request, action, object string) func(status int, detail string) {
	return func(status int, detail string) {
		if err := a.refused(r, action, object, detail); err != nil {
			writeProblem(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		writeProblem(w, r, status, detail)
	}
}

func (a *API) createAttestation(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionAttest
	product := r.PathValue("product")
	var body AttestationCreate
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, product, "bad request body")
		return
	}
	object := product + "/" + body.Item
	refuse := a.refuser(w, r, action, object)
	if err := compliance.CheckItem(body.Item); err != nil {
		refuse(http.StatusUnprocessableEntity, err.Error())
		return
	}
	spec := project.AttestSpec{Product: product, Item: body.Item, URL: body.URL, Note: body.Note, By: body.By}
	if err := project.CheckAttestSpec(spec); err != nil {
		refuse(http.StatusUnprocessableEntity, err.Error())
		return
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	if err := a.p.CheckProduct(r.Context(), product); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			refuse(http.StatusNotFound, err.Error())
			return
		}
		_ = a.failed(r, action, object, err.Error())
		a.fail(w, r, err)
		return
	}
	att, err := compliance.Attest(r.Context(), a.p, spec)
	if err != nil {
		_ = a.failed(r, action, object, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Location", Prefix+"/products/"+url.PathEscape(product)+"/attestations")
	writeJSON(w, r, http.StatusCreated, AttestationOf(att))
}

// WithdrawResult is the answer of DELETE
// /api/v1/products/{product}/attestations/{item}.
type WithdrawResult struct {
	Product   string `json:"product"`
	Item      string `json:"item"`
	Withdrawn int64  `json:"withdrawn"`
}

func (a *API) withdrawAttestation(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionWithdraw
	product, item := r.PathValue("product"), r.PathValue("item")
	if !checkQuery(w, r) {
		a.noteRefusal(r, action, product+"/"+item, "unknown query parameter")
		return
	}
	refuse := a.refuser(w, r, action, product+"/"+item)
	a.mutate.Lock()
	defer a.mutate.Unlock()
	n, err := a.p.WithdrawAttestation(r.Context(), product, item)
	switch {
	case err == nil:
		writeJSON(w, r, http.StatusOK, WithdrawResult{Product: product, Item: item, Withdrawn: n})
	case errors.Is(err, store.ErrNotFound), errors.Is(err, project.ErrNoStanding):
		refuse(http.StatusNotFound, err.Error())
	default:
		_ = a.failed(r, action, product+"/"+item, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
	}
}

func (a *API) getMarket(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	product := r.PathValue("product")
	if err := a.p.CheckProduct(r.Context(), product); err != nil {
		a.fail(w, r, err)
		return
	}
	m, err := a.p.Market(r.Context(), product)
	if errors.Is(err, store.ErrNotFound) {
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("%s has no market declaration: make one with PUT %s/products/%s/market", product, Prefix, product))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, MarketOf(m))
}

func (a *API) putMarket(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionMarket
	product := r.PathValue("product")
	var body MarketDeclare
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, product, "bad request body")
		return
	}
	refuse := a.refuser(w, r, action, product)
	if _, err := release.ParseDate(body.PlacedOn); err != nil {
		refuse(http.StatusUnprocessableEntity, "placed_on: "+err.Error())
		return
	}
	if _, err := project.ParseUse(body.ExpectedUse); err != nil {
		refuse(http.StatusUnprocessableEntity, "expected_use: "+err.Error())
		return
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	m, err := a.p.DeclareMarket(r.Context(), project.MarketSpec{Product: product, PlacedOn: body.PlacedOn,
		ExpectedUse: body.ExpectedUse, Justification: body.Justification})
	switch {
	case err == nil:
		writeJSON(w, r, http.StatusOK, MarketOf(m))
	case errors.Is(err, store.ErrNotFound):
		refuse(http.StatusNotFound, err.Error())
	default:
		_ = a.failed(r, action, product, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
	}
}

// getCompliance answers the compliance report of a product, as `uptrust
// compliance --json` prints it; 200 whatever the verdicts (the report's
// shalls_not_met says what the CLI's exit status says).
func (a *API) getCompliance(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	facts, err := compliance.Gather(r.Context(), a.p, r.PathValue("product"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, compliance.NewReport(facts))
}

// complianceAction is the audit action of a compliance route, "" for
// others.
func complianceAction(method, path string) string {
	switch {
	case method == "POST" && strings.HasSuffix(path, "/attestations"):
		return project.ActionAttest
	case method == "DELETE" && strings.Contains(path, "/attestations/"):
		return project.ActionWithdraw
	case method == "PUT" && strings.HasSuffix(path, "/market"):
		return project.ActionMarket
	}
	return ""
}
