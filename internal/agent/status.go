package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/units"
)

// Status is what `uptrust-agent status` shows the owner. The JSON field
// names are stable: new fields may be added, none is renamed or removed.
type Status struct {
	Product            string    `json:"product"`
	Hardware           string    `json:"hardware"`
	Version            string    `json:"version"`
	SecurityVersion    uint64    `json:"security_version"`
	MaxSecurityVersion uint64    `json:"max_security_version"`
	BootedSlot         slot.Name `json:"booted_slot,omitempty"`
	Phase              Phase     `json:"phase"`
	Installing         string    `json:"installing,omitempty"`
	LastCheck          *Check    `json:"last_check,omitempty"`
	// LastDelta says whether the latest install used a delta, and if not, why.
	LastDelta     *DeltaOutcome      `json:"last_delta,omitempty"`
	SupportUntil  string             `json:"support_until,omitempty"`
	Failed        map[string]Failure `json:"failed,omitempty"`
	QueuedReports int                `json:"queued_reports"`
	Warnings      []string           `json:"warnings,omitempty"`

	// Offered lists the versions offered at the last successful refresh,
	// highest first.
	Offered []string `json:"offered,omitempty"`
	// LastRefresh is when fresh signed metadata last arrived.
	LastRefresh *time.Time `json:"last_refresh,omitempty"`
	// MetadataStale is true when that was longer ago than stale_after.
	MetadataStale bool `json:"metadata_stale"`
	// Waiting lists releases held for the owner and why.
	Waiting []Waiting `json:"waiting,omitempty"`
	// AutoUpdates is "on" or "off" (the owner's choice).
	AutoUpdates         string     `json:"auto_updates"`
	AutoUpdatesOffSince *time.Time `json:"auto_updates_off_since,omitempty"`
	// PostponedUntil is set while a postponement is in force.
	PostponedUntil *time.Time `json:"postponed_until,omitempty"`
	// Consents maps versions to when the owner consented.
	Consents map[string]time.Time `json:"consents,omitempty"`
	// MakerPolicy is the policy of the accepted support declaration (or
	// the default when it has none).
	MakerPolicy release.Policy `json:"maker_policy"`
	// SupportEnded is true after the last day of support.
	SupportEnded   bool   `json:"support_ended"`
	SupportContact string `json:"support_contact,omitempty"`
	// SupportRefused is a shortened declaration the agent refused.
	SupportRefused *SupportRefusal `json:"support_refused,omitempty"`
	// OwnerHistory lists the owner's decisions, oldest first.
	OwnerHistory []OwnerChange `json:"owner_history,omitempty"`
	// Download counts the payload bytes received for the release being
	// installed or, when none is, for the last release downloaded,
	// re-downloaded bytes included.
	Download *DownloadCount `json:"download,omitempty"`
	// DownloadSaved is how many bytes of the payload being installed are
	// durable in the slot (of its delta, in the data directory, while a
	// delta download is saved); the download resumes from there.
	DownloadSaved int64 `json:"download_saved,omitempty"`
	// DownloadRateLimit is the configured limit in bytes per second (0:
	// none).
	DownloadRateLimit units.ByteRate `json:"download_rate_limit,omitempty"`
	// ClockBehind is set while the clock reads earlier than the time the
	// agent's build, the provisioning or the last successful check proves
	// has passed; checks use that time instead.
	ClockBehind *ClockBehind `json:"clock_behind,omitempty"`
	// Mode is "anonymous" or "managed".
	Mode string `json:"mode"`
	// DeviceKeyID is the managed device's keyid (devauth.KeyID), empty
	// until the key exists. The key itself is never shown.
	DeviceKeyID string `json:"device_key_id,omitempty"`
	// Enrolment is what the server last said about the managed device.
	Enrolment *Enrolment `json:"enrolment,omitempty"`
	// Window is the maintenance window kept from the last successful
	// check (window.go); nil when the release last offered has none.
	Window *KeptWindow `json:"maintenance_window,omitempty"`
	// WindowOpen says whether the window is open now; NextInstall is when
	// the release waiting in the slot (Ready) or being downloaded may be
	// installed next: now while the window is open, else its next opening.
	WindowOpen  bool       `json:"maintenance_window_open,omitempty"`
	NextInstall *time.Time `json:"next_install,omitempty"`
	// ReadyToInstall is set while a release waits in the inactive slot,
	// written and verified, for the window.
	ReadyToInstall bool `json:"ready_to_install,omitempty"`
}

