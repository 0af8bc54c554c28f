package project_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

// TestServeThroughDatabaseOutage: a server on a project in a real
// PostgreSQL keeps answering /repo/ from memory while the database is
// stopped, /readyz says the database is unreachable, and once the database
// is back the next reload makes the server ready again.
func TestServeThroughDatabaseOutage(t *testing.T) {
	bin, err := pgtest.Binaries()
	if err != nil {
		if os.Getenv(pgtest.RequireToolsEnv) != "" {
			t.Fatal(err)
		}
		t.Skipf("SKIP: %v: install it with apt-get install postgresql", err)
	}
	ctx := t.Context()
	pg, err := pgtest.Start(ctx, bin) // its own server: this test stops it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	if err := pg.CreateDatabase(ctx, "outage"); err != nil {
		t.Fatal(err)
	}
	p, err := project.Init(ctx, t.TempDir(), project.InitOptions{Dev: true,
		Options: project.Options{Clock: clock.NewFake(t0), Database: pg.URL("outage")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	srv, err := server.New(server.Config{Source: p, Resigner: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	const ts = "/repo/fleet/metadata/timestamp.json"
	code, want := get(ts)
	if code != http.StatusOK {
		t.Fatalf("timestamp: %d %q", code, want)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz: %d %q", code, body)
	}

	mgmt, err := api.New(api.Config{Project: p})
	if err != nil {
		t.Fatal(err)
	}
	tokenText, err := os.ReadFile(filepath.Join(p.Dir, project.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	manage := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tokenText)))
		mgmt.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, rec.Header().Get("Content-Type") + " " + string(b)
	}
	if code, body := manage("/api/v1/rollouts"); code != http.StatusOK {
		t.Fatalf("management API: %d %s", code, body)
	}

	// The test server may lose commits younger than its WAL writer's
	// delay at an immediate stop; the token made by Init must survive.
	if err := pg.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	// The management API says the store is unavailable, as a problem
	// document, rather than failing in some other way.
	if code, body := manage("/api/v1/rollouts"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "application/problem+json") {
		t.Errorf("management API with the database stopped: %d %s", code, body)
	}
	if err := srv.Reload(ctx); err == nil {
		t.Fatal("Reload with the database stopped: no error")
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "database unreachable since") {
		t.Errorf("readyz with the database stopped: %d %q", code, body)
	}
	if code, body := get(ts); code != http.StatusOK || body != want {
		t.Errorf("timestamp with the database stopped: %d %q, want the one loaded before", code, body)
	}

	if err := pg.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool may hand out a connection that died with the server once;
	// pgx drops it and the next reload dials anew.
	var rerr error
	for range 3 {
		if rerr = srv.Reload(ctx); rerr == nil {
			break
		}
	}
	if rerr != nil {
		t.Fatalf("Reload after the database came back: %v", rerr)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("readyz after the database came back: %d %q", code, body)
	}
	if code, body := manage("/api/v1/rollouts"); code != http.StatusOK {
		t.Errorf("management API after the database came back: %d %s", code, body)
	}
}
