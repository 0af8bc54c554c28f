package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Schema conventions.
//
// The statements are written like the SQLite store's: every CREATE TABLE
// carries "-- purpose: ..." comments, the one on the "CREATE TABLE name ("
// line for the table and the one on a column's line for that column.
// PostgreSQL drops SQL comments, so migrate turns each of them into COMMENT
// ON TABLE / COMMENT ON COLUMN in the same transaction (see comments);
// Describe reads them back from the catalog and the privacy report works
// unchanged.
//
// Times are TEXT in timeLayout (UTC, nanoseconds, fixed width), exactly as in
// the SQLite store: timestamptz keeps microseconds only, and the store
// contract asks for times to round-trip to the nanosecond. Days are TEXT
// "YYYY-MM-DD". Byte strings are bytea.
//
// Migrations are append-only: never edit a released entry, add a new one.
// The schema version of a database is the highest version recorded in
// schema_migrations; migration i (0-based) brings the schema to version i+1.
// The numbering follows the SQLite store's: version N holds the same tables
// in both.

// createMigrationsTable is run before reading the schema version. It is not a
// migration itself: it must exist before migrations can be counted.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations ( -- purpose: which schema migrations have been applied to this database, so an older program refuses a newer schema
	version integer PRIMARY KEY, -- purpose: schema version a migration brought the database to
	applied text NOT NULL -- purpose: when the migration ran (UTC), for operators diagnosing upgrades
)`

// migrations are the schema steps, in order. See the conventions above.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE products ( -- purpose: product lines the operator publishes firmware for; operator-defined, holds no device or personal data
	name text COLLATE "C" PRIMARY KEY CHECK (name <> ''), -- purpose: product identifier chosen by the operator; names the TUF role products/<name>
	model text COLLATE "C" NOT NULL, -- purpose: model name of the product line, set by the operator
	hardware text COLLATE "C" NOT NULL CHECK (hardware::jsonb IS NOT NULL), -- purpose: JSON array of hardware identifiers the product's firmware is built for
	created text COLLATE "C" NOT NULL -- purpose: when the product was created (UTC), for audit and listing
);

CREATE TABLE releases ( -- purpose: published firmware releases; operator-defined, holds no device or personal data
	product text COLLATE "C" NOT NULL REFERENCES products (name), -- purpose: product the release belongs to
	version text COLLATE "C" NOT NULL CHECK (version <> ''), -- purpose: release version string; unique per product
	security_version bigint NOT NULL CHECK (security_version >= 0), -- purpose: anti-rollback counter devices compare before installing
	kind text COLLATE "C" NOT NULL, -- purpose: kind of image (for example full or delta), as in the release manifest
	target text COLLATE "C" NOT NULL, -- purpose: TUF target path of the image, "<product>/<version>"
	length bigint NOT NULL CHECK (length >= 0), -- purpose: image size in bytes, as signed in TUF targets
	sha256 text COLLATE "C" NOT NULL, -- purpose: hex SHA-256 of the image, as signed in TUF targets
	manifest bytea NOT NULL, -- purpose: release manifest JSON exactly as signed, kept byte-for-byte for re-verification
	created text COLLATE "C" NOT NULL, -- purpose: when the release was published (UTC); orders a product's releases
	PRIMARY KEY (product, version)
);

CREATE INDEX releases_by_created ON releases (product, created, version);

CREATE TABLE rollouts ( -- purpose: the current public offer of one release per product to its devices; holds no device or personal data
	product text COLLATE "C" PRIMARY KEY, -- purpose: product being rolled out; at most one rollout per product
	version text COLLATE "C" NOT NULL, -- purpose: release version offered
	percent integer NOT NULL CHECK (percent BETWEEN 0 AND 100), -- purpose: share of the fleet offered the release, 0 to 100
	halted boolean NOT NULL, -- purpose: true when the operator stopped the rollout
	start text COLLATE "C" NOT NULL, -- purpose: when the rollout started (UTC)
	updated text COLLATE "C" NOT NULL, -- purpose: when the rollout was last changed (UTC)
	FOREIGN KEY (product, version) REFERENCES releases (product, version)
);

CREATE TABLE metadata ( -- purpose: signed TUF metadata documents, append-only per (repo, role, version); holds no device or personal data
	repo text COLLATE "C" NOT NULL CHECK (repo <> ''), -- purpose: which TUF repository the document belongs to ("release" or "fleet")
	role text COLLATE "C" NOT NULL CHECK (role <> ''), -- purpose: TUF role name (root, targets, snapshot, timestamp, products/<name>)
	version bigint NOT NULL CHECK (version >= 1), -- purpose: TUF version of the document; devices and snapshot refer to it
	body bytea NOT NULL, -- purpose: the signed document exactly as served to devices
	expires text COLLATE "C" NOT NULL, -- purpose: expiry from the signed document (UTC), so re-signing can be scheduled without parsing bodies
	PRIMARY KEY (repo, role, version)
);

CREATE TABLE report_counts ( -- purpose: daily counters of anonymous update reports; aggregated on arrival, no device identifier, address or per-device row is stored
	day text COLLATE "C" NOT NULL, -- purpose: UTC day the reports arrived, YYYY-MM-DD
	product text COLLATE "C" NOT NULL, -- purpose: product the reporting devices claimed (not checked against products: reports are untrusted)
	version text COLLATE "C" NOT NULL, -- purpose: release version the reports are about
	outcome text COLLATE "C" NOT NULL, -- purpose: reported result of the update (for example success or failure)
	error_class text COLLATE "C" NOT NULL, -- purpose: coarse class of failure, empty on success; never free-form device text
	count bigint NOT NULL CHECK (count >= 0), -- purpose: number of reports with these values on that day
	PRIMARY KEY (day, product, version, outcome, error_class)
);

CREATE TABLE generation ( -- purpose: single-row counter bumped by every committed update, so caches of served metadata know when to refresh
	id integer PRIMARY KEY CHECK (id = 1), -- purpose: always 1; keeps the table to one row
	value bigint NOT NULL -- purpose: the generation number
);

INSERT INTO generation (id, value) VALUES (1, 0);
`,
	// 2: audit log of operator actions.
	`
CREATE TABLE audit ( -- purpose: record of operator actions on the project (init, products, support, policy, releases, rollouts, root keys, retention purges) for accountability; names what changed, never a device, a person or a client address
	time text COLLATE "C" NOT NULL, -- purpose: when the change was committed (UTC); entries older than the audit retention are purged
	action text COLLATE "C" NOT NULL CHECK (action <> ''), -- purpose: what was done, a fixed token such as release.add or rollout.change
	object text COLLATE "C" NOT NULL, -- purpose: what it was done to: a product, product/version or repository name chosen by the operator
	detail text COLLATE "C" NOT NULL -- purpose: short summary of the change written by uptrust (for example the new rollout percentage); never device data
);

CREATE INDEX audit_by_time ON audit (time);
`,
	// 3: what the compliance report measures beyond the published state.
	`
CREATE TABLE rollout_completions ( -- purpose: when the offer of each release first reached every device (100 percent, not halted), to measure how long security updates take to reach the fleet; holds no device or personal data
	product text COLLATE "C" NOT NULL, -- purpose: product of the release
	version text COLLATE "C" NOT NULL, -- purpose: release version whose rollout completed
	reached text COLLATE "C" NOT NULL, -- purpose: when the rollout first reached 100 percent (UTC); for rollouts already complete when this table was added, their last change
	PRIMARY KEY (product, version),
	FOREIGN KEY (product, version) REFERENCES releases (product, version)
);

INSERT INTO rollout_completions (product, version, reached)
	SELECT product, version, updated FROM rollouts WHERE percent = 100 AND NOT halted;

CREATE TABLE attestations ( -- purpose: facts outside uptrust that the manufacturer attests for a compliance provision of a product (uptrust compliance attest), reported as attested and never as met; holds no device data
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- purpose: order in which attestations were recorded
	product text COLLATE "C" NOT NULL REFERENCES products (name), -- purpose: product the attestation is about
	item text COLLATE "C" NOT NULL CHECK (item <> ''), -- purpose: compliance provision id, such as CRA-II-5
	url text COLLATE "C" NOT NULL CHECK (url <> ''), -- purpose: where the attested evidence is published (policy page, shop page, label)
	note text COLLATE "C" NOT NULL CHECK (note <> ''), -- purpose: what the manufacturer states the evidence shows
	attested_by text COLLATE "C" NOT NULL, -- purpose: who attests, as the manufacturer chose to name them (a role or team is enough); empty when not named
	time text COLLATE "C" NOT NULL, -- purpose: when the attestation was recorded (UTC)
	withdrawn text COLLATE "C" NOT NULL -- purpose: when it was withdrawn (UTC); empty while it stands
);

CREATE INDEX attestations_by_item ON attestations (product, item, time);

CREATE TABLE markets ( -- purpose: the manufacturer's declaration of placing each product on the market and of its expected time in use, from which the support period is measured; holds no device or personal data
	product text COLLATE "C" PRIMARY KEY REFERENCES products (name), -- purpose: product the declaration is about
	placed_on text COLLATE "C" NOT NULL, -- purpose: day the product is placed on the market, YYYY-MM-DD
	expected_use_months integer NOT NULL CHECK (expected_use_months > 0), -- purpose: how long users are expected to use the product, in months
	justification text COLLATE "C" NOT NULL, -- purpose: why the support period may be shorter than five years, empty when none is given
	recorded text COLLATE "C" NOT NULL -- purpose: when the declaration was made (UTC)
);
`,
	// 4: the audit log becomes a hash chain with actors, outcomes and
	// request ids (existing entries are chained in Go by chainLegacyAudit,
	// in time order, as entries of the CLI that succeeded), and management
	// API tokens.
	`
ALTER TABLE audit RENAME TO audit_legacy;
DROP INDEX audit_by_time;

CREATE TABLE audit ( -- purpose: tamper-evident record of management actions on the project (init, products, support, policy, releases, rollouts, root keys, tokens, retention purges) for accountability: who (token name and role, or the local CLI), what, when, with what outcome; names what changed, never a device or a client address
	seq bigint PRIMARY KEY CHECK (seq >= 1), -- purpose: position in the audit hash chain, gapless from 1; purged entries keep their numbers
	time text COLLATE "C" NOT NULL, -- purpose: when the action was recorded (UTC, microseconds); entries older than the audit retention are purged
	actor text COLLATE "C" NOT NULL CHECK (actor <> ''), -- purpose: who acted: the name of the API token used, or cli for the operator working on the project directory
	role text COLLATE "C" NOT NULL, -- purpose: role of the token used (admin, release-manager, operator, auditor); empty for cli
	action text COLLATE "C" NOT NULL CHECK (action <> ''), -- purpose: what was done, a fixed token such as release.add or rollout.change
	object text COLLATE "C" NOT NULL, -- purpose: what it was done to: a product, product/version, repository or token name chosen by the operator
	detail text COLLATE "C" NOT NULL, -- purpose: short summary written by uptrust (for example the new rollout percentage, or why a request was refused); never device data
	outcome text COLLATE "C" NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')), -- purpose: whether the action was done (ok), refused for lack of permission or bad input (refused) or failed
	request_id text COLLATE "C" NOT NULL, -- purpose: identifier of the management API request, to match entries with server logs; empty for cli
	prev_hash text COLLATE "C" NOT NULL, -- purpose: hash of the entry before in the chain (all zeros for the first), so removing or inserting an entry is detected
	hash text COLLATE "C" NOT NULL -- purpose: SHA-256 of this entry's fields and prev_hash, so editing an entry is detected by uptrust audit verify
);

CREATE INDEX audit_by_time ON audit (time);

CREATE TABLE audit_chain ( -- purpose: where the stored part of the audit hash chain starts and ends, so uptrust audit verify can check it after retention purges; one row, holds no personal data
	id integer PRIMARY KEY CHECK (id = 1), -- purpose: always 1; keeps the table to one row
	anchor_seq bigint NOT NULL, -- purpose: sequence number of the last entry a retention purge removed, 0 before any purge; verification starts after it
	anchor_hash text COLLATE "C" NOT NULL, -- purpose: hash of that entry (all zeros before any purge), which the first stored entry links to
	head_seq bigint NOT NULL, -- purpose: sequence number of the last entry appended, so entries removed from the end are detected
	head_hash text COLLATE "C" NOT NULL, -- purpose: hash of the last entry appended
	legacy_seq bigint NOT NULL -- purpose: entries up to this sequence number were written before the chain existed and were chained when the database was upgraded
);

INSERT INTO audit_chain (id, anchor_seq, anchor_hash, head_seq, head_hash, legacy_seq)
	VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0, '0000000000000000000000000000000000000000000000000000000000000000', 0);

CREATE TABLE tokens ( -- purpose: management API tokens (uptrust token): which token may manage the server with which role; holds a hash of each secret, never the secret
	id text COLLATE "C" PRIMARY KEY CHECK (id <> ''), -- purpose: public identifier that is part of the token, by which it is looked up
	name text COLLATE "C" NOT NULL CHECK (name <> ''), -- purpose: name the operator gave the token (for example ci), the actor in the audit log; name tokens after a job or system rather than a person
	role text COLLATE "C" NOT NULL CHECK (role IN ('admin', 'release-manager', 'operator', 'auditor')), -- purpose: what the token may do
	secret_hash text COLLATE "C" NOT NULL CHECK (secret_hash <> ''), -- purpose: hex SHA-256 of the token's random secret; the secret is shown once when the token is created and never stored
	created text COLLATE "C" NOT NULL, -- purpose: when the token was created (UTC)
	expires text COLLATE "C" NOT NULL, -- purpose: when the token stops being accepted (UTC)
	revoked text COLLATE "C" NOT NULL, -- purpose: when the token was revoked (UTC); empty while it is not
	last_used text COLLATE "C" NOT NULL -- purpose: UTC day the token last authenticated, YYYY-MM-DD, empty when never; a day and not a time, enough to find unused tokens without recording when someone worked
);

CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked = '';
`,
	// 5: leases, so that of several servers on one database exactly one
	// re-signs at a time.
	`
CREATE TABLE leases ( -- purpose: which running uptrust serve process does a job only one may do at a time (re-signing timestamp and snapshot); holds random per-process ids, no device or personal data
	name text COLLATE "C" PRIMARY KEY CHECK (name <> ''), -- purpose: the job the lease is for, such as resign
	holder text COLLATE "C" NOT NULL CHECK (holder <> ''), -- purpose: random id of the server process holding the lease, new at every start
	expires text COLLATE "C" NOT NULL -- purpose: when the lease lapses unless its holder renews it (UTC); another process may take it from then on
);
`,
	// 6: settings changed at run time (PATCH /api/v1/settings), shared by
	// every server on the database; indexes for the audit filters.
	`
CREATE TABLE settings ( -- purpose: project settings changed while servers run (uptrust settings set, PATCH /api/v1/settings), overriding uptrust.json for every server on this database: report threshold and retention periods; holds no device or personal data
	name text COLLATE "C" PRIMARY KEY CHECK (name <> ''), -- purpose: the setting, such as report_k or retention.audit
	value text COLLATE "C" NOT NULL CHECK (value <> ''), -- purpose: its value as written by uptrust, such as 5 or 400d
	updated text COLLATE "C" NOT NULL -- purpose: when it was last changed (UTC); who changed it is in the audit log
);

-- The audit filters of the management API (by action, by actor) read
-- these instead of scanning the log (go run ./bench/api).
CREATE INDEX audit_by_action ON audit (action, seq);
CREATE INDEX audit_by_actor ON audit (actor, seq);
`,
	// 7: managed mode: device policies of products, devices known by
	// their Ed25519 public key, enrolment tokens, pre-authorised keys and
	// the per-device update history.
	`
CREATE TABLE device_policies ( -- purpose: how each product treats its devices (uptrust product mode, uptrust product inventory): anonymous or managed, and which inventory fields managed devices may report; a product without a row is anonymous; holds no device data
	product text COLLATE "C" PRIMARY KEY REFERENCES products (name), -- purpose: product the policy is for
	mode text COLLATE "C" NOT NULL CHECK (mode IN ('anonymous', 'managed')), -- purpose: anonymous (devices unknown to the server) or managed (devices enrol with a key)
	inventory text COLLATE "C" NOT NULL, -- purpose: JSON array of the inventory field names the product declared; devices may report these and nothing else
	updated text COLLATE "C" NOT NULL -- purpose: when the policy was last changed (UTC); who changed it is in the audit log
);

CREATE TABLE devices ( -- purpose: enrolled devices of managed products: their public key, whether the operator accepted them, and the inventory fields the product declared; no client address, no private key; removed whole by uptrust device erase
	id text COLLATE "C" PRIMARY KEY CHECK (id <> ''), -- purpose: random identifier the server assigned at enrolment, derived from nothing on the device; names the device in the API and the audit log
	product text COLLATE "C" NOT NULL REFERENCES products (name), -- purpose: product the device enrolled for
	public_key text COLLATE "C" NOT NULL UNIQUE CHECK (public_key <> ''), -- purpose: the device's Ed25519 public key (base64), which authenticates its requests; only public keys are stored, so a leaked database lets no one act as a device
	state text COLLATE "C" NOT NULL CHECK (state IN ('pending', 'accepted', 'rejected', 'decommissioned')), -- purpose: whether the operator accepted the device; only accepted devices get updates
	inventory text COLLATE "C" NOT NULL, -- purpose: JSON object of the declared inventory fields the device reported (such as hardware, version); undeclared fields are refused, never stored
	enrolled text COLLATE "C" NOT NULL, -- purpose: when the device enrolled (UTC)
	updated text COLLATE "C" NOT NULL -- purpose: when its state or inventory last changed (UTC)
);

CREATE INDEX devices_by_product ON devices (product, state, id);

CREATE TABLE enrollment_tokens ( -- purpose: tokens that let devices of one product enrol (uptrust enrollment-token create); holds a hash of each secret, never the secret, and no device data
	id text COLLATE "C" PRIMARY KEY CHECK (id <> ''), -- purpose: public identifier that is part of the token, by which it is looked up
	product text COLLATE "C" NOT NULL REFERENCES products (name), -- purpose: product whose devices may enrol with the token
	secret_hash text COLLATE "C" NOT NULL CHECK (secret_hash <> ''), -- purpose: hex SHA-256 of the token's random secret; the secret is shown once when the token is created
	uses bigint NOT NULL CHECK (uses >= 0), -- purpose: how many more enrolments the token allows
	auto_accept bigint NOT NULL CHECK (auto_accept IN (0, 1)), -- purpose: 1 when devices enrolling with the token are accepted at once, 0 when they wait for the operator
	created text COLLATE "C" NOT NULL, -- purpose: when the token was created (UTC)
	expires text COLLATE "C" NOT NULL, -- purpose: when the token stops being accepted (UTC)
	revoked text COLLATE "C" NOT NULL -- purpose: when the token was revoked (UTC); empty while it is not
);

CREATE TABLE preauthorized_keys ( -- purpose: device public keys the operator accepted before the device enrolled (uptrust device preauthorize), so that device is accepted when it enrols; removed with the device by uptrust device erase
	public_key text COLLATE "C" PRIMARY KEY CHECK (public_key <> ''), -- purpose: the device's Ed25519 public key (base64)
	product text COLLATE "C" NOT NULL REFERENCES products (name), -- purpose: product the device may enrol for
	created text COLLATE "C" NOT NULL -- purpose: when the key was pre-authorised (UTC)
);

CREATE TABLE device_events ( -- purpose: per-device update history of managed devices (offered, downloading, installing, rebooting, succeeded, failed, rolled back, skipped), for the operator and rollouts; purged after the device_events retention and removed with the device by uptrust device erase
	device text COLLATE "C" NOT NULL REFERENCES devices (id), -- purpose: device the event is about
	seq bigint NOT NULL CHECK (seq >= 1), -- purpose: order of the device's events, from 1
	time text COLLATE "C" NOT NULL, -- purpose: when the server received the event (UTC); events older than the device_events retention are purged
	kind text COLLATE "C" NOT NULL CHECK (kind IN ('offered', 'downloading', 'installing', 'rebooting', 'succeeded', 'failed', 'rolled_back', 'skipped')), -- purpose: the step of the update
	version text COLLATE "C" NOT NULL, -- purpose: release version the event is about
	progress bigint NOT NULL CHECK (progress BETWEEN 0 AND 100), -- purpose: download progress in percent while downloading
	error_class text COLLATE "C" NOT NULL, -- purpose: coarse class of a failure, empty otherwise
	message text COLLATE "C" NOT NULL, -- purpose: short failure message from the device agent, empty otherwise
	reason text COLLATE "C" NOT NULL, -- purpose: why an update was skipped (such as postponed by the owner), empty otherwise; an owner's choice is not a failure
	PRIMARY KEY (device, seq)
);

CREATE INDEX device_events_by_time ON device_events (time);
`,
	// 8: managed mode: the nonces of devices' signed requests that change
	// state, shared by every server on the database (replay protection
	// across replicas).
	`
CREATE TABLE device_nonces ( -- purpose: nonces of managed devices' signed requests that change state (enrolment, events), shared by every server on this database so that a request replayed to another server is refused; a row is deleted minutes after its request, once its signature window closed (by the server itself and by uptrust purge); no client address, no request content
	keyid text COLLATE "C" NOT NULL CHECK (keyid <> ''), -- purpose: id of the signing key (unpadded base64url SHA-256 of the device's public key); uptrust device erase removes the device's rows
	nonce text COLLATE "C" NOT NULL CHECK (nonce <> ''), -- purpose: the random nonce the device signed; each is accepted once per key while its window is open
	expires text COLLATE "C" NOT NULL, -- purpose: when the signature's window closes (UTC); after it the request is refused as too old anyway and the row is deleted
	PRIMARY KEY (keyid, nonce)
);

CREATE INDEX device_nonces_by_expires ON device_nonces (expires);
`,
	// 9: the servers' device caches poll for the devices changed since
	// their last poll (package managed) every 2 s.
	`
CREATE INDEX devices_by_updated ON devices (updated);
`,
	// 10: managed rollouts in waves (uptrust rollout start --waves),
	// static device groups and tags.
	`
CREATE TABLE managed_rollouts ( -- purpose: rollouts in waves of managed products (uptrust rollout start --waves): the operator's plan, the selection filter and the state the decision loop persisted; holds no device data (devices are selected lazily by the filter, never listed)
	id text COLLATE "C" PRIMARY KEY CHECK (id <> ''), -- purpose: random identifier of the rollout, in the API, the audit log and the devices' per-device view
	product text COLLATE "C" NOT NULL REFERENCES products (name), -- purpose: product the rollout is for
	seq bigint NOT NULL CHECK (seq >= 1), -- purpose: order of the product's rollouts by creation; the newest one selecting a device owns it
	version text COLLATE "C" NOT NULL, -- purpose: release version offered
	selection text COLLATE "C" NOT NULL, -- purpose: selection filter as the operator wrote it (such as group=lab,hardware=rev-a); empty selects every device
	plan text COLLATE "C" NOT NULL, -- purpose: JSON of the plan: cumulative waves, maximum failure ratio, minimum successes, soak, start, maintenance window
	state text COLLATE "C" NOT NULL, -- purpose: JSON of the decision state: phase, active wave, since when, why paused, halted or aborted
	created text COLLATE "C" NOT NULL, -- purpose: when the rollout was created (UTC); who created it is in the audit log
	updated text COLLATE "C" NOT NULL, -- purpose: when its state last changed (UTC)
	FOREIGN KEY (product, version) REFERENCES releases (product, version)
);

CREATE TABLE device_labels ( -- purpose: static groups and tags of managed devices (uptrust device group, uptrust device tag), for selecting devices in rollouts; removed with the device by uptrust device erase
	device text COLLATE "C" NOT NULL REFERENCES devices (id), -- purpose: device labelled
	kind text COLLATE "C" NOT NULL CHECK (kind IN ('group', 'tag')), -- purpose: whether the label is a static group or a tag
	name text COLLATE "C" NOT NULL CHECK (name <> ''), -- purpose: the group or tag name chosen by the operator
	added text COLLATE "C" NOT NULL, -- purpose: when the label was added (UTC)
	PRIMARY KEY (device, kind, name)
);

CREATE UNIQUE INDEX managed_rollouts_by_seq ON managed_rollouts (product, seq);
CREATE INDEX device_labels_by_name ON device_labels (kind, name, device);
CREATE INDEX device_events_by_version ON device_events (version, device, seq);
`,
	// 11: the
	// decision loop counts a rollout's waves incrementally (package
	// project, wavecount.go), reading at each count only the product's
	// devices changed since the last one (and the events received since
	// then, through device_events_by_time).
	`
CREATE INDEX devices_by_product_updated ON devices (product, updated);
`,
}

