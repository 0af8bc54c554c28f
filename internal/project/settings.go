package project

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/store"
)

// Runtime settings: the settings of uptrust.json that may change while
// servers run. Their overrides live in the store (the settings table), so
// every server on one database applies the same values; uptrust.json
// holds the defaults. An override wins over uptrust.json.
//
// Invariant: every value the project uses for report_k and the retention
// periods comes from Runtime, never from Config directly, so an override
// applies to reports, purges and the privacy report alike.

// ActionSettingsChange is the audit action of a settings change.
const ActionSettingsChange = "settings.change"

// Names of the runtime settings, as overrides are stored and as the CLI
// and API name them in errors.
const (
	SettingReportK               = "report_k"
	SettingRetentionReportCounts = "retention." + store.TableReportCounts
	SettingRetentionAudit        = "retention." + store.TableAudit
	SettingRetentionTokens       = "retention." + store.TableTokens
	SettingRetentionDeviceEvents = "retention." + store.TableDeviceEvents
)

// SettingNames lists the runtime settings in the order they are shown.
var SettingNames = []string{SettingReportK, SettingRetentionReportCounts, SettingRetentionAudit, SettingRetentionTokens,
	SettingRetentionDeviceEvents}

// RuntimeSettings are the values in effect: uptrust.json's, with the
// stored overrides applied.
type RuntimeSettings struct {
	ReportK   int       `json:"report_k"`
	Retention Retention `json:"retention"`
	// Overridden names the settings whose value comes from the database
	// rather than uptrust.json, in SettingNames order.
	Overridden []string `json:"overridden"`
	// ETag identifies these values and overrides: it changes with every
	// settings change (If-Match of PATCH /api/v1/settings).
	ETag string `json:"-"`
}

// value returns the text of setting name.
func (s RuntimeSettings) value(name string) string {
	if name == SettingReportK {
		return strconv.Itoa(s.ReportK)
	}
	per, _ := s.Retention.Period(strings.TrimPrefix(name, "retention."))
	return per.String()
}

// set parses and applies v to setting name; the error names the setting.
func (s *RuntimeSettings) set(name, v string) error {
	if name == SettingReportK {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			return fmt.Errorf("%s %q: want a whole number of at least 1", name, v)
		}
		s.ReportK = k
		return nil
	}
	per, err := ParsePeriod(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if per < MinRetention {
		return fmt.Errorf("%s %q: want at least %s", name, v, MinRetention)
	}
	switch name {
	case SettingRetentionReportCounts:
		s.Retention.ReportCounts = per
	case SettingRetentionAudit:
		s.Retention.Audit = per
	case SettingRetentionTokens:
		s.Retention.Tokens = per
	case SettingRetentionDeviceEvents:
		s.Retention.DeviceEvents = per
	default:
		return fmt.Errorf("unknown setting %q (known: %s)", name, strings.Join(SettingNames, ", "))
	}
	return nil
}

// ErrSetting marks a settings change refused for its input: an unknown
// setting or an invalid value. Its message names the setting.
var ErrSetting = errors.New("invalid setting")

// Runtime returns the settings in effect now.
func (p *Project) Runtime(ctx context.Context) (RuntimeSettings, error) {
	rs, err := p.runtime(ctx, p.Store)
	if err != nil {
		return RuntimeSettings{}, fmt.Errorf("project: settings: %w", err)
	}
	return rs, nil
}

