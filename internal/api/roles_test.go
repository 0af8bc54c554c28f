package api_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/storetest"
)

// TestRefusedRolesChangeNothing: over HTTP, for every route of the API
// that changes something, each role the role table does not allow (the
// operator and the auditor here, the roles of the tests) gets 403
// and the database is unchanged in every table but the audit log (which
// records the refusal; TestAuthMatrix checks that entry) and the
// generation (the refusal's audit entry is written by an Update, which
// moves it), and the blob store keeps what it held. The auditor is refused every mutating
// route; the operator every route of API tokens and settings. Signing
// keys have no route at all: they are managed offline with the CLI.
func TestRefusedRolesChangeNothing(t *testing.T) {
	e := newEnv(t)
	dbPath := filepath.Join(e.p.Dir, "uptrust.db")
	dump := func() string {
		t.Helper()
		return storetest.Dump(t, e.p.Store, dbPath, "", store.TableAudit, "audit_chain", "generation")
	}
	roles := []string{"operator", "auditor"}
	// A token's first use of the day records the day (tokens.last_used):
	// use each once before comparing.
	for _, role := range roles {
		if resp, b := e.do("GET", "/api/v1/health", role, ""); resp.StatusCode != 200 {
			t.Fatalf("health as %s: %d %s", role, resp.StatusCode, b)
		}
	}
	for _, rt := range e.api.Routes() {
		p := strings.ToLower(rt.Path)
		if (strings.Contains(p, "key") || strings.Contains(p, "sign")) && !strings.HasSuffix(p, "/preauthorized-keys") {
			t.Errorf("route %s %s may manage signing keys: give it a case in this test", rt.Method, rt.Path)
		}
	}

	refused := map[string][]string{}
	mutating := 0
	for _, rt := range e.api.Routes() {
		if isRead(rt.Method) {
			continue
		}
		mutating++
		route := rt.Method + " " + rt.Path
		policy, ok := rolePolicy[route]
		if !ok {
			t.Errorf("%s: not in the role table", route)
			continue
		}
		for _, role := range roles {
			if policy == "none" || slices.Contains(strings.Split(policy, ","), role) {
				continue
			}
			refused[role] = append(refused[role], route)
			before := dump()
			blob, blobErr := e.p.Blobs.Stat(t.Context(), matrixBlobSHA)
			body, hdr := matrixRequest(e, rt.Method, rt.Path)
			resp, b := e.do(rt.Method, concrete(rt.Path), role, body, hdr...)
			if resp.StatusCode != 403 {
				t.Errorf("%s as %s: %d, want 403\n%s", route, role, resp.StatusCode, b)
			}
			if after := dump(); after != before {
				t.Errorf("%s as %s changed the database:\nbefore:\n%s\nafter:\n%s", route, role, before, after)
			}
			if now, err := e.p.Blobs.Stat(t.Context(), matrixBlobSHA); err != nil || blobErr != nil || now != blob {
				t.Errorf("%s as %s: blob %+v, %v; was %+v, %v", route, role, now, err, blob, blobErr)
			}
		}
	}
	if len(refused["auditor"]) != mutating || mutating == 0 {
		t.Errorf("the auditor was refused %d of %d mutating routes: %v", len(refused["auditor"]), mutating, refused["auditor"])
	}
	for _, route := range []string{"POST /api/v1/tokens", "DELETE /api/v1/tokens/{name}", "PATCH /api/v1/settings"} {
		if !slices.Contains(refused["operator"], route) {
			t.Errorf("the operator was not refused %s", route)
		}
	}
	t.Logf("refused: operator %d routes, auditor %d routes, of %d mutating", len(refused["operator"]), len(refused["auditor"]), mutating)
}
