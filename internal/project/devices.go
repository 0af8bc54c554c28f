package project

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/store"
)

// Managed mode: devices known by their Ed25519 public key (see DESIGN.md).
//
// Enrolment. A device of a managed product enrols with its public key and
// either an enrolment token of its product or nothing, when the operator
// pre-authorised its key. A pre-authorised key is accepted at once (the
// pre-authorisation is consumed: the device row holds the key from then
// on); a token enrolment waits for the operator (pending) unless the token
// was created with AutoAccept, which is for factory lines where whoever
// holds the token is trusted. Enrolling again with a key already enrolled
// returns the device as it is (an agent that lost its answer retries) and
// uses no token.
//
// Refusals. Device-facing calls (Enroll, CheckDevice, UpdateInventory,
// AddDeviceEvent) refuse a rejected or decommissioned device with an error
// wrapping ErrDeviceRefused (a *DeviceRefusedError names the state), a
// pending one with ErrDevicePending, an unknown key with ErrDeviceUnknown;
// the device routes turn these into a clear problem document.
//
// Privacy. Only public keys are stored; device IDs are random. Inventory
// holds only the fields the product declared (InventoryFields lists what
// may be declared); narrowing the declaration deletes the values of the
// fields no longer declared from every device. Management actions are
// audited naming the device ID, never its key or inventory values. Audit
// entries are the only rows that keep naming a device after EraseDevice:
// the log is an append-only hash chain, and the ID is random and links to
// nothing once the device is erased.

// Audit actions of device management.
const (
	ActionProductMode      = "product.mode"
	ActionProductInventory = "product.inventory"
	ActionEnrollTokenNew   = "enrollment-token.create"
	ActionEnrollTokenRevk  = "enrollment-token.revoke"
	ActionDevicePreauth    = "device.preauthorize"
	ActionDeviceEnroll     = "device.enroll"
	ActionDeviceAccept     = "device.accept"
	ActionDeviceReject     = "device.reject"
	ActionDeviceDecommiss  = "device.decommission"
	ActionDeviceErase      = "device.erase"
)

// InventoryFields are the inventory field names a product may declare.
// A device may report only the declared ones.
var InventoryFields = []string{
	"agent_version",      // version of uptrust-agent
	"bootloader_version", // version of the bootloader
	"hardware",           // hardware identifier, one of the product's
	"os_version",         // version of the operating system image, when separate from the firmware
	"security_version",   // security version of the running firmware
	"slot",               // the A/B slot booted
	"version",            // firmware version running
}

// Limits of device input.
const (
	MaxInventoryValue = 128
	MaxEventMessage   = 256
	// DefaultEnrollmentTTL is how long an enrolment token lives when no
	// expiry is given.
	DefaultEnrollmentTTL = 24 * time.Hour
)

// Skip reasons of a skipped event. An owner's choice is never a failure.
var SkipReasons = []string{
	"incompatible_hardware", "owner_consent_missing", "postponed_by_owner",
	"support_ended", "outside_maintenance_window",
}

// Errors of device-facing calls.
var (
	ErrNotManaged = errors.New("project: product is not in managed mode")
	// ErrManaged: an anonymous-mode operation (a percent rollout) on a
	// managed product; the API answers 409.
	ErrManaged       = errors.New("project: product is in managed mode")
	ErrDeviceRefused = errors.New("project: device refused")
	ErrDevicePending = errors.New("project: device is waiting for the operator to accept it")
	ErrDeviceUnknown = errors.New("project: device is not enrolled")
	ErrEnrollToken   = errors.New("project: enrolment token refused")
	// ErrInvalid: bad input to a device function (a mode, an inventory
	// field, a value); the API answers 422 (400 for device requests).
	ErrInvalid = errors.New("project: invalid input")
)

// invalidError is bad input: its text says what, and it matches
// ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{fmt.Sprintf(format, args...)}
}

// DeviceRefusedError is a device refused because of its state (rejected or
// decommissioned). It matches ErrDeviceRefused.
type DeviceRefusedError struct {
	ID, State string
}

func (e *DeviceRefusedError) Error() string {
	return fmt.Sprintf("project: device %s is %s; it gets nothing from this server", e.ID, e.State)
}

// Is makes errors.Is(err, ErrDeviceRefused) hold.
func (e *DeviceRefusedError) Is(target error) bool { return target == ErrDeviceRefused }

