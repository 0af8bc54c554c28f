// Package store defines what the server persists and the errors it returns.
// Implementations live in sub-packages (sqlite/); storetest/ is the contract
// suite every implementation passes.
//
// Invariants every implementation keeps:
//   - Update runs its function in one transaction: all writes land or none.
//   - Metadata documents are append-only per (repo, role, version); putting
//     the same version twice with a different body is ErrConflict.
//   - Generation increases with every committed Update.
//   - Audit entries are written through a Tx, so an entry lands exactly when
//     the change it records does. They form a hash chain with gapless
//     sequence numbers; only Purge removes entries, and only a prefix.
//   - Purge and AddReport do not change the generation: neither touches
//     served metadata.
//   - No table holds a client address, and only the device tables of
//     managed mode (devices.go) and audit entries of device management
//     name a device (see Describe: every table and column states its
//     purpose).
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by stores. Wrapped errors name the object.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
	// ErrFull: a capped table has no room for a new row.
	ErrFull = errors.New("store: full")
	// ErrNotPurgeable is returned by Purge for a table whose rows do not
	// age out.
	ErrNotPurgeable = errors.New("store: table has no age-based retention")
)

// Tables whose rows age out; Purge accepts these names.
const (
	TableReportCounts = "report_counts"
	TableAudit        = "audit"
	// TableTokens: tokens revoked or expired before the bound.
	TableTokens = "tokens"
)

// Product is a product line.
type Product struct {
	Name     string
	Model    string
	Hardware []string
	Created  time.Time
}

// Release is a published release of a product.
type Release struct {
	Product         string
	Version         string
	SecurityVersion uint64
	Kind            string
	// Target is the TUF target path ("<product>/<version>").
	Target string
	Length int64
	SHA256 string
	// Manifest is the release manifest JSON as signed.
	Manifest []byte
	Created  time.Time
}

// Rollout is the public offer of one release of a product to its devices.
// There is at most one rollout per product.
type Rollout struct {
	Product string
	Version string
	Percent int
	Halted  bool
	Start   time.Time
	Updated time.Time
}

// RolloutCompletion records when the offer of a release first reached every
// device of its product: percent 100, not halted. It is written once per
// release and never changed, so the time a security release took to reach
// the whole fleet survives later rollouts replacing it.
type RolloutCompletion struct {
	Product, Version string
	Reached          time.Time
}

// Attestation is a fact outside uptrust that the manufacturer recorded for
// one compliance provision of a product: where the evidence is published
// (URL), what it shows (Note), who attests it (By, as the manufacturer
// chose to name them; "" when not named) and when. A withdrawn attestation
// stays on record with the time it was withdrawn.
type Attestation struct {
	Product, Item string
	URL, Note, By string
	Time          time.Time
	// Withdrawn is when the attestation was withdrawn; zero while it
	// stands.
	Withdrawn time.Time
}

// Market is the manufacturer's declaration about placing a product on the
// market: the day it is (or will be) placed, how long it is expected to
// be in use, and why, when that is shorter than the support period the law
// asks by default. Recorded is when the declaration was made.
type Market struct {
	Product           string
	PlacedOn          time.Time // a day, midnight UTC
	ExpectedUseMonths int
	Justification     string
	Recorded          time.Time
}

// Setting is one runtime override of a project setting, kept in the
// database so that every server sharing it sees the same value. Name is a
// setting name such as report_k or retention.audit (package project knows
// which); Value is its text as the API shows it ("400d", "5"). A setting
// without a row takes its value from uptrust.json.
type Setting struct {
	Name    string
	Value   string
	Updated time.Time
}

// Metadata is one signed TUF metadata document.
type Metadata struct {
	Repo    string // "release" or "fleet"
	Role    string // "root", "targets", "snapshot", "timestamp", "products/<name>"
	Version int64
	Body    []byte
	Expires time.Time
}

// ReportCount is a counter of anonymous reports.
type ReportCount struct {
	Product, Version, Outcome, ErrorClass string
	Count                                 int64
	// Day is the UTC day the reports arrived.
	Day time.Time
}

