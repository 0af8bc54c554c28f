// Package project is an uptrust project directory and the operations on it:
// init, products, releases, rollouts, and what the server serves.
//
// Layout of DIR:
//
//	uptrust.json              configuration (thresholds, lifetimes, mode)
//	uptrust.db                SQLite store: products, releases, rollouts, signed metadata, report counters, audit log, API tokens
//	blobs/sha256/..           payloads by content
//	keys/offline/*.key        root, top-level targets and product keys (encrypted unless --dev)
//	keys/online/*.key         snapshot, timestamp and fleet targets keys (0600, used by the server)
//	device/release-root.json  trusted roots to provision into devices
//	device/fleet-root.json
//	admin-token               the first management API admin token (0600; only its hash is in uptrust.db)
//
// Offline keys belong on an offline machine: a server needs only uptrust.json,
// uptrust.db, blobs/ and keys/online/.
//
// The store can instead be a PostgreSQL database (package store/postgres):
// the "database" field of uptrust.json, overridden by Options.Database (the
// CLI's --database and UPTRUST_DATABASE), names it with a postgres:// URL.
// There is then no uptrust.db; everything else stays in DIR.
package project

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/progress"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres"
	"github.com/uptrust/uptrust/internal/store/sqlite"
	"github.com/uptrust/uptrust/internal/strictjson"
	"github.com/uptrust/uptrust/internal/units"
)

// Lifetimes mirrors repo.Lifetimes in the configuration file.
type Lifetimes struct {
	Root         units.Duration `json:"root"`
	Targets      units.Duration `json:"targets"`
	Product      units.Duration `json:"product"`
	FleetTargets units.Duration `json:"fleet_targets"`
	Snapshot     units.Duration `json:"snapshot"`
	Timestamp    units.Duration `json:"timestamp"`
}

func (l Lifetimes) repo() repo.Lifetimes {
	return repo.Lifetimes{Root: time.Duration(l.Root), Targets: time.Duration(l.Targets), Product: time.Duration(l.Product),
		FleetTargets: time.Duration(l.FleetTargets), Snapshot: time.Duration(l.Snapshot), Timestamp: time.Duration(l.Timestamp)}
}

func lifetimesFrom(r repo.Lifetimes) Lifetimes {
	return Lifetimes{Root: units.Duration(r.Root), Targets: units.Duration(r.Targets), Product: units.Duration(r.Product),
		FleetTargets: units.Duration(r.FleetTargets), Snapshot: units.Duration(r.Snapshot), Timestamp: units.Duration(r.Timestamp)}
}

// Config is uptrust.json.
type Config struct {
	// FormatVersion of this file; 1.
	FormatVersion int `json:"format_version"`
	// Dev marks a development project: 1-of-1 roots, unencrypted keys.
	Dev bool `json:"dev"`
	// RootKeys and RootThreshold apply to both repositories' roots.
	RootKeys      int       `json:"root_keys"`
	RootThreshold int       `json:"root_threshold"`
	Lifetimes     Lifetimes `json:"lifetimes"`
	// MaxPayloadBytes bounds release payloads (0: no limit).
	MaxPayloadBytes int64 `json:"max_payload_bytes" zero:"ok"`
	// Retention bounds how long rows that grow with use are kept; absent
	// entries take the defaults (see Retention).
	Retention Retention `json:"retention"`
	// ReportK is the smallest report count shown exactly: smaller sums are
	// shown as "fewer than ReportK" (uptrust reports). Absent or 0 means
	// DefaultReportK.
	ReportK int `json:"report_k"`
	// KeyHolders, when present, are the people who each hold one root key
	// of both repositories under their own passphrase (uptrust init
	// --key-holders); RootKeys is their number. Absent: every root key is
	// under the project passphrase.
	KeyHolders []KeyHolder `json:"key_holders,omitempty"`
	// Database, when set, is the postgres:// URL of the PostgreSQL
	// database that holds the project's store instead of uptrust.db. It
	// must not hold a password: give that in PGPASSWORD or ~/.pgpass.
	Database string `json:"database,omitempty"`
}

// DefaultReportK is the default ReportK.
const DefaultReportK = 5