// ParsePublicKey reads an Ed25519 public key: standard or URL base64 of its
// 32 bytes, or a PEM "PUBLIC KEY" block (PKIX), as the agent writes it.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil || b.Type != "PUBLIC KEY" {
			return nil, errors.New("project: public key: want a PEM PUBLIC KEY block")
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("project: public key: %v", err)
		}
		pk, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("project: public key: %T, want Ed25519", k)
		}
		return pk, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("project: public key: %d bytes, want %d (Ed25519)", len(b), ed25519.PublicKeySize)
			}
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("project: public key: want base64 of 32 bytes or a PEM PUBLIC KEY block")
}

// EncodePublicKey is how keys are stored and shown: standard base64.
func EncodePublicKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

// DevicePolicy returns a product's policy; a product without one is
// anonymous with no inventory fields.
func (p *Project) DevicePolicy(ctx context.Context, product string) (store.DevicePolicy, error) {
	return devicePolicy(ctx, p.Store, product)
}

func devicePolicy(ctx context.Context, r store.Reader, product string) (store.DevicePolicy, error) {
	if _, err := r.Product(ctx, product); err != nil {
		return store.DevicePolicy{}, fmt.Errorf("project: product %s: %w", product, err)
	}
	pol, err := r.DevicePolicy(ctx, product)
	if errors.Is(err, store.ErrNotFound) {
		return store.DevicePolicy{Product: product, Mode: store.ModeAnonymous, Inventory: []string{}}, nil
	}
	return pol, err
}

// SetProductMode sets a product's mode. Switching a product back to
// anonymous is refused while devices of it are stored: erase them first,
// so that no device data outlives the mode that collected it.
func (p *Project) SetProductMode(ctx context.Context, product, mode string) (store.DevicePolicy, error) {
	if mode != store.ModeAnonymous && mode != store.ModeManaged {
		return store.DevicePolicy{}, invalidf("project: product %s: mode %q, want %s or %s", product, mode, store.ModeManaged, store.ModeAnonymous)
	}
	var out store.DevicePolicy
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		pol, err := devicePolicy(ctx, tx, product)
		if err != nil {
			return err
		}
		if mode == store.ModeAnonymous {
			ds, err := tx.Devices(ctx, store.DeviceFilter{Product: product, Limit: 1})
			if err != nil {
				return err
			}
			if len(ds) > 0 {
				return fmt.Errorf("project: product %s has enrolled devices; erase them (uptrust device erase) before making it anonymous: %w", product, store.ErrConflict)
			}
		}
		old := pol.Mode
		pol.Mode, pol.Updated = mode, p.Clock.Now().UTC()
		if err := tx.PutDevicePolicy(ctx, pol); err != nil {
			return err
		}
		out = pol
		return audit(ctx, tx, pol.Updated, ActionProductMode, product, old+" -> "+mode)
	})
	return out, err
}

// SetInventoryFields declares the inventory fields of a product, each one
// of InventoryFields. Values of fields no longer declared are deleted from
// every device of the product in the same transaction.
func (p *Project) SetInventoryFields(ctx context.Context, product string, fields []string) (store.DevicePolicy, error) {
	fields = slices.Clone(fields)
	slices.Sort(fields)
	fields = slices.Compact(fields)
	var unknown []string
	for _, f := range fields {
		if !slices.Contains(InventoryFields, f) {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) > 0 {
		return store.DevicePolicy{}, invalidf("project: product %s: unknown inventory fields %s (known: %s)",
			product, strings.Join(unknown, ", "), strings.Join(InventoryFields, ", "))
	}
	var out store.DevicePolicy
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		pol, err := devicePolicy(ctx, tx, product)
		if err != nil {
			return err
		}
		now := p.Clock.Now().UTC()
		old := strings.Join(pol.Inventory, ",")
		pol.Inventory, pol.Updated = fields, now
		if err := tx.PutDevicePolicy(ctx, pol); err != nil {
			return err
		}
		stripped := 0
		after := ""
		for {
			ds, err := tx.Devices(ctx, store.DeviceFilter{Product: product, AfterID: after, Limit: 500})
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				break
			}
			for _, d := range ds {
				changed := false
				for k := range d.Inventory {
					if !slices.Contains(fields, k) {
						delete(d.Inventory, k)
						changed = true
					}
				}
				if changed {
					d.Updated = now
					if err := tx.PutDevice(ctx, d); err != nil {
						return err
					}
					stripped++
				}
			}
			after = ds[len(ds)-1].ID
		}
		out = pol
		return audit(ctx, tx, now, ActionProductInventory, product,
			fmt.Sprintf("fields %q -> %q; undeclared values removed from %d devices", old, strings.Join(fields, ","), stripped))
	})
	return out, err
}

