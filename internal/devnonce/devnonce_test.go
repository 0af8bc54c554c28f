package devnonce_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/devnonce"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
	"github.com/uptrust/uptrust/internal/store/sqldevice"
	"github.com/uptrust/uptrust/internal/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// twoStores opens two handles on one new database: one SQLite file, or
// one PostgreSQL database.
func twoStores(t *testing.T, db string) (store.Store, store.Store) { return twoStoresB(t, db) }

func twoStoresB(t testing.TB, db string) (store.Store, store.Store) {
	t.Helper()
	var open func() (store.Store, error)
	if db == "postgres" {
		url := pgtest.URL(t)
		open = func() (store.Store, error) { return postgres.Open(t.Context(), url) }
	} else {
		path := filepath.Join(t.TempDir(), "uptrust.db")
		open = func() (store.Store, error) { return sqlite.Open(t.Context(), path) }
	}
	var out [2]store.Store
	for i := range out {
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out[0], out[1]
}

type keys map[string]ed25519.PublicKey

func (k keys) DeviceKey(_ context.Context, id string) (ed25519.PublicKey, error) {
	if pub, ok := k[id]; ok {
		return pub, nil
	}
	return nil, devauth.ErrUnknownKey
}

// signed returns a function that makes copies of one signed POST, as a
// replaying attacker would send it.
func signed(t *testing.T, pub ed25519.PublicKey, priv ed25519.PrivateKey, at time.Time) func() *http.Request {
	t.Helper()
	body := []byte(`{"kind":"succeeded","version":"1.1.0"}`)
	req, err := http.NewRequest("POST", "https://updates.example.com/api/device/v1/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := devauth.Sign(req, devauth.KeyID(pub), priv, at, devauth.NewNonce()); err != nil {
		t.Fatal(err)
	}
	return func() *http.Request {
		c := req.Clone(t.Context())
		c.Body = readCloser{bytes.NewReader(body)}
		c.ContentLength = int64(len(body))
		return c
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// TestReplayAcrossReplicas: a signed POST accepted through one store
// handle is refused as replayed through another on the same database, on
// SQLite and on PostgreSQL; a GET goes to the per-process memory nonces.
func TestReplayAcrossReplicas(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			a, b := twoStores(t, db)
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			clk := clock.NewFake(now)
			ks := keys{devauth.KeyID(pub): pub}
			replica := func(st store.Store) *devauth.Verifier {
				return &devauth.Verifier{Keys: ks, Clock: clk,
					Nonces: devauth.ByMethod{Safe: devauth.NewMemoryNonces(0), Unsafe: devnonce.New(st)}}
			}
			ra, rb := replica(a), replica(b)
			req := signed(t, pub, priv, now)
			if _, err := ra.Verify(t.Context(), req()); err != nil {
				t.Fatalf("first request: %v", err)
			}
			if _, err := rb.Verify(t.Context(), req()); !errors.Is(err, devauth.ErrReplayed) {
				t.Errorf("replayed to the other replica: %v, want devauth.ErrReplayed", err)
			}
			_, err = ra.Verify(t.Context(), req())
			if !errors.Is(err, devauth.ErrReplayed) {
				t.Errorf("replayed to the same replica: %v, want devauth.ErrReplayed", err)
			}
			if st, code := devauth.Problem(err); st != http.StatusUnauthorized || code != devauth.CodeReplayed {
				t.Errorf("problem of a replay: %d %q, want 401 %q", st, code, devauth.CodeReplayed)
			}
			// A fresh request (new nonce) of the same device is accepted by
			// either.
			if _, err := rb.Verify(t.Context(), signed(t, pub, priv, now)()); err != nil {
				t.Errorf("a new request on the other replica: %v", err)
			}
		})
	}
}

// TestPurge: the store deletes rows expired for longer than Margin while
// recording nonces, at most once every PurgeEvery; a live row survives.
func TestPurge(t *testing.T) {
	a, _ := twoStores(t, "sqlite")
	s := devnonce.New(a)
	use := func(nonce string, until, now time.Time) {
		t.Helper()
		if err := s.Use(t.Context(), devauth.Nonce{KeyID: "k", Value: nonce, Method: "POST", Until: until}, now); err != nil {
			t.Fatalf("use %s: %v", nonce, err)
		}
	}
	left := func(now time.Time) int64 {
		t.Helper()
		n, err := a.Purge(t.Context(), store.TableDeviceNonces, now)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	use("old", t0.Add(devauth.DefaultSkew), t0) // deletable from t0+5m+Margin
	later := t0.Add(devauth.DefaultSkew + devnonce.Margin + time.Second)
	use("recent", later.Add(-time.Minute), t0.Add(time.Second)) // expired at "new", but for less than Margin
	use("new", later.Add(devauth.DefaultSkew), later)           // purges "old" first
	if n := left(later.Add(time.Hour)); n != 2 {
		t.Errorf("rows left after the opportunistic purge: %d, want 2 (the live one and the one expired for less than Margin)", n)
	}

	// Within PurgeEvery of the last purge nothing is deleted: "soon"
	// becomes deletable 30 s after t1, "y" comes 59 s after t1.
	t1 := later.Add(2 * time.Hour)
	use("soon", t1.Add(-devnonce.Margin+30*time.Second), t1) // purge due: runs before this insert
	use("y", t1.Add(devauth.DefaultSkew), t1.Add(devnonce.PurgeEvery-time.Second))
	if n := left(t1.Add(devnonce.PurgeEvery - time.Second - devnonce.Margin)); n != 1 {
		t.Errorf("rows deletable after the second use: %d, want 1 (\"soon\", kept until the next purge is due)", n)
	}
}

// The store computes keyids itself to erase a device's nonces; it must
// agree with devauth's.
func TestKeyIDAgrees(t *testing.T) {
	for range 20 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sqldevice.KeyID(base64.StdEncoding.EncodeToString(pub)), devauth.KeyID(pub); got != want {
			t.Fatalf("sqldevice.KeyID = %q, devauth.KeyID = %q", got, want)
		}
	}
	if got := sqldevice.KeyID("not base64!"); got != "" {
		t.Errorf("KeyID of a bad key = %q, want empty", got)
	}
}