// migrationCode is Go code that completes a migration, run in its
// transaction after its SQL (and its comments), keyed by the schema version
// the migration brings the database to.
var migrationCode = map[int]func(ctx context.Context, tx pgx.Tx) error{
	4: chainLegacyAudit,
}

// Known is the newest schema version this program knows.
var Known = len(migrations)

// ErrSchemaTooNew is returned by Open and Migrate when the database was
// written by a newer program whose schema this one does not know. Upgrade
// the program; do not downgrade the database by hand.
var ErrSchemaTooNew = errors.New("store/postgres: database schema is newer than this program supports")

// ErrNotUptrust is returned by Open when the database holds tables in its
// schema but was not created by this package.
var ErrNotUptrust = errors.New("store/postgres: database was not created by uptrust")

// migrationLock is the pg_advisory_xact_lock key every migration takes
// first, so that servers starting together against one database apply each
// migration exactly once: the second waits for the first to commit, then
// finds nothing left to do. The value is arbitrary but fixed ("uptrust"
// in ASCII, as a number).
const migrationLock int64 = 0x7570747275737400

// updateLock is the pg_advisory_xact_lock key every Update takes first. It
// makes Updates serial across every connection and process on the database,
// as the SQLite store's single writer does, so read-modify-write Updates
// lose nothing without retrying the caller's function.
const updateLock int64 = 0x7570747275737401

