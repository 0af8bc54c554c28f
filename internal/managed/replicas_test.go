package managed_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// authority is what devices sign as @authority: the load balancer's name
// in front of every replica.
const authority = "updates.example.com"

// managedProject is a project with thermostat in managed mode (inventory
// field version) on SQLite, or on a real PostgreSQL when db is
// "postgres", and an enrolment token of uses uses.
func managedProject(t *testing.T, db string, o project.Options, uses int) (*project.Project, string) {
	t.Helper()
	ctx := t.Context()
	io := project.InitOptions{Dev: true, Options: o}
	if db == "postgres" {
		io.Database = pgtest.URL(t)
	}
	p, err := project.Init(ctx, t.TempDir(), io)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	until := p.Clock.Now().AddDate(2, 0, 0).Format(time.DateOnly)
	if err := p.AddProduct(ctx, project.ProductSpec{Name: "thermostat", Hardware: []string{"rev-a"}, SupportUntil: until}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetInventoryFields(ctx, "thermostat", []string{"version"}); err != nil {
		t.Fatal(err)
	}
	tok, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: uses, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return p, tok.Text
}

// replica serves p's device API as one of several servers behind a load
// balancer named authority.
func replica(t *testing.T, p *project.Project) string {
	t.Helper()
	h := managed.New(p)
	h.Authority = authority
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// recorded is a signed request as it went over the wire, which an
// attacker may send again to any replica.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// record signs a request to path with body as JSON (nil: none) at time
// at.
func record(t *testing.T, method, path string, body any, pub ed25519.PublicKey, priv ed25519.PrivateKey, at time.Time) recorded {
	t.Helper()
	if body == nil {
		return recordRaw(t, method, path, "", nil, pub, priv, at)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return recordRaw(t, method, path, "application/json", b, pub, priv, at)
}

// recordRaw signs a request to path with body and Content-Type ctype
// ("": none) at time at.
func recordRaw(t *testing.T, method, path, ctype string, body []byte, pub ed25519.PublicKey, priv ed25519.PrivateKey, at time.Time) recorded {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+authority+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if err := devauth.Sign(req, devauth.KeyID(pub), priv, at, devauth.NewNonce()); err != nil {
		t.Fatal(err)
	}
	return recorded{method: method, path: path, header: req.Header, body: body}
}

// sendTo sends the recorded request to the server at base and returns the
// status, the Content-Type and the decoded answer.
func (r recorded) sendTo(t *testing.T, base string) (int, string, map[string]any) {
	t.Helper()
	u, err := url.Parse(base + r.path)
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Method: r.method, URL: u, Header: r.header.Clone(), Host: u.Host,
		Body: io.NopCloser(bytes.NewReader(r.body)), ContentLength: int64(len(r.body))}
	resp, err := http.DefaultClient.Do(req.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// TestReplayAcrossReplicas: two servers on one database (two Project
// handles: one SQLite file, or one PostgreSQL database). An enrolment and
// an event accepted by one are refused as replayed by the other and store
// nothing more; a GET replayed to the other is answered (its nonces are
// per process: it returns what the device was already sent).
func TestReplayAcrossReplicas(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := t.Context()
			p1, token := managedProject(t, db, project.Options{}, 5)
			p2, err := project.Open(ctx, p1.Dir, project.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p2.Close() })
			s1, s2 := replica(t, p1), replica(t, p2)
			pub, priv := newKey(t)

			enrol := record(t, "POST", managed.EnrollPath, enrolBody("thermostat", pub, token, map[string]string{"version": "1.0.0"}), pub, priv, time.Now())
			code, _, out := enrol.sendTo(t, s1)
			if code != 201 {
				t.Fatalf("enrolment on replica 1: %d %v", code, out)
			}
			id := out["device_id"].(string)
			if code, ctype, out := enrol.sendTo(t, s2); code != 401 || out["code"] != devauth.CodeReplayed || ctype != "application/problem+json" {
				t.Errorf("enrolment replayed to replica 2: %d %s %v, want 401 problem %s", code, ctype, out, devauth.CodeReplayed)
			}
			tks, err := p2.EnrollmentTokens(ctx, "thermostat")
			if err != nil || len(tks) != 1 || tks[0].Uses != 4 {
				t.Errorf("token after one enrolment and its replay: %+v, %v; want 4 uses left", tks, err)
			}
			if _, err := p2.AcceptDevice(ctx, id); err != nil {
				t.Fatal(err)
			}

			event := record(t, "POST", managed.EventsPath, map[string]any{"kind": "succeeded", "version": "1.1.0"}, pub, priv, time.Now())
			if code, _, out := event.sendTo(t, s2); code != 201 {
				t.Fatalf("event on replica 2: %d %v", code, out)
			}
			for i, s := range []string{s1, s2} {
				if code, _, out := event.sendTo(t, s); code != 401 || out["code"] != devauth.CodeReplayed {
					t.Errorf("event replayed to replica %d: %d %v, want 401 %s", i+1, code, out, devauth.CodeReplayed)
				}
			}
			exp, err := p1.ExportDevice(ctx, id)
			if err != nil || len(exp.Events) != 1 {
				t.Errorf("events after one event and two replays: %d, %v; want 1", len(exp.Events), err)
			}

			state := record(t, "GET", managed.StatePath, nil, pub, priv, time.Now())
			if code, _, out := state.sendTo(t, s1); code != 200 || out["state"] != "accepted" {
				t.Errorf("state on replica 1: %d %v", code, out)
			}
			if code, _, _ := state.sendTo(t, s1); code != 401 {
				t.Errorf("state replayed to replica 1: %d, want 401 (its memory nonces)", code)
			}
			if code, _, out := state.sendTo(t, s2); code != 200 || out["device_id"] != id {
				t.Errorf("state replayed to replica 2: %d %v; want 200 (GET nonces are per process, by design)", code, out)
			}
		})
	}
}
