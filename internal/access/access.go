// Package access defines who may do what on the management API: the roles
// tokens carry, the permissions each role grants, and the format of
// tokens. It is pure: storing tokens and checking them against the store
// is package project's (project.Authenticate).
//
// A token is "uptrust_<id>_<secret>": id is 8 random bytes and secret 32
// random bytes, both lower-case hex. The id is public and looks the token
// up; only the SHA-256 of the secret is stored. A plain hash suffices, and
// a password hash (argon2, bcrypt) would not help: those slow down guessing
// of low-entropy passwords, while a 256-bit random secret cannot be guessed
// at any speed, and a deliberately slow hash would cost CPU on every API
// request, handing an attacker a lever.
package access

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrust/uptrust/internal/store"
)

// Role is what a token may do. The values are those of package store.
type Role string

// The roles.
const (
	Admin          Role = store.RoleAdmin
	ReleaseManager Role = store.RoleReleaseManager
	Operator       Role = store.RoleOperator
	Auditor        Role = store.RoleAuditor
)

// Roles lists every role, most powerful first.
var Roles = []Role{Admin, ReleaseManager, Operator, Auditor}

// ParseRole returns the role named s, or an error listing the roles.
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("access: unknown role %q (roles: %s)", s, strings.Join(names, ", "))
}

// Permission is a kind of management action.
type Permission string

// The permissions. Every management API route needs exactly one.
const (
	// Read: products, support declarations, releases and manifests,
	// rollouts and their history, report counts, health. Every role.
	Read Permission = "read"
	// ReadAudit: the audit log and its verification.
	ReadAudit Permission = "audit.read"
	// Push: uploading signed metadata and payloads (uptrust push).
	Push Permission = "push"
	// Products: changing products and support declarations.
	Products Permission = "products"
	// Rollouts: starting, changing, halting and resuming rollouts.
	Rollouts Permission = "rollouts"
	// Tokens: creating, listing and revoking tokens.
	Tokens Permission = "tokens"
	// Settings: changing the server's settings.
	Settings Permission = "settings"
	// ReadDevices: the devices of managed products, their inventory and
	// update history, and their export. Not part of Read: it is data about
	// devices in the field, which a release manager does not need.
	ReadDevices Permission = "devices.read"
	// Devices: managing the fleet of managed products: product mode and
	// inventory declaration, enrolment tokens, pre-authorised keys,
	// accepting, rejecting, decommissioning and erasing devices.
	Devices Permission = "devices"
)

// grants is the permission table. Admin does not imply the other roles'
// write permissions: an admin token manages tokens and settings and reads
// everything, but pushes nothing and changes no rollout. An admin who needs
// to can create a token of that role, and that creation is in the audit
// log: separating duties keeps every firmware and rollout change tied to
// a token made for that job. The auditor reads everything, the audit log
// included, and changes nothing.
//
// Devices go to the operator, who runs the fleet: enrolment tokens are
// fleet credentials (the admin's Tokens are people's and systems' access
// to the management API), and the product's mode and inventory
// declaration decide what the server collects about devices, which the
// one answering for the fleet decides. Erasing a device is the
// operator's too. Reading device data is the operator's, the auditor's
// and the admin's (who reads everything), not the release manager's.
var grants = map[Role][]Permission{
	Admin:          {Read, ReadAudit, Tokens, Settings, ReadDevices},
	ReleaseManager: {Read, Push, Products},
	Operator:       {Read, Rollouts, ReadDevices, Devices},
	Auditor:        {Read, ReadAudit, ReadDevices},
}

// Allows says whether r grants p. An unknown role grants nothing.
func (r Role) Allows(p Permission) bool {
	return slices.Contains(grants[r], p)
}

// Permissions returns what r grants, in table order.
func (r Role) Permissions() []Permission { return slices.Clone(grants[r]) }

// Token format.
const (
	tokenPrefix = "uptrust_"
	idBytes     = 8
	secretBytes = 32
)

// Enrolment tokens (package project) have the same shape with their own
// prefix, so one is never taken for a management token or the other way.
const enrollPrefix = "uptrust-enroll_"

// NewEnrollmentToken is NewToken for device enrolment tokens.
func NewEnrollmentToken() (text, id, secretHash string, err error) {
	text, id, secretHash, err = NewToken()
	return enrollPrefix + strings.TrimPrefix(text, tokenPrefix), id, secretHash, err
}

// ParseEnrollmentToken is ParseToken for device enrolment tokens.
func ParseEnrollmentToken(presented string) (id string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(presented, enrollPrefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: an enrolment token starts with %q", ErrMalformed, enrollPrefix)
	}
	return ParseToken(tokenPrefix + rest)
}

// ErrMalformed: a presented token does not have the token format.
var ErrMalformed = errors.New("access: malformed token")

// NewToken returns a new token's text, its id and the hex SHA-256 of its
// secret (what is stored), from crypto/rand.
func NewToken() (text, id, secretHash string, err error) {
	b := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", fmt.Errorf("access: new token: %w", err)
	}
	id = hex.EncodeToString(b[:idBytes])
	secret := b[idBytes:]
	return tokenPrefix + id + "_" + hex.EncodeToString(secret), id, HashSecret(secret), nil
}

// ParseToken splits a presented token into its id and secret. Anything
// else than "uptrust_<16 hex>_<64 hex>" is ErrMalformed; the error never
// repeats the presented text, which may be a secret pasted in the wrong
// place.
func ParseToken(presented string) (id string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(presented, tokenPrefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: it does not start with %q", ErrMalformed, tokenPrefix)
	}
	id, sec, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*idBytes || len(sec) != 2*secretBytes || !isLowerHex(id) || !isLowerHex(sec) {
		return "", nil, fmt.Errorf("%w: want %s<%d hex digits>_<%d hex digits>", ErrMalformed, tokenPrefix, 2*idBytes, 2*secretBytes)
	}
	secret, err = hex.DecodeString(sec)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return id, secret, nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// HashSecret returns the hex SHA-256 of a token's secret.
func HashSecret(secret []byte) string {
	h := sha256.Sum256(secret)
	return hex.EncodeToString(h[:])
}

// SecretMatches compares a presented secret with a stored hash in time
// that does not depend on where they differ.
func SecretMatches(secret []byte, storedHash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(storedHash)) == 1
}

// CheckName checks a token name: 1 to 64 characters of a-z, 0-9, '.', '_'
// and '-', starting with a letter or digit. Names appear in the audit log
// as the actor; "cli" is reserved for the local operator.
func CheckName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("access: token name %q: want 1 to 64 characters", name)
	}
	if name == store.ActorCLI {
		return fmt.Errorf("access: token name %q is reserved for the local operator in the audit log", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("access: token name %q: character %q at %d; use a-z, 0-9, '.', '_', '-' (not first)", name, c, i+1)
		}
	}
	return nil
}
