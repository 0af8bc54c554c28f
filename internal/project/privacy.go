package project

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/devnonce"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/store"
)

// PrivacyReport says what the server stores, for how long and why, what
// devices send and what the server logs. It is generated: the tables and
// columns from the live database schema (store.Store.Describe and its
// "-- purpose:" comments), the periods and thresholds from uptrust.json,
// the report fields from report.Report, the rate limit from the server's
// defaults. Nothing lists tables by hand, so a new table shows up in the
// report the moment it exists in the database.
type PrivacyReport struct {
	Generated time.Time `json:"generated"`
	// Mode is the privacy mode of the project: "anonymous" while every
	// product is anonymous, otherwise "managed: " and the managed
	// products with their declared inventory fields.
	Mode     string         `json:"mode"`
	Database string         `json:"database"`
	Tables   []TablePrivacy `json:"tables"`
	// ReportK is the threshold below which uptrust reports hides counts.
	ReportK int `json:"report_k"`
	// DeviceReport lists the fields of the one message devices send.
	DeviceReport []ReportField `json:"device_report"`
	// DeviceRequests describes the requests devices make to read updates.
	DeviceRequests string `json:"device_requests"`
	// ClientAddressesStored and ClientAddressesLogged are always false:
	// no table has a place for an address and the server redacts them
	// from its logs. ClientAddresses says so in words.
	ClientAddressesStored bool     `json:"client_addresses_stored"`
	ClientAddressesLogged bool     `json:"client_addresses_logged"`
	ClientAddresses       string   `json:"client_addresses"`
	RateLimit             string   `json:"rate_limit"`
	ServerLogs            []string `json:"server_logs"`
	NotCovered            []string `json:"not_covered"`
}

// TablePrivacy is one table of the live schema with its retention.
type TablePrivacy struct {
	Name    string         `json:"name"`
	Purpose string         `json:"purpose"`
	Columns []ColumnReport `json:"columns"`
	// Retention is the configured period, absent when the rows are kept
	// until the operator deletes them.
	Retention *Period `json:"retention,omitempty"`
	// Kept says in words how long rows stay and why.
	Kept string `json:"kept"`
}

// ColumnReport is one column of a TablePrivacy.
type ColumnReport struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Purpose string `json:"purpose"`
}

// ReportField is one field of the anonymous report devices send.
type ReportField struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// KeptUntilDeleted starts the Kept text of a table without a retention
// period.
const KeptUntilDeleted = "kept until deleted by the operator"

// keptReasons says why a table without a retention period keeps its rows.
// It is not a list of tables: the report lists what the database holds,
// and a table missing here is reported as kept with no reason recorded.
// TestPrivacyReportCoversLiveSchema fails when a table of the schema has
// neither a retention period nor a reason.
var keptReasons = map[string]string{
	"products":            "product lines are the operator's own definitions of what they publish, not records of device activity",
	"releases":            "releases are the product itself: devices verify and install them, and the published history must stay complete",
	"rollouts":            "one row per product holds the current offer; a change replaces it rather than adding a row",
	"metadata":            "signed TUF metadata is the product itself: devices need every root version to follow key rotations, and documents are append-only",
	"schema_migrations":   "one row per schema upgrade of this database file, needed to upgrade it safely",
	"generation":          "a single counter row",
	"rollout_completions": "one row per release whose rollout reached every device: the delivery record the compliance report measures timeliness from",
	"attestations":        "the manufacturer's statements of compliance evidence are a record the manufacturer must be able to show; a withdrawn one is kept with the time it was withdrawn",
	"markets":             "one row per product: the manufacturer's declaration the support period is measured from",
	"audit_chain":         "a single row: the anchor (last purged audit entry) and head of the audit hash chain, without which the remaining entries cannot be verified",
	"leases":              "one row per job that only one server may do at a time (re-signing), replaced when another server takes it over",
	"settings":            "at most one row per runtime setting (report threshold, retention periods), replaced when it changes; who changed it is in the audit log",
	"device_policies":     "one row per product in managed mode or with declared inventory fields, replaced when the operator changes them",
	"devices":             "one row per enrolled device of a managed product while it is in the fleet: uptrust device erase removes it (with its events and key), decommissioning keeps it refused until erased",
	"enrollment_tokens":   "one row per enrolment token the operator created, kept so a device's enrolment can be traced to its token; revoke tokens no longer needed",
	"preauthorized_keys":  "one row per device key the operator pre-authorised until that device enrols (the row then goes) or is erased",
	"managed_rollouts":    "one row per rollout in waves the operator started: its plan, selection filter and decision state, the record of what was offered to whom and why it halted; it names no device (devices are selected by the filter when they ask)",
	"device_labels":       "one row per group or tag the operator gave a managed device, kept while the device is in the fleet: uptrust device group/tag remove deletes one, uptrust device erase removes them all with the device",
}

