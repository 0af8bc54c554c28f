package store

import "time"

// Managed mode (schema 7): devices known by their Ed25519 public key.
//
// Invariants every implementation keeps:
//   - Only public keys are stored; a device's ID is random and assigned by
//     the server, derived from nothing the device holds.
//   - A public key belongs to at most one device, and is pre-authorised at
//     most once (across products).
//   - A device's inventory holds only names the product declared when it
//     was written (package project checks this; the store keeps what it
//     is given).
//   - DeleteDevice removes every row that names the device or its key,
//     except audit entries, which name the device ID only.

// Product modes.
const (
	ModeAnonymous = "anonymous"
	ModeManaged   = "managed"
)

// Device states.
const (
	DevicePending        = "pending"
	DeviceAccepted       = "accepted"
	DeviceRejected       = "rejected"
	DeviceDecommissioned = "decommissioned"
)

// TableDeviceEvents is the per-device update history; Purge accepts it.
const TableDeviceEvents = "device_events"

// DevicePolicy is how a product treats devices: its mode and the inventory
// fields its devices may report. A product without a stored policy is
// anonymous with no inventory fields.
type DevicePolicy struct {
	Product string
	Mode    string
	// Inventory lists the declared inventory field names, sorted.
	Inventory []string
	Updated   time.Time
}

// Device is an enrolled device of a managed product.
type Device struct {
	// ID is random, assigned by the server at enrolment; unique.
	ID      string
	Product string
	// PublicKey is the device's Ed25519 public key, standard base64 of its
	// 32 bytes; unique.
	PublicKey string
	State     string
	// Inventory maps declared field names to the values the device sent.
	Inventory map[string]string
	Enrolled  time.Time
	Updated   time.Time
}

// DeviceFilter selects devices. Zero fields select everything.
type DeviceFilter struct {
	Product, State string
	// AfterID selects devices whose ID sorts after it: a cursor.
	AfterID string
	// UpdatedSince selects devices whose Updated is at or after it: the
	// changes a server polls for (package managed).
	UpdatedSince time.Time
	// Limit caps how many come back when positive.
	Limit int
}

// EnrollmentToken lets devices of one product enrol. Only a hash of its
// secret is stored.
type EnrollmentToken struct {
	ID         string
	Product    string
	SecretHash string
	// Uses is how many more enrolments the token allows.
	Uses int
	// AutoAccept: devices enrolling with the token are accepted at once
	// instead of waiting for the operator.
	AutoAccept bool
	Created    time.Time
	Expires    time.Time
	// Revoked is when it was revoked; zero while it is not.
	Revoked time.Time
}

// PreauthorizedKey is a device public key the operator accepted before the
// device enrolled: its enrolment is accepted at once.
type PreauthorizedKey struct {
	Product   string
	PublicKey string
	Created   time.Time
}

// Device event kinds.
const (
	EventOffered     = "offered"
	EventDownloading = "downloading"
	EventInstalling  = "installing"
	EventRebooting   = "rebooting"
	EventSucceeded   = "succeeded"
	EventFailed      = "failed"
	EventRolledBack  = "rolled_back"
	EventSkipped     = "skipped"
)

// DeviceEvent is one step of a device's update history.
type DeviceEvent struct {
	Device string
	// Seq orders a device's events; AddDeviceEvent assigns it.
	Seq     int64
	Time    time.Time
	Kind    string
	Version string
	// Progress is the download progress in percent (0-100).
	Progress int
	// ErrorClass and Message describe a failure; Reason a skip.
	ErrorClass, Message, Reason string
}