// setDefaults fills fields that older configuration files lack.
func (c *Config) setDefaults() {
	c.Retention.setDefaults()
	if c.ReportK == 0 {
		c.ReportK = DefaultReportK
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.FormatVersion != 1 {
		return fmt.Errorf("project: uptrust.json format_version %d not supported (want 1)", c.FormatVersion)
	}
	if c.RootThreshold < 1 || c.RootThreshold > c.RootKeys {
		return fmt.Errorf("project: root_threshold %d with %d root keys", c.RootThreshold, c.RootKeys)
	}
	if err := c.validateHolders(); err != nil {
		return err
	}
	if c.ReportK < 1 {
		return fmt.Errorf("project: report_k %d must be at least 1", c.ReportK)
	}
	if err := c.Retention.Validate(); err != nil {
		return err
	}
	if err := checkDatabase(c.Database, true); err != nil {
		return fmt.Errorf("project: uptrust.json database: %w", err)
	}
	return c.Lifetimes.repo().Validate()
}

// Project is an open project directory. Safe for concurrent use.
type Project struct {
	Dir    string
	Config Config
	Store  store.Store
	// Blobs holds the payloads: the project's blobs/ directory, or the
	// store given in Options.Blobs.
	Blobs blob.Storage
	Clock clock.Clock
	// Passphrase returns the passphrase for offline keys; it is called at
	// most once per Project and only when an offline key is needed.
	Passphrase func() ([]byte, error)
	// Warn receives notices a person should act on, such as a key file left
	// on the legacy KDF because its passphrase is too weak to re-encrypt it.
	Warn func(string)
	// HolderPassphrase returns the passphrase of a root key holder (see
	// Config.KeyHolders); called only when that holder's key is needed.
	HolderPassphrase func(holder string) ([]byte, error)
	// ReportRowsPerDay caps the report counters one UTC day can create
	// (DefaultReportRowsPerDay when 0).
	ReportRowsPerDay int
	// Progress shows long work (hashing, compressing, building deltas);
	// nil shows nothing.
	Progress *progress.Bar

	keys *keyring
	dsn  string // PostgreSQL URL of Store; "" for uptrust.db

	holderOnce sync.Once
	holder     string // see LeaseHolder

	waves  rolloutCache // see AssignDevice
	counts waveCounter  // see waveCounts
}

// Options for Open and Init.
type Options struct {
	Clock      clock.Clock
	Passphrase func() ([]byte, error)
	// Warn receives notices; nil discards them.
	Warn func(string)
	// HolderPassphrase returns a root key holder's passphrase.
	HolderPassphrase func(holder string) ([]byte, error)
	// Progress shows long work; nil shows nothing.
	Progress *progress.Bar
	// Database, when set, is the postgres:// URL of the store, overriding
	// uptrust.json's database; it may hold a password. Init records it in
	// uptrust.json without its password.
	Database string
	// Blobs, when set, stores the payloads instead of the project's
	// blobs/ directory (e.g. an S3 bucket, blob.OpenURL).
	Blobs blob.Storage
}

// checkDatabase checks a database URL; stored refuses a password, which
// does not belong in a file copied between machines.
func checkDatabase(dsn string, stored bool) error {
	if dsn == "" {
		return nil
	}
	if !postgres.IsURL(dsn) {
		return fmt.Errorf("%q is not a postgres:// or postgresql:// URL", postgres.Redact(dsn))
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("%s: %v", postgres.Redact(dsn), errors.Unwrap(err))
	}
	if _, has := u.User.Password(); stored && (has || u.Query().Has("password")) {
		return fmt.Errorf("%s holds a password: give it in PGPASSWORD or ~/.pgpass instead", postgres.Redact(dsn))
	}
	return nil
}

// withoutPassword returns dsn without the password in its user information.
func withoutPassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	u.User = url.User(u.User.Username())
	q := u.Query()
	if q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// DatabaseName names the store for people: the uptrust.db path, or the
// database URL without its password.
func (p *Project) DatabaseName() string {
	if p.dsn != "" {
		return postgres.Redact(p.dsn)
	}
	return p.path("uptrust.db")
}

func (o *Options) defaults() {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Passphrase == nil {
		o.Passphrase = func() ([]byte, error) { return nil, nil }
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	if o.HolderPassphrase == nil {
		o.HolderPassphrase = func(h string) ([]byte, error) {
			return nil, fmt.Errorf("project: no passphrase for key holder %s (set %s)", h, HolderEnv(h))
		}
	}
}

// Paths of the project layout.
func (p *Project) path(parts ...string) string {
	return filepath.Join(append([]string{p.Dir}, parts...)...)
}

// DeviceRootPath is where the trusted root of repository name is written for
// device provisioning.
func DeviceRootPath(dir, name string) string { return filepath.Join(dir, "device", name+"-root.json") }

// ErrNotProject is returned by Open for a directory that does not hold an
// initialised project: no uptrust.json, or no database, or an empty one.
var ErrNotProject = errors.New("project: not an uptrust project (run uptrust init --dir DIR)")

// Open opens an existing project. It never creates anything: a directory
// without uptrust.json, or whose uptrust.db is missing or empty, is
// ErrNotProject with what is missing named, and uptrust.json is decoded
// strictly (unknown fields are refused with their line and column).
func Open(ctx context.Context, dir string, o Options) (*Project, error) {
	o.defaults()
	cfgPath := filepath.Join(dir, "uptrust.json")
	b, err := os.ReadFile(cfgPath)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("%w: directory %s does not exist", ErrNotProject, dir)
		}
		return nil, fmt.Errorf("%w: %s has no uptrust.json", ErrNotProject, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	var cfg Config
	if err := strictjson.Decode(cfgPath, b, &cfg); err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Database == "" {
		o.Database = cfg.Database
	}
	if err := checkDatabase(o.Database, false); err != nil {
		return nil, fmt.Errorf("project: database: %w", err)
	}
	if o.Database == "" && !IsServerKit(dir) {
		// A server kit's database is created and seeded at its first
		// start (SeedTrusted).
		if err := checkLayout(dir); err != nil {
			return nil, err
		}
	}
	return open(ctx, dir, cfg, o)
}

// checkLayout refuses a project directory whose database is missing or
// empty: opening it would create an empty database, and the project would
// silently look like one without products.
func checkLayout(dir string) error {
	db := filepath.Join(dir, "uptrust.db")
	fi, err := os.Stat(db)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s has uptrust.json but no uptrust.db (restore the database from a backup)", ErrNotProject, dir)
	case err != nil:
		return fmt.Errorf("project: %w", err)
	case fi.IsDir():
		return fmt.Errorf("%w: %s is a directory, not a database", ErrNotProject, db)
	case fi.Size() == 0:
		return fmt.Errorf("%w: %s is empty (restore the database from a backup)", ErrNotProject, db)
	}
	return nil
}

// CheckServable reports what a server needs that the project lacks: a
// published root for each repository, and the online keys in keys/online/.
func (p *Project) CheckServable(ctx context.Context) error {
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		if _, err := p.Store.LatestMetadata(ctx, name, repo.RoleRoot); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: %s has no published root.json for the %s repository", ErrNotProject, p.DatabaseName(), name)
			}
			return fmt.Errorf("project: %s root: %w", name, err)
		}
	}
	d := p.path("keys", "online")
	ents, err := os.ReadDir(d)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("project: %s is missing: the server signs with the online keys kept there", d)
	}
	if err != nil {
		return fmt.Errorf("project: %w", err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".key") {
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("project: %s holds no keys: the server signs with the online keys kept there", d)
	}
	return nil
}

