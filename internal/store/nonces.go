package store

import "time"

// TableDeviceNonces is the table of device nonces: Purge of it removes the
// nonces whose Expires is before its bound. It has no retention setting:
// a nonce is useless once its signature window closed, so the server
// purges with the current time (see DeviceNonce).
const TableDeviceNonces = "device_nonces"

// DeviceNonce is one use of a nonce by a managed device's signing key, in
// the table every server on the database shares, so that a signed request
// replayed to another server is refused (see Store.UseDeviceNonce).
//
// Invariant: a row is (KeyID, Nonce, Expires) and nothing more; no client
// address, no request content. Once Expires passes, the request it came
// with is refused as too old by its signature window anyway, so the row
// may go (Purge of TableDeviceNonces).
type DeviceNonce struct {
	KeyID   string // devauth.KeyID of the device's public key
	Nonce   string
	Expires time.Time
}