// ReadStatus assembles the status from state.json and the bootloader. It
// does not touch the network.
func ReadStatus(ctx context.Context, cfg *Config, slots slot.Backend, now time.Time) (*Status, error) {
	s, err := LoadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	st := &Status{Product: cfg.Product, Hardware: cfg.Hardware, Version: s.Version, SecurityVersion: s.SecurityVersion,
		MaxSecurityVersion: s.MaxSecurityVersion, Phase: s.Phase, LastCheck: s.LastCheck, LastDelta: s.LastDelta, Failed: s.Failed,
		Offered: s.Offered, LastRefresh: s.LastRefresh, Waiting: s.Waiting, AutoUpdates: "on",
		MakerPolicy: s.Support.EffectivePolicy(), SupportRefused: s.SupportRefused, OwnerHistory: s.Owner.History}
	if len(s.Owner.Consents) > 0 {
		st.Consents = s.Owner.Consents
	}
	if slots != nil {
		if bs, err := slots.State(ctx); err == nil {
			st.BootedSlot = bs.Booted
		} else {
			st.Warnings = append(st.Warnings, "cannot read the bootloader state: "+err.Error())
		}
	}
	if s.Pending != nil {
		st.Installing = s.Pending.Version
		if d := s.Pending.Progress; d != nil {
			st.DownloadSaved = d.Offset
		}
	}
	st.windowStatus(s, now)
	st.Download = lastDownload(s)
	st.DownloadRateLimit = cfg.DownloadRateLimit
	if s.Support != nil {
		st.SupportUntil, st.SupportContact = s.Support.Until, s.Support.Contact
		if t, err := time.Parse(time.DateOnly, s.Support.Until); err == nil && now.After(t.Add(24*time.Hour)) {
			st.SupportEnded = true
			st.Warnings = append(st.Warnings, fmt.Sprintf("security support for this device ended on %s", s.Support.Until))
		}
	}
	if r := s.Recovered; r != nil {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the agent's state was unreadable on %s and was recovered: %s", r.At.Format(timeFormat), r.What))
	}
	if r := s.SupportRefused; r != nil {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the maker signed a support declaration ending on %s, earlier than the %s accepted on this device; "+
			"it was refused (support can be extended, never shortened) and reported", r.OfferedUntil, r.AcceptedUntil))
	}
	if off := s.Owner.AutoUpdatesOffSince; off != nil {
		st.AutoUpdates, st.AutoUpdatesOffSince = "off", off
		st.Warnings = append(st.Warnings, fmt.Sprintf("automatic updates are off since %s (owner's choice): security fixes are not installed; "+
			"turn them on with uptrust-agent policy auto-updates on", off.UTC().Format(timeFormat)))
	}
	if u := s.Owner.PostponedUntil; u != nil && now.Before(*u) {
		st.PostponedUntil = u
	}
	if cb := s.ClockBehind; cb != nil {
		st.ClockBehind = cb
		st.Warnings = append(st.Warnings, cb.message())
	}
	if ref, stale := staleSince(s, cfg, now); stale {
		st.MetadataStale = true
		st.Warnings = append(st.Warnings, staleMessage(ref, now))
	}
	if cfg.Managed() {
		st.managedStatus(cfg)
	} else {
		st.Mode = ModeAnonymous
	}
	q := &reportQueue{dir: reportsDir(cfg)}
	if files, err := q.pending(); err == nil {
		st.QueuedReports = len(files)
	}
	if s.LastCheck == nil {
		st.Warnings = append(st.Warnings, "no update check has run yet")
	} else if now.Sub(s.LastCheck.At) > 3*time.Duration(cfg.PollInterval) {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the last update check was %s ago", now.Sub(s.LastCheck.At).Round(time.Minute)))
	}
	return st, nil
}

