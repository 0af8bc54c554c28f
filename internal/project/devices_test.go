package project_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

// managedProject returns a project (on SQLite, or on a real PostgreSQL
// when db is "postgres") with the product thermostat in managed mode,
// declaring hardware, version and slot, and the database URL ("" for
// SQLite).
func managedProject(t *testing.T, db string, clk clock.Clock) (*project.Project, string) {
	t.Helper()
	o := project.InitOptions{Dev: true, Options: project.Options{Clock: clk}}
	if db == "postgres" {
		o.Database = pgtest.URL(t)
	}
	p, err := project.Init(t.Context(), t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	addProduct(t, p, thermostat())
	if _, err := p.SetProductMode(t.Context(), "thermostat", store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetInventoryFields(t.Context(), "thermostat", []string{"version", "hardware", "slot"}); err != nil {
		t.Fatal(err)
	}
	return p, o.Database
}

func newKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func enrollToken(t *testing.T, p *project.Project, uses int, ttl time.Duration, auto bool) string {
	t.Helper()
	tk, err := p.CreateEnrollmentToken(t.Context(), project.EnrollmentTokenSpec{Product: "thermostat", Uses: uses, TTL: ttl, AutoAccept: auto})
	if err != nil {
		t.Fatal(err)
	}
	return tk.Text
}

// tableTexts returns every row of every table of the live schema as text,
// keyed by table: the tables come from the store's Describe (which reads
// the database's catalog), the rows from the database itself.
func tableTexts(t *testing.T, p *project.Project, dbURL string) map[string][]string {
	t.Helper()
	ctx := t.Context()
	tables, err := p.Store.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, tb := range tables {
		out[tb.Name] = []string{}
	}
	if dbURL == "" {
		db, err := sql.Open("sqlite", filepath.Join(p.Dir, "uptrust.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, tb := range tables {
			var cols []string
			for _, c := range tb.Columns {
				cols = append(cols, fmt.Sprintf("coalesce(CAST(%q AS TEXT), '')", c.Name))
			}
			rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %q", strings.Join(cols, " || '|' || "), tb.Name))
			if err != nil {
				t.Fatalf("table %s: %v", tb.Name, err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out[tb.Name] = append(out[tb.Name], s)
			}
			rows.Close()
		}
		return out
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, tb := range tables {
		rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %q t`, tb.Name))
		if err != nil {
			t.Fatalf("table %s: %v", tb.Name, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out[tb.Name] = append(out[tb.Name], s)
		}
		rows.Close()
	}
	return out
}

// TestEraseDevice enrols a device, gives it inventory and events, exports
// it, erases it, then reads every row of every table of the live schema,
// on SQLite and on PostgreSQL: neither its id, nor its key (in any of the
// encodings it could be stored in), nor its inventory values or event
// texts remain, except the id in audit entries (see project/devices.go).
func TestEraseDevice(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := t.Context()
			p, dbURL := managedProject(t, db, clock.NewFake(t0))
			key := newKey(t)
			other := newKey(t)
			d, err := p.Enroll(ctx, "thermostat", key, enrollToken(t, p, 2, 0, false))
			if err != nil {
				t.Fatal(err)
			}
			if d.State != store.DevicePending || !strings.HasPrefix(d.ID, "d") || len(d.ID) != 33 {
				t.Fatalf("enrolled device %+v, want pending with a random id", d)
			}
			keep, err := p.Enroll(ctx, "thermostat", other, enrollToken(t, p, 1, 0, true))
			if err != nil || keep.State != store.DeviceAccepted {
				t.Fatalf("auto-accept enrolment = %+v, %v", keep, err)
			}
			if _, err := p.AcceptDevice(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			inv := map[string]string{"hardware": "rev-b-unique-hw", "version": "9.8.7-unique", "slot": "slot-unique"}
			if _, err := p.UpdateInventory(ctx, d.ID, inv); err != nil {
				t.Fatal(err)
			}
			for _, e := range []store.DeviceEvent{
				{Kind: store.EventDownloading, Version: "2.0", Progress: 50},
				{Kind: store.EventFailed, Version: "2.0", ErrorClass: "verify", Message: "message-unique-text"},
				{Kind: store.EventSkipped, Version: "2.1", Reason: "postponed_by_owner"},
			} {
				if _, err := p.AddDeviceEvent(ctx, d.ID, e); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := p.AddDeviceEvent(ctx, keep.ID, store.DeviceEvent{Kind: store.EventSucceeded, Version: "2.0"}); err != nil {
				t.Fatal(err)
			}

			for _, l := range []struct{ kind, name string }{{store.LabelGroup, "lab-unique"}, {store.LabelTag, "eu-unique"}} {
				for _, id := range []string{d.ID, keep.ID} {
					if err := p.AddDeviceLabel(ctx, id, l.kind, l.name); err != nil {
						t.Fatal(err)
					}
				}
			}

			x, err := p.ExportDevice(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(x)
			for _, want := range []string{d.ID, project.EncodePublicKey(key), "rev-b-unique-hw", "9.8.7-unique", "slot-unique",
				"message-unique-text", "postponed_by_owner", `"downloading"`, "device.accept", "device.enroll", "lab-unique", "eu-unique"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("export lacks %q: %s", want, b)
				}
			}
			if len(x.Events) != 3 || x.Device.State != store.DeviceAccepted {
				t.Errorf("export: %d events, state %s; want 3, accepted", len(x.Events), x.Device.State)
			}
			if strings.Contains(string(b), project.EncodePublicKey(other)) {
				t.Error("export of one device holds the other device's key")
			}

			before := tableTexts(t, p, dbURL)
			if !strings.Contains(strings.Join(before["devices"], "\n"), d.ID) || len(before["device_events"]) != 4 {
				t.Fatalf("the scan does not see the device before the erase: %v", before["devices"])
			}
			if err := p.EraseDevice(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			raw := []byte(key)
			needles := []string{project.EncodePublicKey(key), hex.EncodeToString(raw), "rev-b-unique-hw", "9.8.7-unique",
				"slot-unique", "message-unique-text"}
			after := tableTexts(t, p, dbURL)
			if len(after) < 23 {
				t.Errorf("scanned %d tables, want every table of schema 10 (23)", len(after))
			}
			for table, rows := range after {
				for _, row := range rows {
					for _, n := range needles {
						if strings.Contains(row, n) {
							t.Errorf("after the erase, table %s still holds %q: %s", table, n, row)
						}
					}
					if table != "audit" && strings.Contains(row, d.ID) {
						t.Errorf("after the erase, table %s still names the device: %s", table, row)
					}
				}
			}
			if len(before["device_labels"]) != 4 || len(after["device_labels"]) != 2 {
				t.Errorf("device_labels: %d rows before the erase, %d after; want 4, then the other device's 2", len(before["device_labels"]), len(after["device_labels"]))
			}
			if got := strings.Join(after["devices"], "\n"); !strings.Contains(got, keep.ID) || len(after["device_events"]) != 1 {
				t.Errorf("the other device or its event went too: devices %v, %d events", after["devices"], len(after["device_events"]))
			}
			if _, err := p.Device(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Device after erase: %v", err)
			}
			if _, err := p.CheckDevice(ctx, key); !errors.Is(err, project.ErrDeviceUnknown) {
				t.Errorf("CheckDevice after erase: %v, want ErrDeviceUnknown (re-enrol)", err)
			}
			// The first token had 2 uses: the erased device enrols again.
			// A fresh id: nothing links it to the erased one.
		})
	}
}

func TestEnrollTokenRefusals(t *testing.T) {
	ctx := t.Context()
	clk := clock.NewFake(t0)
	p, _ := managedProject(t, "sqlite", clk)
	once := enrollToken(t, p, 1, time.Hour, false)
	if _, err := p.Enroll(ctx, "thermostat", newKey(t), once); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enroll(ctx, "thermostat", newKey(t), once); !errors.Is(err, project.ErrEnrollToken) || !strings.Contains(err.Error(), "no uses left") {
		t.Errorf("second use of a one-use token: %v", err)
	}
	short := enrollToken(t, p, 5, time.Hour, false)
	clk.Advance(time.Hour)
	if _, err := p.Enroll(ctx, "thermostat", newKey(t), short); !errors.Is(err, project.ErrEnrollToken) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	revoked, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.RevokeEnrollmentToken(ctx, revoked.Token.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enroll(ctx, "thermostat", newKey(t), revoked.Text); !errors.Is(err, project.ErrEnrollToken) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked token: %v", err)
	}
	good := enrollToken(t, p, 5, time.Hour, false)
	forged := good[:len(good)-1] + "0"
	if forged == good {
		forged = good[:len(good)-1] + "1"
	}
	if _, err := p.Enroll(ctx, "thermostat", newKey(t), forged); !errors.Is(err, project.ErrEnrollToken) {
		t.Errorf("token with a wrong secret: %v", err)
	}
	if strings.Contains(fmt.Sprint(p.Enroll(ctx, "thermostat", newKey(t), "uptrust-enroll_garbage")), "garbage") {
		t.Error("the refusal repeats the presented token")
	}
	if _, err := p.Enroll(ctx, "thermostat", newKey(t), ""); !errors.Is(err, project.ErrEnrollToken) {
		t.Errorf("no token, no pre-authorisation: %v", err)
	}
	// Anonymous products take no enrolments and no tokens.
	addProduct(t, p, project.ProductSpec{Name: "lamp", Hardware: []string{"a"}, SupportUntil: "2031-12-31", Contact: "security@example.com"})
	if _, err := p.Enroll(ctx, "lamp", newKey(t), good); !errors.Is(err, project.ErrNotManaged) {
		t.Errorf("enrol for an anonymous product: %v", err)
	}
	if _, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "lamp", Uses: 1}); !errors.Is(err, project.ErrNotManaged) {
		t.Errorf("token for an anonymous product: %v", err)
	}
	// The token's uses were not consumed by refused attempts with other
	// products or forged secrets.
	tk, err := p.Store.EnrollmentTokens(ctx, "thermostat")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tk {
		if strings.Contains(good, e.ID) && e.Uses != 5 {
			t.Errorf("token uses after refusals = %d, want 5", e.Uses)
		}
	}
}

func TestPreauthorizedAndRefusedDevices(t *testing.T) {
	ctx := t.Context()
	p, _ := managedProject(t, "sqlite", clock.NewFake(t0))
	key := newKey(t)
	if err := p.Preauthorize(ctx, "thermostat", key); err != nil {
		t.Fatal(err)
	}
	d, err := p.Enroll(ctx, "thermostat", key, "")
	if err != nil || d.State != store.DeviceAccepted {
		t.Fatalf("pre-authorised enrolment = %+v, %v; want accepted", d, err)
	}
	if again, err := p.Enroll(ctx, "thermostat", key, ""); err != nil || again.ID != d.ID {
		t.Errorf("enrolling again = %+v, %v; want the same device", again, err)
	}
	if _, err := p.CheckDevice(ctx, key); err != nil {
		t.Errorf("CheckDevice of an accepted device: %v", err)
	}
	pending, err := p.Enroll(ctx, "thermostat", newKey(t), enrollToken(t, p, 1, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddDeviceEvent(ctx, pending.ID, store.DeviceEvent{Kind: store.EventOffered}); !errors.Is(err, project.ErrDevicePending) {
		t.Errorf("event of a pending device: %v", err)
	}

	for _, step := range []struct {
		do    func(context.Context, string) (store.Device, error)
		state string
	}{{p.RejectDevice, store.DeviceRejected}, {p.DecommissionDevice, store.DeviceDecommissioned}} {
		if _, err := step.do(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		var re *project.DeviceRefusedError
		_, err := p.Enroll(ctx, "thermostat", key, "")
		if !errors.As(err, &re) || re.State != step.state || !errors.Is(err, project.ErrDeviceRefused) {
			t.Errorf("%s: Enroll = %v, want a DeviceRefusedError", step.state, err)
		}
		if _, err := p.CheckDevice(ctx, key); !errors.Is(err, project.ErrDeviceRefused) {
			t.Errorf("%s: CheckDevice = %v", step.state, err)
		}
		if _, err := p.UpdateInventory(ctx, d.ID, map[string]string{"version": "1"}); !errors.Is(err, project.ErrDeviceRefused) {
			t.Errorf("%s: UpdateInventory = %v", step.state, err)
		}
		if _, err := p.AddDeviceEvent(ctx, d.ID, store.DeviceEvent{Kind: store.EventOffered}); !errors.Is(err, project.ErrDeviceRefused) {
			t.Errorf("%s: AddDeviceEvent = %v", step.state, err)
		}
	}
	if _, err := p.AcceptDevice(ctx, d.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("accepting a decommissioned device: %v, want a conflict", err)
	}
	es, err := p.Store.AuditQuery(ctx, store.AuditFilter{Object: d.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
		if strings.Contains(e.Detail, project.EncodePublicKey(key)) {
			t.Errorf("audit entry %s names the key: %s", e.Action, e.Detail)
		}
	}
	if got := strings.Join(actions, " "); got != "device.enroll device.reject device.decommission" {
		t.Errorf("audit of the device: %s", got)
	}
}

func TestInventoryDeclared(t *testing.T) {
	ctx := t.Context()
	p, _ := managedProject(t, "sqlite", clock.NewFake(t0))
	gen, err := p.Store.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Enroll(ctx, "thermostat", newKey(t), enrollToken(t, p, 1, 0, true))
	if err != nil {
		t.Fatal(err)
	}
	// Fleet changes leave the generation alone: servers do not reload
	// their metadata for them.
	defer func() {
		if g, err := p.Store.Generation(ctx); err != nil || g != gen {
			t.Errorf("generation after fleet changes = %d, %v; want %d", g, err, gen)
		}
	}()
	_, err = p.UpdateInventory(ctx, d.ID, map[string]string{"version": "1.0", "serial": "S123", "owner": "x"})
	if err == nil || !strings.Contains(err.Error(), "owner, serial") {
		t.Errorf("undeclared fields: %v, want an error naming owner, serial", err)
	}
	if got, _ := p.Device(ctx, d.ID); len(got.Inventory) != 0 {
		t.Errorf("a refused update stored %v", got.Inventory)
	}
	if _, err := p.UpdateInventory(ctx, d.ID, map[string]string{"version": "1.0", "slot": "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpdateInventory(ctx, d.ID, map[string]string{"version": "1\n0"}); err == nil {
		t.Error("a value with a newline was accepted")
	}
	if _, err := p.UpdateInventory(ctx, d.ID, map[string]string{"version": strings.Repeat("v", project.MaxInventoryValue+1)}); err == nil {
		t.Error("an oversized value was accepted")
	}
	if _, err := p.SetInventoryFields(ctx, "thermostat", []string{"version", "serial"}); err == nil || !strings.Contains(err.Error(), "serial") {
		t.Errorf("declaring an unknown field: %v", err)
	}
	// Narrowing the declaration deletes the values no longer declared.
	if _, err := p.SetInventoryFields(ctx, "thermostat", []string{"version"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Device(ctx, d.ID); len(got.Inventory) != 1 || got.Inventory["version"] != "1.0" {
		t.Errorf("inventory after narrowing = %v, want version only", got.Inventory)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeAnonymous); !errors.Is(err, store.ErrConflict) {
		t.Errorf("anonymous with devices stored: %v, want a conflict", err)
	}
	if err := p.EraseDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeAnonymous); err != nil {
		t.Errorf("anonymous without devices: %v", err)
	}
}

func TestPurgeDeviceEvents(t *testing.T) {
	ctx := t.Context()
	clk := clock.NewFake(t0)
	p, _ := managedProject(t, "sqlite", clk)
	d, err := p.Enroll(ctx, "thermostat", newKey(t), enrollToken(t, p, 1, 0, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddDeviceEvent(ctx, d.ID, store.DeviceEvent{Kind: store.EventOffered, Version: "2"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Duration(project.DefaultDeviceEventsRetention) + time.Hour)
	if _, err := p.AddDeviceEvent(ctx, d.ID, store.DeviceEvent{Kind: store.EventSucceeded, Version: "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := p.Store.DeviceEvents(ctx, d.ID)
	if err != nil || len(es) != 1 || es[0].Kind != store.EventSucceeded {
		t.Errorf("events after purge = %+v, %v; want the recent one", es, err)
	}
}

// TestEnrollTokenUsesUnderRace: ten devices enrol at once with a token of
// three uses, on SQLite and on PostgreSQL: exactly three get in, the
// others are refused for the token's uses, and the token has none left.
func TestEnrollTokenUsesUnderRace(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := t.Context()
			p, _ := managedProject(t, db, clock.NewFake(t0))
			tk, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 3})
			if err != nil {
				t.Fatal(err)
			}
			keys := make([]ed25519.PublicKey, 10)
			for i := range keys {
				keys[i] = newKey(t)
			}
			errs := make(chan error, len(keys))
			for _, k := range keys {
				go func() {
					_, err := p.Enroll(ctx, "thermostat", k, tk.Text)
					errs <- err
				}()
			}
			ok, refused := 0, 0
			for range keys {
				switch err := <-errs; {
				case err == nil:
					ok++
				case errors.Is(err, project.ErrEnrollToken) && strings.Contains(err.Error(), "no uses left"):
					refused++
				default:
					t.Errorf("Enroll: %v", err)
				}
			}
			left, err := p.Store.EnrollmentToken(ctx, tk.Token.ID)
			if ok != 3 || refused != 7 || err != nil || left.Uses != 0 {
				t.Errorf("%d enrolled, %d refused, uses left %d (%v); want 3, 7, 0", ok, refused, left.Uses, err)
			}
			if ds, _ := p.Devices(ctx, store.DeviceFilter{Product: "thermostat"}); len(ds) != 3 {
				t.Errorf("%d devices stored, want 3", len(ds))
			}
		})
	}
}
