package managed

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/store"
)

// putNewer never takes the cache back to an older record (a GET state
// that read the database before a decommissioning the poll already
// brought), and takes a newer one (an acceptance the poll has not seen).
func TestViewsPutNewer(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := newViews(nil)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	d := store.Device{ID: "d1", PublicKey: base64.StdEncoding.EncodeToString(pub), State: store.DevicePending, Updated: t0}
	v.putNewer(d)
	e := v.lookup(devauth.KeyID(pub))
	if e == nil || e.dev.Load().State != store.DevicePending {
		t.Fatalf("first record: %+v", e)
	}
	accepted := d
	accepted.State, accepted.Updated = store.DeviceAccepted, t0.Add(time.Second)
	v.putNewer(accepted)
	if got := e.dev.Load().State; got != store.DeviceAccepted {
		t.Fatalf("after a newer record: %s, want accepted", got)
	}
	decommissioned := d
	decommissioned.State, decommissioned.Updated = store.DeviceDecommissioned, t0.Add(2*time.Second)
	v.put(decommissioned)
	v.putNewer(accepted)
	if got := e.dev.Load().State; got != store.DeviceDecommissioned {
		t.Fatalf("an older record took the cache back: %s, want decommissioned", got)
	}
}