// WriteText prints the status for a person.
func (st *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "product:          %s (hardware %s)\n", st.Product, st.Hardware)
	fmt.Fprintf(w, "running:          %s (security version %d) in slot %s\n", st.Version, st.SecurityVersion, orDash(string(st.BootedSlot)))
	if st.SupportUntil != "" {
		line := st.SupportUntil
		if st.SupportEnded {
			line += " (ended; releases the maker still signs are installed)"
		}
		if st.SupportContact != "" {
			line += ", contact " + st.SupportContact
		}
		fmt.Fprintf(w, "supported until:  %s\n", line)
	}
	if st.Installing != "" {
		fmt.Fprintf(w, "installing:       %s (step: %s)\n", st.Installing, st.Phase)
	}
	if d := st.Download; d != nil {
		fmt.Fprintf(w, "download:         %s\n", st.downloadLine())
	}
	st.writeWindow(w)
	if ld := st.LastDelta; ld != nil && !ld.Used {
		fmt.Fprintf(w, "delta:            %s from %s not used on %s: %s\n", ld.Version, ld.From, ld.At.UTC().Format(timeFormat), ld.Reason)
	}
	if c := st.LastCheck; c != nil {
		fmt.Fprintf(w, "last check:       %s\n", c.At.Format(time.RFC3339))
		offered := c.Offered
		if len(st.Offered) > 0 {
			offered = strings.Join(st.Offered, ", ")
		}
		fmt.Fprintf(w, "offered:          %s\n", orDash(offered))
		fmt.Fprintf(w, "decision:         %s\n", c.Action)
		fmt.Fprintf(w, "why:              %s\n", c.Reason)
		if c.ErrorClass != "" {
			fmt.Fprintf(w, "error class:      %s\n", c.ErrorClass)
		}
	}
	for _, wt := range st.Waiting {
		fmt.Fprintf(w, "waiting:          %s (%s) %s\n", wt.Version, wt.Kind, wt.Reason)
		if wt.SecurityOnlyOf != "" {
			fmt.Fprintf(w, "                    security-only build of %s\n", wt.SecurityOnlyOf)
		}
		for _, r := range wt.ImpactReasons {
			fmt.Fprintf(w, "                    impact: %s\n", r)
		}
		for _, a := range wt.Advisories {
			fmt.Fprintf(w, "                    fixes: %s\n", advisory(a))
		}
	}
	fmt.Fprintf(w, "auto-updates:     %s", st.AutoUpdates)
	if st.AutoUpdatesOffSince != nil {
		fmt.Fprintf(w, " since %s (owner's choice)", st.AutoUpdatesOffSince.UTC().Format(timeFormat))
	}
	fmt.Fprintf(w, "; the maker installs %s releases without adverse impact automatically\n", kinds(st.MakerPolicy.AutoInstall))
	if st.PostponedUntil != nil {
		fmt.Fprintf(w, "postponed until:  %s (owner's choice; the maker allows up to %d days)\n",
			st.PostponedUntil.UTC().Format(timeFormat), st.MakerPolicy.MaxPostponeDays)
	}
	for _, v := range sortedKeys(st.Consents) {
		fmt.Fprintf(w, "consented:        %s on %s\n", v, st.Consents[v].UTC().Format(timeFormat))
	}
	for _, v := range sortedKeys(st.Failed) {
		f := st.Failed[v]
		fmt.Fprintf(w, "failed release:   %s (%s) %s\n", v, f.ErrorClass, f.Reason)
	}
	if st.Mode == ModeManaged {
		st.writeManaged(w)
	}
	fmt.Fprintf(w, "queued reports:   %d\n", st.QueuedReports)
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "WARNING:          %s\n", warn)
	}
}

// lastDownload is the counter of the pending release (of its delta while
// the delta's download is saved, or once the release was installed from
// it), else the newest.
func lastDownload(s *State) *DownloadCount {
	p := s.Pending
	for i := len(s.Downloads) - 1; i >= 0; i-- {
		d := s.Downloads[i]
		switch {
		case p == nil,
			p.Delta == nil && d.Version == p.Version && d.SHA256 == p.SHA256,
			// Installed from its delta, now arming or rebooting.
			p.Delta == nil && d.Version == p.Version && d.DeltaFrom != "" && s.LastDelta != nil && s.LastDelta.Used && s.LastDelta.Version == p.Version,
			p.Delta != nil && d.Version == p.Version && d.SHA256 == p.Delta.SHA256 && d.DeltaFrom == p.Delta.From:
			return &d
		}
	}
	return nil
}