// EnrollmentTokenSpec describes an enrolment token to create.
type EnrollmentTokenSpec struct {
	Product string
	// Uses is how many devices may enrol with it; at least 1.
	Uses int
	// TTL is how long it is valid; 0 is DefaultEnrollmentTTL.
	TTL time.Duration
	// AutoAccept accepts devices enrolling with it at once.
	AutoAccept bool
}

// CreatedEnrollmentToken is a token just created: Text is the only copy
// of its secret.
type CreatedEnrollmentToken struct {
	Token store.EnrollmentToken
	Text  string
}

// CreateEnrollmentToken creates an enrolment token of a managed product.
func (p *Project) CreateEnrollmentToken(ctx context.Context, s EnrollmentTokenSpec) (CreatedEnrollmentToken, error) {
	what := "project: create enrollment token for " + s.Product
	switch {
	case s.Uses < 1:
		return CreatedEnrollmentToken{}, invalidf("%s: uses %d, want at least 1", what, s.Uses)
	case s.TTL < 0:
		return CreatedEnrollmentToken{}, invalidf("%s: negative expiry %s", what, s.TTL)
	case s.TTL == 0:
		s.TTL = DefaultEnrollmentTTL
	}
	text, id, hash, err := access.NewEnrollmentToken()
	if err != nil {
		return CreatedEnrollmentToken{}, fmt.Errorf("%s: %w", what, err)
	}
	now := p.Clock.Now().UTC()
	tk := store.EnrollmentToken{ID: id, Product: s.Product, SecretHash: hash, Uses: s.Uses, AutoAccept: s.AutoAccept,
		Created: now, Expires: now.Add(s.TTL)}
	err = p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		if err := requireManaged(ctx, tx, s.Product); err != nil {
			return err
		}
		if err := tx.AddEnrollmentToken(ctx, tk); err != nil {
			return err
		}
		return audit(ctx, tx, now, ActionEnrollTokenNew, s.Product, fmt.Sprintf("id %s, %d uses, auto-accept %v, expires %s",
			id, s.Uses, s.AutoAccept, tk.Expires.Format(time.RFC3339)))
	})
	if err != nil {
		return CreatedEnrollmentToken{}, fmt.Errorf("%s: %w", what, err)
	}
	return CreatedEnrollmentToken{Token: tk, Text: text}, nil
}

// EnrollmentTokens lists a product's enrolment tokens ("" for all).
func (p *Project) EnrollmentTokens(ctx context.Context, product string) ([]store.EnrollmentToken, error) {
	return p.Store.EnrollmentTokens(ctx, product)
}

// RevokeEnrollmentToken revokes the enrolment token id.
func (p *Project) RevokeEnrollmentToken(ctx context.Context, id string) (store.EnrollmentToken, error) {
	var out store.EnrollmentToken
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		tk, err := tx.EnrollmentToken(ctx, id)
		if err != nil {
			return err
		}
		if !tk.Revoked.IsZero() {
			return fmt.Errorf("revoked already at %s: %w", tk.Revoked.Format(time.RFC3339), store.ErrConflict)
		}
		tk.Revoked = p.Clock.Now().UTC()
		if err := tx.PutEnrollmentToken(ctx, tk); err != nil {
			return err
		}
		out = tk
		return audit(ctx, tx, tk.Revoked, ActionEnrollTokenRevk, tk.Product, "id "+id)
	})
	if err != nil {
		return out, fmt.Errorf("project: revoke enrollment token %s: %w", id, err)
	}
	return out, nil
}

func requireManaged(ctx context.Context, r store.Reader, product string) error {
	pol, err := devicePolicy(ctx, r, product)
	if err != nil {
		return err
	}
	if pol.Mode != store.ModeManaged {
		return fmt.Errorf("%w: %s (uptrust product mode %s managed)", ErrNotManaged, product, product)
	}
	return nil
}