// reportFieldDocs describes the fields of report.Report by JSON name. The
// fields themselves are read from the type; TestPrivacyReportFields fails
// when one has no description here.
var reportFieldDocs = map[string]string{
	"product":     "the product name the device was built for, as published by the operator",
	"version":     "the release version the report is about",
	"outcome":     "one of " + outcomeList(),
	"error_class": "a coarse failure class such as health-check or hash, empty on success; a short token, never free text",
}

// outcomeList is the outcomes a report may carry: "installed, rolled_back,
// failed, rejected".
func outcomeList() string {
	var s []string
	for _, o := range report.Outcomes() {
		s = append(s, string(o))
	}
	return strings.Join(s, ", ")
}

// PrivacyReport builds the report from the live database and configuration.
func (p *Project) PrivacyReport(ctx context.Context) (*PrivacyReport, error) {
	tables, err := p.Store.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: privacy report: %w", err)
	}
	rs, err := p.Runtime(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: privacy report: %w", err)
	}
	mode, err := p.privacyMode(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: privacy report: %w", err)
	}
	r := &PrivacyReport{
		Generated: p.Clock.Now().UTC(),
		Mode:      mode,
		Database:  p.DatabaseName(),
		ReportK:   rs.ReportK,
		DeviceRequests: "devices read the signed repositories under /repo/ with plain GET requests that carry no identifier: " +
			"no cookies, no credentials, no query strings, and the same User-Agent on every device and version; " +
			"each device computes its rollout share from a random seed that never leaves it",
		ClientAddresses: "Not stored: no table has a column for them, and a report is added to a daily counter and then dropped. " +
			"Managed devices are known by their key only: the device API (enrolment, state, events, signed /repo/ requests) reads no client address and stores none, " +
			"not even truncated (the devices, device_events and device_nonces tables have no column for one). " +
			"Not logged: the server writes no line per request, and client addresses in net/http's own error messages are replaced by [redacted]",
		RateLimit: fmt.Sprintf("Reports are rate-limited in memory by a token bucket per client address (%d per second, bursts of %d) "+
			"and one in total (%d per second, bursts of %d), unless configured otherwise; the per-address table holds a keyed hash "+
			"of each address (random key per process, never the address), forgets it once its bucket has refilled, and is never "+
			"stored or logged. Reports naming a product or version that is not in the release repository are refused unstored, "+
			"and a day's report counters are capped (%d rows unless configured otherwise)",
			server.DefaultReportClientRate, server.DefaultReportClientBurst, server.DefaultReportRate, server.DefaultReportBurst,
			p.reportRowsPerDay()),
		ServerLogs: []string{
			"start and stop: the server's own listening address, whether TLS is on, the project directory",
			"content reloads: the store generation and how many documents are served",
			"re-signing of online metadata close to expiry",
			"errors: payload files missing or of the wrong size (with the URL path, which names a release, not a device); failures to store a report; net/http errors with client addresses redacted",
			"retention purges: the table and how many rows were removed",
			"never: requests, client addresses, report contents",
		},
		NotCovered: []string{
			"a reverse proxy, load balancer or CDN in front of the server keeps its own logs, usually with client addresses; configure their retention separately",
			"backups of uptrust.db keep purged rows until the backups themselves expire",
		},
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[report.Report]()) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		r.DeviceReport = append(r.DeviceReport, ReportField{Name: name, Description: reportFieldDocs[name]})
	}
	for _, t := range tables {
		r.Tables = append(r.Tables, tablePrivacy(t, rs))
	}
	return r, nil
}