// Status is the schema version of a database and what this program would do
// to it.
type Status struct {
	// Current is the version the database is at; 0 for an empty one.
	Current int
	// Known is the newest version this program knows.
	Known int
	// Applied lists the recorded migrations, oldest first.
	Applied []Applied
}

// Applied is one recorded migration.
type Applied struct {
	Version int
	Time    time.Time
}

// Pending is how many migrations Migrate would apply; negative when the
// database is newer than this program.
func (s Status) Pending() int { return s.Known - s.Current }

// migrate brings the database to schema version len(steps) in one
// transaction that first takes the migration lock, applying the steps it
// has not applied yet. PostgreSQL's DDL is transactional: a failed step
// leaves the database as it was.
func migrate(ctx context.Context, conn querier, now time.Time, steps []string) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if current > len(steps) {
		return fmt.Errorf("%w: database is at version %d, this program knows up to %d", ErrSchemaTooNew, current, len(steps))
	}
	if current == 0 {
		if err := execWithComments(ctx, tx, createMigrationsTable); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
	}
	for i := current; i < len(steps); i++ {
		if err := execWithComments(ctx, tx, steps[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if code := migrationCode[i+1]; code != nil {
			if err := code(ctx, tx); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`,
			i+1, now.UTC().Format(timeLayout)); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return tx.Commit(ctx)
}

// schemaVersion returns the schema version of the database q reads: 0 when
// its current schema holds no tables, ErrNotUptrust when it holds tables
// but no schema_migrations.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var hasMigrations bool
	var tables int
	if err := q.QueryRow(ctx,
		`SELECT coalesce(bool_or(table_name = 'schema_migrations'), false), count(*)
		 FROM information_schema.tables
		 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
	).Scan(&hasMigrations, &tables); err != nil {
		return 0, err
	}
	if !hasMigrations {
		if tables > 0 {
			return 0, fmt.Errorf("%w: its schema has %d tables but no schema_migrations", ErrNotUptrust, tables)
		}
		return 0, nil
	}
	var current int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, err
	}
	return current, nil
}

// readStatus reads the schema status without changing anything.
func readStatus(ctx context.Context, q querier) (Status, error) {
	st := Status{Known: len(migrations)}
	var err error
	if st.Current, err = schemaVersion(ctx, q); err != nil || st.Current == 0 {
		return st, err
	}
	rows, err := q.Query(ctx, `SELECT version, applied FROM schema_migrations ORDER BY version`)
	if err != nil {
		return st, err
	}
	st.Applied, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Applied, error) {
		var a Applied
		var at string
		if err := r.Scan(&a.Version, &at); err != nil {
			return a, err
		}
		a.Time, err = decodeTime(at)
		return a, err
	})
	return st, err
}