// Preauthorize records a device key the operator accepts before the device
// enrols. The audit entry names the product only.
func (p *Project) Preauthorize(ctx context.Context, product string, key ed25519.PublicKey) error {
	if len(key) != ed25519.PublicKeySize {
		return invalidf("project: preauthorize for %s: key of %d bytes, want %d", product, len(key), ed25519.PublicKeySize)
	}
	enc := EncodePublicKey(key)
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		if err := requireManaged(ctx, tx, product); err != nil {
			return err
		}
		if _, err := tx.DeviceByKey(ctx, enc); err == nil {
			return fmt.Errorf("the key is enrolled already: %w", store.ErrConflict)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		now := p.Clock.Now().UTC()
		if err := tx.AddPreauthorizedKey(ctx, store.PreauthorizedKey{Product: product, PublicKey: enc, Created: now}); err != nil {
			return err
		}
		return audit(ctx, tx, now, ActionDevicePreauth, product, "one device key")
	})
	if err != nil {
		return fmt.Errorf("project: preauthorize for %s: %w", product, err)
	}
	return nil
}

// newDeviceID returns a random device id: "d" and 16 random bytes in hex.
func newDeviceID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "d" + hex.EncodeToString(b), nil
}

// Enroll enrols a device of a managed product with its public key and an
// enrolment token ("" when its key was pre-authorised); see the rules at
// the top of this file. The audit entry (device.enroll) is by the actor
// ctx carries; the device routes should carry one that says so.
func (p *Project) Enroll(ctx context.Context, product string, key ed25519.PublicKey, token string) (store.Device, error) {
	what := "project: enroll for " + product
	if len(key) != ed25519.PublicKeySize {
		return store.Device{}, invalidf("%s: key of %d bytes, want %d", what, len(key), ed25519.PublicKeySize)
	}
	enc := EncodePublicKey(key)
	var out store.Device
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		if err := requireManaged(ctx, tx, product); err != nil {
			return err
		}
		if d, err := tx.DeviceByKey(ctx, enc); err == nil {
			if d.Product != product {
				return fmt.Errorf("%w: the key is enrolled for another product", ErrDeviceRefused)
			}
			if err := refused(d); err != nil {
				return err
			}
			out = d
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		now := p.Clock.Now().UTC()
		id, err := newDeviceID()
		if err != nil {
			return err
		}
		d := store.Device{ID: id, Product: product, PublicKey: enc, State: store.DevicePending, Enrolled: now, Updated: now}
		how := ""
		pre, err := tx.PreauthorizedKey(ctx, enc)
		switch {
		case err == nil && pre.Product == product:
			d.State, how = store.DeviceAccepted, "pre-authorised key"
			if err := tx.DeletePreauthorizedKey(ctx, enc); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		case token == "":
			return fmt.Errorf("%w: the key is not pre-authorised for %s and no enrolment token was given", ErrEnrollToken, product)
		default:
			tk, err := useEnrollmentToken(ctx, tx, product, token, now)
			if err != nil {
				return err
			}
			how = "token " + tk.ID
			if tk.AutoAccept {
				d.State = store.DeviceAccepted
			}
		}
		if err := tx.AddDevice(ctx, d); err != nil {
			return err
		}
		out = d
		return audit(ctx, tx, now, ActionDeviceEnroll, d.ID, fmt.Sprintf("product %s, %s, %s", product, how, d.State))
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// useEnrollmentToken checks a presented token and takes one use of it.
// Every refusal wraps ErrEnrollToken and says why without repeating the
// presented text.
func useEnrollmentToken(ctx context.Context, tx store.Tx, product, presented string, now time.Time) (store.EnrollmentToken, error) {
	id, secret, err := access.ParseEnrollmentToken(presented)
	if err != nil {
		return store.EnrollmentToken{}, fmt.Errorf("%w: %v", ErrEnrollToken, err)
	}
	tk, err := tx.EnrollmentToken(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return tk, fmt.Errorf("%w: unknown token", ErrEnrollToken)
	case err != nil:
		return tk, err
	case !access.SecretMatches(secret, tk.SecretHash):
		return tk, fmt.Errorf("%w: unknown token", ErrEnrollToken)
	case tk.Product != product:
		return tk, fmt.Errorf("%w: the token is for another product", ErrEnrollToken)
	case !tk.Revoked.IsZero():
		return tk, fmt.Errorf("%w: the token was revoked", ErrEnrollToken)
	case !now.Before(tk.Expires):
		return tk, fmt.Errorf("%w: the token expired at %s", ErrEnrollToken, tk.Expires.Format(time.RFC3339))
	case tk.Uses < 1:
		return tk, fmt.Errorf("%w: the token has no uses left", ErrEnrollToken)
	}
	tk.Uses--
	return tk, tx.PutEnrollmentToken(ctx, tk)
}

// refused returns the error for a device that gets nothing, or nil.
func refused(d store.Device) error {
	if d.State == store.DeviceRejected || d.State == store.DeviceDecommissioned {
		return &DeviceRefusedError{ID: d.ID, State: d.State}
	}
	return nil
}

// CheckDevice returns the accepted device holding key: what the device
// routes call after verifying a request's signature. Rejected and
// decommissioned devices are ErrDeviceRefused, pending ones
// ErrDevicePending, an unknown key ErrDeviceUnknown.
func (p *Project) CheckDevice(ctx context.Context, key ed25519.PublicKey) (store.Device, error) {
	d, err := p.Store.DeviceByKey(ctx, EncodePublicKey(key))
	if errors.Is(err, store.ErrNotFound) {
		return d, ErrDeviceUnknown
	}
	if err != nil {
		return d, err
	}
	return d, usable(d, false)
}

// usable refuses a device that may not act; pendingOK lets a pending one.
func usable(d store.Device, pendingOK bool) error {
	if err := refused(d); err != nil {
		return err
	}
	if d.State == store.DevicePending && !pendingOK {
		return fmt.Errorf("%w: device %s", ErrDevicePending, d.ID)
	}
	return nil
}

// Device returns the device id.
func (p *Project) Device(ctx context.Context, id string) (store.Device, error) {
	return p.Store.Device(ctx, id)
}

// Devices returns the devices f selects, ordered by ID.
func (p *Project) Devices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	if f.State != "" && !slices.Contains([]string{store.DevicePending, store.DeviceAccepted, store.DeviceRejected, store.DeviceDecommissioned}, f.State) {
		return nil, invalidf("project: devices: unknown state %q (pending, accepted, rejected, decommissioned)", f.State)
	}
	return p.Store.Devices(ctx, f)
}

// AcceptDevice accepts a pending (or earlier rejected) device.
func (p *Project) AcceptDevice(ctx context.Context, id string) (store.Device, error) {
	return p.setState(ctx, id, store.DeviceAccepted, ActionDeviceAccept, store.DevicePending, store.DeviceRejected)
}

// RejectDevice rejects a pending or accepted device: it gets nothing until
// accepted again.
func (p *Project) RejectDevice(ctx context.Context, id string) (store.Device, error) {
	return p.setState(ctx, id, store.DeviceRejected, ActionDeviceReject, store.DevicePending, store.DeviceAccepted)
}

// DecommissionDevice takes a device out of service for good: it gets
// nothing and cannot be accepted again (erase it and let it re-enrol).
func (p *Project) DecommissionDevice(ctx context.Context, id string) (store.Device, error) {
	return p.setState(ctx, id, store.DeviceDecommissioned, ActionDeviceDecommiss,
		store.DevicePending, store.DeviceAccepted, store.DeviceRejected)
}

func (p *Project) setState(ctx context.Context, id, state, action string, from ...string) (store.Device, error) {
	var out store.Device
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		d, err := tx.Device(ctx, id)
		if err != nil {
			return err
		}
		if !slices.Contains(from, d.State) {
			return fmt.Errorf("device is %s, want one of %s: %w", d.State, strings.Join(from, ", "), store.ErrConflict)
		}
		old := d.State
		d.State, d.Updated = state, p.Clock.Now().UTC()
		if err := tx.PutDevice(ctx, d); err != nil {
			return err
		}
		out = d
		return audit(ctx, tx, d.Updated, action, id, old+" -> "+state)
	})
	if err != nil {
		return out, fmt.Errorf("project: %s %s: %w", action, id, err)
	}
	return out, nil
}