// AuditEntry records one management action on the project. It names
// objects the operator chose (products, releases, repositories, token
// names) and who acted: the name and role of the API token used, which is
// whatever name the operator gave the token (a person's name if they chose
// one), or ActorCLI. It never names a client address. Device management
// entries (device.*) name a device by its random server-assigned ID only,
// never its key or inventory values; they stay when the device is erased.
//
// Entries form a hash chain (see auditchain.go): AddAudit assigns Seq,
// PrevHash and Hash, so what a caller sets there is ignored.
type AuditEntry struct {
	// Seq is the entry's position in the chain: 1 for the first entry
	// ever appended, one more for each later one. Purged entries keep
	// their numbers: the first stored entry follows the chain's anchor.
	Seq  int64
	Time time.Time
	// Actor is who acted: a token's name, or ActorCLI for the local
	// operator working on the project directory. AddAudit stores ""
	// as ActorCLI.
	Actor string
	// Role is the role of Actor's token; "" for ActorCLI.
	Role string
	// Action is a fixed token such as "release.add"; it must not be empty.
	Action string
	// Object is what the action changed, such as "thermostat/1.1.0".
	Object string
	// Detail is a short summary written by uptrust, not free device text.
	Detail string
	// Outcome is OutcomeOK, OutcomeRefused or OutcomeFailed; AddAudit
	// stores "" as OutcomeOK and refuses anything else.
	Outcome string
	// RequestID is the management API request the entry belongs to; ""
	// for the CLI.
	RequestID string
	// PrevHash is the Hash of the entry before (AuditGenesis for seq 1);
	// Hash is AuditHash of this entry. Both hex SHA-256.
	PrevHash, Hash string
}