func tablePrivacy(t store.Table, rs RuntimeSettings) TablePrivacy {
	tp := TablePrivacy{Name: t.Name, Purpose: t.Purpose, Columns: make([]ColumnReport, len(t.Columns))}
	for i, c := range t.Columns {
		tp.Columns[i] = ColumnReport(c)
	}
	if per, ok := rs.Retention.Period(t.Name); ok {
		src := "in uptrust.json"
		if slices.Contains(rs.Overridden, "retention."+t.Name) {
			src = "set by uptrust settings set"
		}
		tp.Retention = &per
		tp.Kept = fmt.Sprintf("deleted %s after it was recorded (retention.%s in uptrust.json), by uptrust purge and hourly by uptrust serve",
			humanPeriod(per), t.Name)
		tp.Kept = strings.Replace(tp.Kept, "in uptrust.json", src, 1)
		switch t.Name {
		case store.TableReportCounts:
			tp.Kept = fmt.Sprintf("a daily counter is deleted once its day began more than %s ago (retention.%s %s), by uptrust purge and hourly by uptrust serve",
				humanPeriod(per), t.Name, src)
		case store.TableAudit:
			tp.Kept += fmt.Sprintf("; the log is a hash chain, so a purge removes its oldest entries up to the last one older than %s and records that entry's sequence number and hash in audit_chain as the anchor uptrust audit verify starts from",
				humanPeriod(per))
			tp.Kept += ". Every entry records who acted: the name and role of the management API token used (or cli), with the API request id. Token names are chosen by the operator and are kept in the log for this whole period, also after the token is revoked and deleted: name tokens after a job or system (ci, ops-oncall), not a person" +
				". Entries of device management (device.*) name a managed device by its random id, never its key or inventory; they outlive uptrust device erase, which removes everything else about the device"
		case store.TableTokens:
			tp.Kept = fmt.Sprintf("a token is deleted %s after it was revoked or expired (retention.%s %s), by uptrust purge and hourly by uptrust serve; tokens in use are kept",
				humanPeriod(per), t.Name, src)
		}
		return tp
	}
	if t.Name == store.TableDeviceNonces {
		tp.Kept = fmt.Sprintf("a row lives while its request's signature window is open (at most %s), then %s more so that servers whose clocks differ still refuse a replay; "+
			"deleted by the server itself while it records nonces (at most every %s) and by uptrust purge, so the table holds the last minutes of managed devices' enrolments and events only",
			humanPeriod(Period(2*devauth.DefaultSkew)), humanPeriod(Period(devnonce.Margin)), humanPeriod(Period(devnonce.PurgeEvery)))
		return tp
	}
	if why, ok := keptReasons[t.Name]; ok {
		tp.Kept = KeptUntilDeleted + ": " + why
	} else {
		tp.Kept = KeptUntilDeleted + ": no reason is recorded for this table; review what it holds and give it a retention period if it grows with device activity"
	}
	return tp
}

// humanPeriod writes "400 days" for whole days and a duration otherwise.
func humanPeriod(p Period) string {
	d := time.Duration(p)
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// privacyMode describes the products in managed mode, or says anonymous.
func (p *Project) privacyMode(ctx context.Context) (string, error) {
	products, err := p.Store.Products(ctx)
	if err != nil {
		return "", err
	}
	var managed []string
	for _, pr := range products {
		pol, err := p.DevicePolicy(ctx, pr.Name)
		if err != nil {
			return "", err
		}
		if pol.Mode == store.ModeManaged {
			managed = append(managed, fmt.Sprintf("%s (devices enrol with a key; inventory fields: %s)", pr.Name, strings.Join(append([]string{}, pol.Inventory...), ", ")))
		}
	}
	if len(managed) == 0 {
		return store.ModeAnonymous, nil
	}
	return "managed: " + strings.Join(managed, "; "), nil
}