// downloadLine says what the download of st.Download cost and, while it
// is in progress, how far it got.
func (st *Status) downloadLine() string {
	d := st.Download
	what := "payload"
	if d.DeltaFrom != "" {
		what = "delta from " + d.DeltaFrom
	}
	line := fmt.Sprintf("%s, %s %s: %s received in %d request", d.Version, what, size(d.Length), size(d.Bytes), d.Requests)
	if d.Requests != 1 {
		line += "s"
	}
	if d.Resumed > 0 || d.Restarts > 0 {
		line += fmt.Sprintf(" (%d resumed, %d restarted from zero)", d.Resumed, d.Restarts)
	}
	switch {
	case d.Complete:
		line += "; complete"
	case st.Installing == d.Version && st.DownloadSaved > 0:
		line += fmt.Sprintf("; %s saved, resumes from there", size(st.DownloadSaved))
	case st.Installing == d.Version:
		line += "; in progress"
	default:
		line += "; not completed"
	}
	if st.DownloadRateLimit > 0 {
		line += fmt.Sprintf("; limit %s/s", st.DownloadRateLimit)
	}
	return line
}

// size shows a byte count exactly and, from 1 KiB, in binary units too.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%d bytes (%.1f GiB)", n, float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d bytes (%.1f KiB)", n, float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// advisory shows an advisory as "CVE-2026-1234: summary".
func advisory(a release.Advisory) string {
	if a.Summary == "" {
		return a.ID
	}
	return a.ID + ": " + a.Summary
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func reportsDir(cfg *Config) string { return cfg.DataDir + "/reports" }

// managedStatus fills the managed-mode fields from the key file and
// device.json; problems become warnings.
func (st *Status) managedStatus(cfg *Config) {
	st.Mode = ModeManaged
	id, err := DeviceKeyID(cfg.KeyFile)
	switch {
	case err == nil:
		st.DeviceKeyID = id
	case errors.Is(err, ErrNoDeviceKey):
		st.Warnings = append(st.Warnings, "managed mode: no device key yet; it is created, and the device enrolled, at the first check")
		return
	default:
		st.Warnings = append(st.Warnings, err.Error())
		return
	}
	e, err := LoadEnrolment(cfg.DataDir)
	if err != nil {
		st.Warnings = append(st.Warnings, err.Error())
		return
	}
	if e == nil || e.KeyID != id {
		st.Warnings = append(st.Warnings, "managed mode: not enrolled yet; the device enrols at the next check")
		return
	}
	st.Enrolment = e
	switch e.State {
	case EnrolRejected, EnrolDecommissioned:
		st.Warnings = append(st.Warnings, refusal(e))
	case EnrolPending:
		st.Warnings = append(st.Warnings, fmt.Sprintf("enrolment pending (device id %s): no update is installed until the server accepts this device", e.DeviceID))
	}
	if p := e.Problem; p != nil && e.State != EnrolRejected && e.State != EnrolDecommissioned {
		st.Warnings = append(st.Warnings, "the last enrolment failed: "+p.Error())
	}
}

// writeManaged prints the managed-mode lines.
func (st *Status) writeManaged(w io.Writer) {
	fmt.Fprintf(w, "mode:             managed, device key %s\n", orDash(st.DeviceKeyID))
	e := st.Enrolment
	switch {
	case e == nil:
		fmt.Fprintf(w, "enrolment:        not enrolled yet\n")
	case e.State == EnrolPending:
		fmt.Fprintf(w, "enrolment:        enrolment pending (device id %s)\n", e.DeviceID)
	case e.State == EnrolAccepted:
		fmt.Fprintf(w, "enrolment:        accepted (device id %s)\n", e.DeviceID)
	case e.State == EnrolRejected || e.State == EnrolDecommissioned:
		fmt.Fprintf(w, "enrolment:        REFUSED: %s\n", refusal(e))
	default:
		fmt.Fprintf(w, "enrolment:        unknown\n")
	}
}