// Actors and outcomes of audit entries.
const (
	ActorCLI       = "cli"
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// AuditFilter selects audit entries. Zero fields select everything.
type AuditFilter struct {
	// Action, Object, Actor and Outcome match exactly when not empty.
	Action, Object, Actor, Outcome string
	// Since (inclusive) and Until (exclusive) bound Time when not zero,
	// compared at the microsecond precision entries are stored with.
	Since, Until time.Time
	// AfterSeq selects entries with Seq > AfterSeq: a cursor for paging.
	AfterSeq int64
	// Limit caps how many entries come back when positive.
	Limit int
	// Newest returns the entries with the highest sequence numbers first;
	// AfterSeq then selects entries with Seq < AfterSeq when positive.
	Newest bool
}

// AuditChain is where the stored part of the audit chain starts and ends.
type AuditChain struct {
	// AnchorSeq and AnchorHash are the sequence number and hash of the
	// entry just before the first stored one: (0, AuditGenesis) until a
	// purge removes entries, then the last entry it removed.
	AnchorSeq  int64
	AnchorHash string
	// HeadSeq and HeadHash are those of the last entry appended; equal to
	// the anchor when no entry is stored.
	HeadSeq  int64
	HeadHash string
	// LegacySeq: entries 1..LegacySeq were written before the chain
	// existed and were chained when the database was upgraded; the chain
	// shows they did not change since then, not before. 0 when none.
	LegacySeq int64
}

// Token roles.
const (
	RoleAdmin          = "admin"
	RoleReleaseManager = "release-manager"
	RoleOperator       = "operator"
	RoleAuditor        = "auditor"
)

// Token is a management API token. Only a hash of its secret is stored.
type Token struct {
	// ID is the public part of the token, by which it is looked up;
	// unique.
	ID string
	// Name is chosen by the operator; unique among tokens not revoked.
	Name string
	// Role is one of the Role constants.
	Role string
	// SecretHash is the hex SHA-256 of the token's secret.
	SecretHash string
	Created    time.Time
	Expires    time.Time
	// Revoked is when the token was revoked; zero while it is not.
	Revoked time.Time
	// LastUsed is the UTC day the token last authenticated; zero when
	// never. A day, not a time: enough to find unused tokens without
	// recording when someone worked.
	LastUsed time.Time
}

// Table describes one table of the live schema: what it holds and why.
type Table struct {
	Name    string
	Purpose string
	Columns []Column
}

// Column describes one column of a Table.
type Column struct {
	Name    string
	Type    string
	Purpose string
}

// Reader reads the store.
type Reader interface {
	Product(ctx context.Context, name string) (Product, error)
	Products(ctx context.Context) ([]Product, error)
	Release(ctx context.Context, product, version string) (Release, error)
	// Releases lists a product's releases, or all when product is "",
	// ordered by product then creation.
	Releases(ctx context.Context, product string) ([]Release, error)
	Rollout(ctx context.Context, product string) (Rollout, error)
	Rollouts(ctx context.Context) ([]Rollout, error)
	// LatestMetadata returns the highest version of a role.
	LatestMetadata(ctx context.Context, repo, role string) (Metadata, error)
	// AllMetadata returns every stored document of a repo.
	AllMetadata(ctx context.Context, repo string) ([]Metadata, error)
	ReportCounts(ctx context.Context) ([]ReportCount, error)
	// Audit returns every stored audit entry in sequence order.
	Audit(ctx context.Context) ([]AuditEntry, error)
	// AuditQuery returns the entries f selects, in sequence order (newest
	// first with f.Newest).
	AuditQuery(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// AuditChain returns the anchor and head of the stored chain.
	AuditChain(ctx context.Context) (AuditChain, error)
	// Token returns the token with id, or an error wrapping ErrNotFound.
	Token(ctx context.Context, id string) (Token, error)
	// Tokens returns every token, revoked and expired ones included,
	// ordered by name, then creation.
	Tokens(ctx context.Context) ([]Token, error)
	// RolloutCompletions returns the completions of a product's rollouts,
	// oldest first.
	RolloutCompletions(ctx context.Context, product string) ([]RolloutCompletion, error)
	// Attestations returns a product's attestations, withdrawn ones
	// included, ordered by item, then time, then the order they were
	// added.
	Attestations(ctx context.Context, product string) ([]Attestation, error)
	// Market returns a product's market declaration, or an error wrapping
	// ErrNotFound when none was made.
	Market(ctx context.Context, product string) (Market, error)
	// Settings returns every stored setting override, ordered by name.
	Settings(ctx context.Context) ([]Setting, error)

	// DevicePolicy returns a product's device policy, or an error
	// wrapping ErrNotFound when none is stored (the product is then
	// anonymous).
	DevicePolicy(ctx context.Context, product string) (DevicePolicy, error)
	// Device returns the device with id; ErrNotFound when unknown.
	Device(ctx context.Context, id string) (Device, error)
	// DeviceByKey returns the device holding publicKey; ErrNotFound when
	// none does.
	DeviceByKey(ctx context.Context, publicKey string) (Device, error)
	// Devices returns the devices f selects, ordered by ID.
	Devices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// EnrollmentToken returns the enrolment token with id; ErrNotFound
	// when unknown.
	EnrollmentToken(ctx context.Context, id string) (EnrollmentToken, error)
	// EnrollmentTokens returns a product's enrolment tokens (every
	// product's when product is ""), revoked and used ones included,
	// ordered by creation, then ID.
	EnrollmentTokens(ctx context.Context, product string) ([]EnrollmentToken, error)
	// PreauthorizedKey returns the pre-authorisation of publicKey;
	// ErrNotFound when there is none.
	PreauthorizedKey(ctx context.Context, publicKey string) (PreauthorizedKey, error)
	// PreauthorizedKeys returns a product's pre-authorised keys (every
	// product's when product is ""), ordered by creation, then key.
	PreauthorizedKeys(ctx context.Context, product string) ([]PreauthorizedKey, error)
	// DeviceCount returns how many devices of product are in state (any
	// state when state is "").
	DeviceCount(ctx context.Context, product, state string) (int64, error)
	// DeviceEvents returns a device's events in Seq order.
	DeviceEvents(ctx context.Context, device string) ([]DeviceEvent, error)
	// LatestDeviceEvents returns, for each device of f.Product that has
	// events for f.Version at or after f.Since, the latest of them (highest
	// Seq), ordered by device: one event per device, for counting a
	// rollout's devices by their latest state.
	LatestDeviceEvents(ctx context.Context, f OutcomeFilter) ([]DeviceEvent, error)
	// DeviceEventsSince returns the events of product's devices received
	// at or after since, every version, ordered by Time, device, then Seq:
	// what changed since an incremental count's previous read.
	DeviceEventsSince(ctx context.Context, product string, since time.Time) ([]DeviceEvent, error)

	// ManagedRollout returns the managed rollout id; ErrNotFound when
	// unknown.
	ManagedRollout(ctx context.Context, id string) (ManagedRollout, error)
	// ManagedRollouts returns a product's managed rollouts (every
	// product's when product is ""), ordered by product, then Seq.
	ManagedRollouts(ctx context.Context, product string) ([]ManagedRollout, error)
	// DeviceLabels returns the labels f selects, ordered by kind, name,
	// then device.
	DeviceLabels(ctx context.Context, f LabelFilter) ([]DeviceLabel, error)
}

// Tx is a transaction: reads see its own writes.
type Tx interface {
	Reader
	PutProduct(ctx context.Context, p Product) error
	// AddRelease fails with ErrConflict when the version exists.
	AddRelease(ctx context.Context, r Release) error
	PutRollout(ctx context.Context, r Rollout) error
	PutMetadata(ctx context.Context, m Metadata) error
	// AddAudit appends e to the audit chain; it commits or rolls back with
	// the transaction. It sets e's Seq to the head's plus one and PrevHash
	// to the head's hash, stores Time in UTC truncated to the microsecond,
	// fills Actor and Outcome defaults (see AuditEntry), computes Hash
	// with AuditHash and moves the head to e. Appends are serialised: two
	// transactions never take the same Seq.
	AddAudit(ctx context.Context, e AuditEntry) error
	// AddToken stores t. A taken ID, or a Name taken by a token not
	// revoked, is ErrConflict. Name, ID, SecretHash must not be empty,
	// Role must be a Role constant, Revoked and LastUsed must be zero.
	AddToken(ctx context.Context, t Token) error
	// RevokeToken marks the token with id revoked at at. An unknown id is
	// ErrNotFound, a token already revoked is ErrConflict.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// CompleteRollout records c unless the release has a completion
	// already: the first time a release reaches every device is kept.
	// An unknown release is ErrNotFound.
	CompleteRollout(ctx context.Context, c RolloutCompletion) error
	// AddAttestation records a; an unknown product is ErrNotFound. Item,
	// URL and Note must not be empty, Withdrawn must be zero.
	AddAttestation(ctx context.Context, a Attestation) error
	// WithdrawAttestations marks the standing attestations of product's
	// item withdrawn at at and returns how many it marked.
	WithdrawAttestations(ctx context.Context, product, item string, at time.Time) (int64, error)
	// PutMarket creates or replaces a product's market declaration; an
	// unknown product is ErrNotFound. ExpectedUseMonths must be positive.
	PutMarket(ctx context.Context, m Market) error
	// PutSetting creates or replaces the override s.Name; Name and Value
	// must not be empty.
	PutSetting(ctx context.Context, s Setting) error
	// DeleteSetting removes the override name, so the setting takes its
	// value from uptrust.json again; an absent override is not an error.
	DeleteSetting(ctx context.Context, name string) error

	// PutDevicePolicy creates or replaces a product's device policy; an
	// unknown product is ErrNotFound, a mode other than ModeAnonymous or
	// ModeManaged an error.
	PutDevicePolicy(ctx context.Context, p DevicePolicy) error
	// AddDevice stores d. A taken ID or PublicKey is ErrConflict, an
	// unknown product ErrNotFound; ID and PublicKey must not be empty and
	// State must be a Device state constant.
	AddDevice(ctx context.Context, d Device) error
	// PutDevice replaces the State, Inventory and Updated of the device
	// d.ID; ErrNotFound when unknown.
	PutDevice(ctx context.Context, d Device) error
	// DeleteDevice removes the device id, its events, its labels (groups
	// and tags) and the pre-authorisation of its key; ErrNotFound when
	// unknown.
	DeleteDevice(ctx context.Context, id string) error
	// AddEnrollmentToken stores e; a taken ID is ErrConflict, an unknown
	// product ErrNotFound; Revoked must be zero and Uses not negative.
	AddEnrollmentToken(ctx context.Context, e EnrollmentToken) error
	// PutEnrollmentToken replaces the Uses and Revoked of the token e.ID;
	// ErrNotFound when unknown.
	PutEnrollmentToken(ctx context.Context, e EnrollmentToken) error
	// AddPreauthorizedKey stores k; a key pre-authorised already is
	// ErrConflict, an unknown product ErrNotFound.
	AddPreauthorizedKey(ctx context.Context, k PreauthorizedKey) error
	// DeletePreauthorizedKey removes the pre-authorisation of publicKey;
	// absent is not an error.
	DeletePreauthorizedKey(ctx context.Context, publicKey string) error
	// AddDeviceEvent appends e to its device's history, setting Seq to
	// one more than the device's last; an unknown device is ErrNotFound.
	AddDeviceEvent(ctx context.Context, e DeviceEvent) error

	// AddManagedRollout stores r with Seq one more than the highest of its
	// product's rollouts (r.Seq is ignored). A taken ID is ErrConflict, an
	// unknown release ErrNotFound; ID must not be empty and Plan and State
	// must be JSON objects.
	AddManagedRollout(ctx context.Context, r ManagedRollout) error
	// PutManagedRolloutState replaces the State and Updated of the rollout
	// id; ErrNotFound when unknown.
	PutManagedRolloutState(ctx context.Context, id string, state []byte, updated time.Time) error
	// AddDeviceLabel stores l; the same label twice is ErrConflict, an
	// unknown device ErrNotFound; Kind must be LabelGroup or LabelTag and
	// Name not empty.
	AddDeviceLabel(ctx context.Context, l DeviceLabel) error
	// DeleteDeviceLabel removes the label; ErrNotFound when absent.
	DeleteDeviceLabel(ctx context.Context, device, kind, name string) error
}

// Store is a persistent store.
type Store interface {
	Reader
	// Update runs fn in a transaction and commits when fn returns nil.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// UpdateFleet is Update without changing the generation, for changes
	// to nothing the public servers serve: the device tables of managed
	// mode (and the audit entries recording them). A busy fleet would
	// otherwise make every server reload its metadata at each poll. fn
	// must not write products, releases, rollouts or metadata.
	UpdateFleet(ctx context.Context, fn func(tx Tx) error) error
	// Generation changes after every committed Update.
	Generation(ctx context.Context) (int64, error)
	// UseDeviceNonce records n at time now, in one atomic statement. When
	// the same (KeyID, Nonce) is recorded with an Expires not before now
	// it records nothing and returns an error wrapping ErrConflict (a
	// replay); an expired row is replaced. Of concurrent calls with one
	// (KeyID, Nonce), from any number of Store handles on one database,
	// exactly one succeeds. It does not change the generation. Empty
	// KeyID or Nonce is an error.
	UseDeviceNonce(ctx context.Context, n DeviceNonce, now time.Time) error
	// AddReport adds n to a report counter for the UTC day of at.
	AddReport(ctx context.Context, c ReportCount) error
	// AddReportCapped is AddReport, except that when c's counter does not
	// exist yet and its day already has maxRows counters it adds nothing
	// and returns an error wrapping ErrFull. The check and the write are
	// one atomic step.
	AddReportCapped(ctx context.Context, c ReportCount, maxRows int) error
	// Purge deletes the rows of table that are older than before and
	// returns how many it deleted. TableReportCounts: counters whose UTC
	// day began before before, so that no remaining counter can hold a
	// report received before it. TableAudit: entries whose Time is before
	// before (truncated to the microsecond, as entry times are), and with them any entry that precedes one of them in the
	// chain (a cut must leave the chain whole; the clock going back is the
	// only way an earlier entry is newer). The last removed entry becomes
	// the chain's anchor, in the same transaction. TableTokens: tokens
	// revoked or expired before before. TableDeviceEvents: events whose
	// Time is before before. TableDeviceNonces: nonces whose Expires is
	// before before. Any other table fails with ErrNotPurgeable.
	Purge(ctx context.Context, table string, before time.Time) (int64, error)
	// TouchToken records day (truncated to its UTC day) as the token's
	// LastUsed when it is later than the one stored. It does not change
	// the generation. An unknown id is ErrNotFound.
	TouchToken(ctx context.Context, id string, day time.Time) error
	// AcquireLease takes the lease name for holder until now+ttl when it
	// is free, has expired (its expiry is not after now), or is already
	// holder's (a renewal), and reports whether holder holds it. The check
	// and the write are one atomic step, so of several holders asking at
	// once exactly one gets a free lease. It does not change the
	// generation. Empty name or holder, or ttl <= 0, is an error.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
	// ReleaseLease frees the lease name when holder holds it, so another
	// holder may take it at once; otherwise it does nothing.
	ReleaseLease(ctx context.Context, name, holder string) error
	// Describe returns every table of the live schema, ordered by name,
	// with its columns in schema order, their types, and the purpose of
	// each as the schema states it ("" where it states none).
	Describe(ctx context.Context) ([]Table, error)
	Close() error
}