// UpdateInventory replaces a device's inventory with fields, which must all
// be declared by its product: an undeclared field refuses the whole update
// with an error naming every such field, and nothing is stored. Values are
// at most MaxInventoryValue printable characters. Pending devices may
// report (the operator sees what asks to be accepted); refused ones not.
func (p *Project) UpdateInventory(ctx context.Context, id string, fields map[string]string) (store.Device, error) {
	var out store.Device
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		d, err := tx.Device(ctx, id)
		if err != nil {
			return err
		}
		if err := usable(d, true); err != nil {
			return err
		}
		pol, err := devicePolicy(ctx, tx, d.Product)
		if err != nil {
			return err
		}
		var undeclared []string
		for k, v := range fields {
			if !slices.Contains(pol.Inventory, k) {
				undeclared = append(undeclared, k)
				continue
			}
			if err := checkText("inventory field "+k, v, MaxInventoryValue); err != nil {
				return err
			}
		}
		if len(undeclared) > 0 {
			slices.Sort(undeclared)
			return invalidf("inventory fields not declared by product %s: %s (declared: %s)",
				d.Product, strings.Join(undeclared, ", "), strings.Join(pol.Inventory, ", "))
		}
		d.Inventory = make(map[string]string, len(fields))
		for k, v := range fields {
			d.Inventory[k] = v
		}
		d.Updated = p.Clock.Now().UTC()
		out = d
		return tx.PutDevice(ctx, d)
	})
	if err != nil {
		return out, fmt.Errorf("project: update inventory of %s: %w", id, err)
	}
	return out, nil
}