func (p *Project) runtime(ctx context.Context, r store.Reader) (RuntimeSettings, error) {
	over, err := r.Settings(ctx)
	if err != nil {
		return RuntimeSettings{}, err
	}
	rs := RuntimeSettings{ReportK: p.Config.ReportK, Retention: p.Config.Retention, Overridden: []string{}}
	h := sha256.New()
	for _, o := range over {
		if !slices.Contains(SettingNames, o.Name) {
			// A newer uptrust's setting: not this one's to apply.
			continue
		}
		if err := rs.set(o.Name, o.Value); err != nil {
			return RuntimeSettings{}, fmt.Errorf("stored override: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", o.Name, o.Value, o.Updated.UnixNano())
	}
	for _, n := range SettingNames {
		if slices.ContainsFunc(over, func(o store.Setting) bool { return o.Name == n }) {
			rs.Overridden = append(rs.Overridden, n)
		}
		fmt.Fprintf(h, "%s=%s\x00", n, rs.value(n))
	}
	rs.ETag = `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
	return rs, nil
}

// ChangeSettings applies change, which maps setting names to their new
// value as text ("7", "400d"); the empty value removes the override, so
// the setting takes uptrust.json's value again. When ifMatch is not "" it
// must be the current settings' ETag, checked in the same transaction as
// the change (else ErrStale). Unknown names and invalid values are refused
// with ErrSetting, naming the setting, and change nothing. A change that
// succeeds leaves one audit entry settings.change listing each
// changed setting as "name old -> new" (a change to the values in effect
// is recorded as "unchanged: name value"). It returns the settings before and after.
func (p *Project) ChangeSettings(ctx context.Context, change map[string]string, ifMatch string) (before, after RuntimeSettings, err error) {
	if len(change) == 0 {
		return before, after, fmt.Errorf("project: settings: %w: nothing to change (known: %s)", ErrSetting, strings.Join(SettingNames, ", "))
	}
	names := make([]string, 0, len(change))
	for n := range change {
		if !slices.Contains(SettingNames, n) {
			return before, after, fmt.Errorf("project: settings: %w: unknown setting %q (known: %s)", ErrSetting, n, strings.Join(SettingNames, ", "))
		}
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return slices.Index(SettingNames, a) - slices.Index(SettingNames, b) })
	// Check the values before the transaction, so bad input is refused
	// whatever the database holds.
	probe := RuntimeSettings{Retention: p.Config.Retention}
	for _, n := range names {
		if v := change[n]; v != "" {
			if err := probe.set(n, v); err != nil {
				return before, after, fmt.Errorf("project: settings: %w: %v", ErrSetting, err)
			}
		}
	}
	now := p.Clock.Now().UTC()
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		if before, err = p.runtime(ctx, tx); err != nil {
			return err
		}
		if ifMatch != "" && ifMatch != before.ETag {
			return ErrStale
		}
		for _, n := range names {
			v := change[n]
			if v == "" {
				err = tx.DeleteSetting(ctx, n)
			} else {
				// Stored as uptrust writes it, so "0400d" reads "400d".
				tmp := before
				_ = tmp.set(n, v)
				err = tx.PutSetting(ctx, store.Setting{Name: n, Value: tmp.value(n), Updated: now})
			}
			if err != nil {
				return err
			}
		}
		if after, err = p.runtime(ctx, tx); err != nil {
			return err
		}
		var diffs []string
		for _, n := range names {
			was, is := before.value(n), after.value(n)
			src := ""
			if change[n] == "" {
				src = " (uptrust.json)"
			}
			if was != is || slices.Contains(before.Overridden, n) != slices.Contains(after.Overridden, n) {
				diffs = append(diffs, fmt.Sprintf("%s %s -> %s%s", n, was, is, src))
			}
		}
		if len(diffs) == 0 {
			// Asked for and done, though nothing differs: recorded, so
			// every change request has its entry.
			for _, n := range names {
				diffs = append(diffs, n+" "+after.value(n))
			}
			return audit(ctx, tx, now, ActionSettingsChange, "settings", "unchanged: "+strings.Join(diffs, ", "))
		}
		return audit(ctx, tx, now, ActionSettingsChange, "settings", strings.Join(diffs, ", "))
	})
	if errors.Is(err, ErrStale) {
		return before, after, fmt.Errorf("project: settings: %w", ErrStale)
	}
	if err != nil {
		return before, after, fmt.Errorf("project: settings: %w", err)
	}
	return before, after, nil
}

// ErrStale is returned when an If-Match no longer matches: the settings
// changed since they were read.
var ErrStale = errors.New("the settings changed since they were read")
