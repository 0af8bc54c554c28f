package project_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// readToken reads a token file and checks its mode.
func readToken(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestInitAdminToken: init writes an admin token, 0600, that authenticates
// as admin; only its hash is in the database.
func TestInitAdminToken(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	text := readToken(t, filepath.Join(p.Dir, project.AdminTokenFile))
	pr, err := p.Authenticate(t.Context(), text)
	if err != nil {
		t.Fatalf("Authenticate(init's admin token): %v", err)
	}
	if pr.Name != "admin" || pr.Role != access.Admin || !pr.Expires.Equal(t0.Add(project.DefaultTokenTTL)) {
		t.Errorf("principal %+v, want admin, role admin, expiring after the default TTL", pr)
	}
	db, err := os.ReadFile(filepath.Join(p.Dir, "uptrust.db"))
	if err != nil {
		t.Fatal(err)
	}
	if secret := text[strings.LastIndex(text, "_")+1:]; strings.Contains(string(db), secret) {
		t.Error("the database holds the token's secret")
	}
}

func TestAuthenticate(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	ci, err := p.CreateToken(ctx, project.TokenSpec{Name: "ci", Role: access.Operator, TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := p.Authenticate(ctx, ci.Text)
	if err != nil || pr.Name != "ci" || pr.Role != access.Operator || pr.TokenID != ci.Token.ID {
		t.Fatalf("Authenticate(ci) = %+v, %v", pr, err)
	}
	if !pr.Allows(access.Rollouts) || pr.Allows(access.Push) {
		t.Errorf("operator principal allows rollouts %v, push %v; want true, false", pr.Allows(access.Rollouts), pr.Allows(access.Push))
	}
	// Last use is kept as a day.
	tks, err := p.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tks {
		if tk.Name == "ci" && !tk.LastUsed.Equal(t0.Truncate(24*time.Hour)) {
			t.Errorf("ci last used %v, want the day %v", tk.LastUsed, t0.Truncate(24*time.Hour))
		}
	}

	id, _, _ := strings.Cut(strings.TrimPrefix(ci.Text, "uptrust_"), "_")
	other, _, _, _ := access.NewToken()
	wrongSecret := "uptrust_" + id + "_" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"empty", "", project.ErrTokenMalformed},
		{"garbage", "hunter2", project.ErrTokenMalformed},
		{"with Bearer", "Bearer " + ci.Text, project.ErrTokenMalformed},
		{"unknown id", other, project.ErrTokenUnknown},
		{"wrong secret", wrongSecret, project.ErrTokenUnknown},
	} {
		if _, err := p.Authenticate(ctx, tc.token); !errors.Is(err, tc.want) {
			t.Errorf("Authenticate(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}

	clk.Advance(48 * time.Hour)
	if _, err := p.Authenticate(ctx, ci.Text); !errors.Is(err, project.ErrTokenExpired) {
		t.Errorf("Authenticate at expiry = %v, want ErrTokenExpired", err)
	}
	if _, err := p.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	// Revoked is reported before expired, and only with the right secret.
	if _, err := p.Authenticate(ctx, ci.Text); !errors.Is(err, project.ErrTokenRevoked) {
		t.Errorf("Authenticate(revoked) = %v, want ErrTokenRevoked", err)
	}
	if _, err := p.Authenticate(ctx, wrongSecret); !errors.Is(err, project.ErrTokenUnknown) {
		t.Errorf("Authenticate(revoked id, wrong secret) = %v, want ErrTokenUnknown", err)
	}
}

func TestTokenChangesAudited(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := project.WithActor(t.Context(), project.Actor{Name: "admin", Role: "admin", RequestID: "req-7"})
	if _, err := p.CreateToken(ctx, project.TokenSpec{Name: "ci", Role: access.ReleaseManager}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateToken(ctx, project.TokenSpec{Name: "ci", Role: access.Operator}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second token named ci: %v, want ErrConflict", err)
	}
	for _, bad := range []project.TokenSpec{
		{Name: "Bad Name", Role: access.Operator},
		{Name: "x", Role: "root"},
		{Name: "x", Role: access.Operator, TTL: -time.Hour},
	} {
		if _, err := p.CreateToken(ctx, bad); err == nil {
			t.Errorf("CreateToken(%+v) succeeded", bad)
		}
	}
	if _, err := p.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RevokeToken(ctx, "ci"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("revoking twice: %v, want ErrConflict", err)
	}
	if _, err := p.RevokeToken(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking an unknown token: %v, want ErrNotFound", err)
	}
	// A revoked token's name is free again.
	if _, err := p.CreateToken(ctx, project.TokenSpec{Name: "ci", Role: access.Operator}); err != nil {
		t.Errorf("new token named ci after revoking the old: %v", err)
	}
	if err := p.RecordAudit(ctx, "rollout.change", "thermostat/1.0", store.OutcomeRefused, "role auditor lacks rollouts"); err != nil {
		t.Fatal(err)
	}
	if err := p.RecordAudit(ctx, "rollout.change", "thermostat/1.0", store.OutcomeOK, "x"); err == nil {
		t.Error("RecordAudit with outcome ok succeeded")
	}
	es, err := p.AuditQuery(ctx, store.AuditFilter{Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.Role != "admin" || e.RequestID != "req-7" {
			t.Errorf("entry %+v: want role admin, request req-7", e)
		}
		got = append(got, e.Action+" "+e.Object+" "+e.Outcome)
	}
	want := "token.create ci ok|token.revoke ci ok|token.create ci ok|rollout.change thermostat/1.0 refused"
	if strings.Join(got, "|") != want {
		t.Errorf("admin's audit entries:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if v, err := p.VerifyAudit(ctx); err != nil || !v.Intact {
		t.Errorf("VerifyAudit = %+v, %v; want intact", v, err)
	}
	for _, bad := range []store.AuditFilter{{Limit: -1}, {Outcome: "maybe"}, {Since: t0, Until: t0}} {
		if _, err := p.AuditQuery(ctx, bad); err == nil {
			t.Errorf("AuditQuery(%+v) succeeded", bad)
		}
	}
}

// TestBootstrapAdminToken: serve --bootstrap-token-file creates an admin
// token only when none is valid.
func TestBootstrapAdminToken(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "bootstrap")
	made, err := p.BootstrapAdminToken(ctx, path, "bootstrap", 0)
	if err != nil || made {
		t.Fatalf("BootstrapAdminToken with init's admin token valid = %v, %v; want false", made, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bootstrap file written although an admin token is valid: %v", err)
	}
	if _, err := p.RevokeToken(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	made, err = p.BootstrapAdminToken(ctx, path, "bootstrap", time.Hour)
	if err != nil || !made {
		t.Fatalf("BootstrapAdminToken after revoking admin = %v, %v; want true", made, err)
	}
	pr, err := p.Authenticate(ctx, readToken(t, path))
	if err != nil || pr.Role != access.Admin || pr.Name != "bootstrap" {
		t.Errorf("bootstrap token authenticates as %+v, %v; want admin named bootstrap", pr, err)
	}
	// Expired admin tokens do not count either.
	clk.Advance(time.Hour)
	if made, err := p.BootstrapAdminToken(ctx, path, "bootstrap2", 0); err != nil || !made {
		t.Errorf("BootstrapAdminToken after expiry = %v, %v; want true", made, err)
	}
	// A directory that does not exist: nothing is stored.
	n := len(mustTokens(t, p))
	if _, err := p.BootstrapAdminToken(ctx, filepath.Join(t.TempDir(), "no", "such", "dir"), "x", 0); err != nil {
		// bootstrap2 is valid: nothing to do, no error
		t.Errorf("BootstrapAdminToken with a valid admin = %v", err)
	}
	if _, err := p.RevokeToken(ctx, "bootstrap2"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.BootstrapAdminToken(ctx, filepath.Join(t.TempDir(), "no", "such", "dir"), "x", 0); err == nil {
		t.Error("BootstrapAdminToken into a missing directory succeeded")
	}
	if got := len(mustTokens(t, p)); got != n {
		t.Errorf("%d tokens after a failed bootstrap, want %d", got, n)
	}
}

func mustTokens(t *testing.T, p *project.Project) []store.Token {
	t.Helper()
	ts, err := p.Tokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