// checkText refuses control characters, invalid UTF-8 and long values.
func checkText(what, v string, max int) error {
	if len(v) > max {
		return invalidf("%s: %d bytes, at most %d", what, len(v), max)
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return invalidf("%s: control characters or invalid UTF-8", what)
	}
	return nil
}

// AddDeviceEvent records a step of an accepted device's update. A failed
// event needs an error class, a skipped one a reason of SkipReasons; the
// message is at most MaxEventMessage bytes. The server sets the time.
func (p *Project) AddDeviceEvent(ctx context.Context, id string, e store.DeviceEvent) (store.DeviceEvent, error) {
	e.Device = id
	switch {
	case e.Kind == store.EventFailed && e.ErrorClass == "":
		return e, invalidf("project: device event of %s: a failed event needs an error class", id)
	case e.Kind == store.EventSkipped && !slices.Contains(SkipReasons, e.Reason):
		return e, invalidf("project: device event of %s: skip reason %q, want one of %s", id, e.Reason, strings.Join(SkipReasons, ", "))
	}
	for _, f := range []struct {
		what, v string
		max     int
	}{{"version", e.Version, MaxInventoryValue}, {"error class", e.ErrorClass, 64}, {"message", e.Message, MaxEventMessage}, {"reason", e.Reason, 64}} {
		if err := checkText(f.what, f.v, f.max); err != nil {
			return e, invalidf("project: device event of %s: %v", id, err)
		}
	}
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		d, err := tx.Device(ctx, id)
		if err != nil {
			return err
		}
		if err := usable(d, false); err != nil {
			return err
		}
		e.Time = p.Clock.Now().UTC()
		return tx.AddDeviceEvent(ctx, e)
	})
	if err != nil {
		return e, fmt.Errorf("project: device event of %s: %w", id, err)
	}
	return e, nil
}

// DeviceExport is everything the server holds about one device.
type DeviceExport struct {
	Device store.Device        `json:"device"`
	Events []store.DeviceEvent `json:"events"`
	// Labels are its static groups and tags.
	Labels []store.DeviceLabel `json:"labels"`
	// Audit holds the audit entries naming the device.
	Audit []store.AuditEntry `json:"audit"`
}

// ExportDevice returns everything the server holds about device id.
func (p *Project) ExportDevice(ctx context.Context, id string) (DeviceExport, error) {
	var x DeviceExport
	var err error
	if x.Device, err = p.Store.Device(ctx, id); err != nil {
		return x, fmt.Errorf("project: export device %s: %w", id, err)
	}
	if x.Events, err = p.Store.DeviceEvents(ctx, id); err != nil {
		return x, fmt.Errorf("project: export device %s: %w", id, err)
	}
	if x.Labels, err = p.Store.DeviceLabels(ctx, store.LabelFilter{Device: id}); err != nil {
		return x, fmt.Errorf("project: export device %s: %w", id, err)
	}
	if x.Labels == nil {
		x.Labels = []store.DeviceLabel{}
	}
	if x.Audit, err = p.Store.AuditQuery(ctx, store.AuditFilter{Object: id}); err != nil {
		return x, fmt.Errorf("project: export device %s: %w", id, err)
	}
	if x.Events == nil {
		x.Events = []store.DeviceEvent{}
	}
	if x.Audit == nil {
		x.Audit = []store.AuditEntry{}
	}
	return x, nil
}

// EraseDevice removes device id from every table (its events, its groups
// and tags and any pre-authorisation of its key with it); the audit entry device.erase
// names the ID. The device must enrol again to get anything.
func (p *Project) EraseDevice(ctx context.Context, id string) error {
	err := p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		d, err := tx.Device(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.DeleteDevice(ctx, id); err != nil {
			return err
		}
		return audit(ctx, tx, p.Clock.Now().UTC(), ActionDeviceErase, id, "product "+d.Product)
	})
	if err != nil {
		return fmt.Errorf("project: erase device %s: %w", id, err)
	}
	return nil
}