func open(ctx context.Context, dir string, cfg Config, o Options) (*Project, error) {
	var st store.Store
	var err error
	if o.Database != "" {
		st, err = postgres.Open(ctx, o.Database)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "uptrust.db"))
	}
	if err != nil {
		return nil, err
	}
	var bl blob.Storage = o.Blobs
	if bl == nil {
		fsb, err := blob.New(filepath.Join(dir, "blobs"))
		if err != nil {
			st.Close()
			return nil, err
		}
		bl = fsb
	}
	p := &Project{Dir: dir, Config: cfg, Store: st, Blobs: bl, Clock: o.Clock, Passphrase: o.Passphrase, Warn: o.Warn, HolderPassphrase: o.HolderPassphrase, Progress: o.Progress, dsn: o.Database}
	p.keys = newKeyring(p)
	return p, nil
}

// Close releases the store.
func (p *Project) Close() error { return p.Store.Close() }

// InitOptions configure a new project.
type InitOptions struct {
	Options
	// Dev makes a 1-of-1, unencrypted key set.
	Dev bool
	// Lifetimes overrides the defaults when non-zero.
	Lifetimes *repo.Lifetimes
	// KeyHolders, when set, gives each named holder one root key of both
	// repositories, encrypted under the holder's own passphrase
	// (Options.HolderPassphrase); RootThreshold of them (0: a majority) must
	// sign every root change.
	KeyHolders    []string
	RootThreshold int
}