// execWithComments runs the statements of ddl, then records its "-- purpose:"
// comments with COMMENT ON.
func execWithComments(ctx context.Context, q querier, ddl string) error {
	if _, err := q.Exec(ctx, ddl); err != nil {
		return err
	}
	for _, c := range comments(ddl) {
		if _, err := q.Exec(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	return nil
}

// purposeMarker starts a purpose comment in the schema.
const purposeMarker = "-- purpose:"

// comments returns the COMMENT ON statements that record the purpose comments
// of the CREATE TABLE statements in ddl.
func comments(ddl string) []string {
	var out []string
	table := ""
	for _, line := range strings.Split(ddl, "\n") {
		l := strings.TrimSpace(line)
		code, purpose, hasPurpose := strings.Cut(l, purposeMarker)
		purpose = strings.TrimSpace(purpose)
		if rest, ok := strings.CutPrefix(code, "CREATE TABLE "); ok {
			rest = strings.TrimPrefix(rest, "IF NOT EXISTS ")
			table = leadingIdent(rest)
			if hasPurpose {
				out = append(out, fmt.Sprintf("COMMENT ON TABLE %s IS %s", table, quote(purpose)))
			}
			continue
		}
		if table == "" {
			continue
		}
		if strings.HasPrefix(l, ")") {
			table = ""
			continue
		}
		if col := leadingIdent(l); hasPurpose && col != "" {
			out = append(out, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", table, col, quote(purpose)))
		}
	}
	return out
}

// quote returns s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// leadingIdent returns the identifier that line starts with, or "".
func leadingIdent(line string) string {
	end := strings.IndexFunc(line, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
	if end < 0 {
		return line
	}
	return line[:end]
}