// Init creates a project in dir, which must not contain one yet: the
// configuration, all keys, the database and both repositories, and writes
// the device root files and the first admin token (AdminTokenFile).
func Init(ctx context.Context, dir string, o InitOptions) (*Project, error) {
	o.defaults()
	if _, err := os.Stat(filepath.Join(dir, "uptrust.json")); err == nil {
		return nil, fmt.Errorf("project: %s already holds a project", dir)
	}
	cfg := Config{FormatVersion: 1, Dev: o.Dev, RootKeys: 3, RootThreshold: 2, Lifetimes: lifetimesFrom(repo.DefaultLifetimes())}
	if o.Dev {
		cfg.RootKeys, cfg.RootThreshold = 1, 1
	}
	if o.Lifetimes != nil {
		cfg.Lifetimes = lifetimesFrom(*o.Lifetimes)
	}
	if err := checkDatabase(o.Database, false); err != nil {
		return nil, fmt.Errorf("project: database: %w", err)
	}
	cfg.Database = withoutPassword(o.Database)
	if err := cfg.setHolders(o.KeyHolders, o.RootThreshold); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var pass []byte
	if !o.Dev {
		var err error
		if pass, err = o.Passphrase(); err != nil {
			return nil, err
		}
		if len(pass) == 0 {
			return nil, errors.New("project: offline keys need a passphrase (set UPTRUST_PASSPHRASE, or use --dev for an unencrypted development project)")
		}
		if err := keys.CheckPassphrase(pass); err != nil {
			return nil, fmt.Errorf("project: offline keys: %w", err)
		}
	}
	holderPass, err := holderPassphrases(cfg.KeyHolders, pass, o.HolderPassphrase)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"keys/offline", "keys/online", "device", "blobs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("project: %w", err)
		}
	}
	p, err := open(ctx, dir, cfg, o.Options)
	if err != nil {
		return nil, err
	}
	p.keys.pass, p.keys.passSet = pass, true
	p.keys.holderPass = holderPass
	if _, err := p.Store.LatestMetadata(ctx, deviceapi.RepoRelease, repo.RoleRoot); err == nil {
		p.Close()
		return nil, fmt.Errorf("project: %s already holds a project", p.DatabaseName())
	}
	if err := p.initRepos(ctx); err != nil {
		p.Close()
		return nil, err
	}
	// The first admin token of the management API, for whoever holds the
	// project directory; the server needs only the database.
	if _, err := p.BootstrapAdminToken(ctx, filepath.Join(dir, AdminTokenFile), "admin", 0); err != nil {
		p.Close()
		return nil, err
	}
	// uptrust.json last: its presence marks a complete project. It holds
	// the key holders' root key ids, known once the keys exist.
	if err := p.saveConfig(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Project) initRepos(ctx context.Context) error {
	k := p.keys
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		var roots []repo.Signer
		for i := 1; i <= p.Config.RootKeys && len(p.Config.KeyHolders) == 0; i++ {
			s, err := k.create(offlineKey(fmt.Sprintf("%s-root-%d", name, i)))
			if err != nil {
				return err
			}
			roots = append(roots, s)
		}
		for i, h := range p.Config.KeyHolders {
			s, err := k.createHolder(name, h.Name)
			if err != nil {
				return err
			}
			p.Config.KeyHolders[i].KeyIDs = append(p.Config.KeyHolders[i].KeyIDs, s.KeyID())
			roots = append(roots, s)
		}
		targetsKey := onlineKey(name + "-targets")
		if name == deviceapi.RepoRelease {
			targetsKey = offlineKey(name + "-targets")
		}
		rk := repo.RoleKeys{Root: roots, RootThreshold: p.Config.RootThreshold}
		var err error
		if rk.Targets, err = k.create(targetsKey); err != nil {
			return err
		}
		if rk.Snapshot, err = k.create(onlineKey(name + "-snapshot")); err != nil {
			return err
		}
		if rk.Timestamp, err = k.create(onlineKey(name + "-timestamp")); err != nil {
			return err
		}
		now := p.Clock.Now()
		kind := "production project"
		if len(p.Config.KeyHolders) > 0 {
			kind += ", root keys held by " + strings.Join(p.Config.Holders(), ", ") + " under their own passphrases"
		}
		if p.Config.Dev {
			kind = "development project (unencrypted 1-of-1 keys)"
		}
		err = p.Store.Update(ctx, func(tx store.Tx) error {
			if err := repo.Init(ctx, tx, name, now, p.Config.Lifetimes.repo(), rk); err != nil {
				return err
			}
			return audit(ctx, tx, now, ActionInit, name, fmt.Sprintf("%s repository created: root threshold %d of %d; %s",
				name, p.Config.RootThreshold, p.Config.RootKeys, kind))
		})
		if err != nil {
			return err
		}
	}
	return p.WriteDeviceRoots(ctx)
}

// WriteDeviceRoots writes the latest root of each repository to device/.
func (p *Project) WriteDeviceRoots(ctx context.Context) error {
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		m, err := p.Store.LatestMetadata(ctx, name, repo.RoleRoot)
		if err != nil {
			return fmt.Errorf("project: %s root: %w", name, err)
		}
		if err := atomicfile.WriteFile(DeviceRootPath(p.Dir, name), m.Body, 0o644); err != nil {
			return fmt.Errorf("project: %w", err)
		}
	}
	return nil
}

// Lifetimes returns the configured metadata lifetimes.
func (p *Project) Lifetimes() repo.Lifetimes { return p.Config.Lifetimes.repo() }
