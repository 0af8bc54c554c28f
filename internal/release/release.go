// Package release defines what a release says about itself — the manifest
// carried in the signed target's custom metadata — and the support
// declaration of a product, with the rules that apply to them. It is pure: no
// I/O, no clock.
//
// Wire format: the manifest is the value of the "uptrust" key inside a TUF
// target's "custom" object in the release repository; the support declaration
// is the content of the target "<product>/support.json". Enum values on the
// wire are lower-case strings; new fields may be added, none is ever
// renumbered or reused.
package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// Kind says why a release exists.
type Kind string

// Release kinds.
const (
	KindSecurity Kind = "security"
	KindFix      Kind = "fix"
	KindFeature  Kind = "feature"
)

// ParseKind validates a kind string.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindSecurity, KindFix, KindFeature:
		return k, nil
	}
	return "", fmt.Errorf("release: unknown kind %q (want security, fix or feature)", s)
}

// Change is a direction of change of one impact dimension.
type Change string

// Impact directions.
const (
	ChangeNone Change = "none"
	ChangeMore Change = "more"
	ChangeLess Change = "less"
)

// Impact declares what a release changes for the owner beyond fixing things.
type Impact struct {
	// DataCollection says whether the release collects more or less data.
	DataCollection Change `json:"data_collection"`
	// DataCollectionText explains a change in data collection.
	DataCollectionText string `json:"data_collection_text,omitempty"`
	// Functionality says whether functions are added ("more") or removed ("less").
	Functionality Change `json:"functionality"`
	// FunctionalityText explains a change in functionality.
	FunctionalityText string `json:"functionality_text,omitempty"`
	// NewRecipients names parties that receive data from the device for
	// the first time with this release.
	NewRecipients []string `json:"new_recipients,omitempty"`
	// NewRecipientsText explains what they receive and why.
	NewRecipientsText string `json:"new_recipients_text,omitempty"`
}

// Adverse reports whether the impact needs the owner's consent: more data
// collection, new data recipients, or less functionality.
func (i Impact) Adverse() bool {
	return i.DataCollection == ChangeMore || i.Functionality == ChangeLess || len(i.NewRecipients) > 0
}

// Reasons lists, in plain words, why an impact needs consent.
func (i Impact) Reasons() []string {
	var out []string
	if i.DataCollection == ChangeMore {
		out = append(out, "collects more data: "+orUnexplained(i.DataCollectionText))
	}
	if len(i.NewRecipients) > 0 {
		out = append(out, fmt.Sprintf("sends data to new recipients (%s): %s", strings.Join(i.NewRecipients, ", "), orUnexplained(i.NewRecipientsText)))
	}
	if i.Functionality == ChangeLess {
		out = append(out, "removes functionality: "+orUnexplained(i.FunctionalityText))
	}
	return out
}

func orUnexplained(s string) string {
	if s == "" {
		return "(no explanation given)"
	}
	return s
}

// Advisory names a vulnerability a release fixes.
type Advisory struct {
	ID      string `json:"id"`
	Summary string `json:"summary,omitempty"`
}

// Payload describes the bytes of the target.
type Payload struct {
	// Type is the payload handler: "rootfs" (full image for the inactive slot).
	Type string `json:"type"`
	// Compression of the bytes on the wire: CompressionNone or
	// CompressionZstd. The target's TUF length and hashes always cover the
	// bytes on the wire.
	Compression string `json:"compression"`
	// ImageLength and ImageSHA256 (hex) describe the image written into
	// the slot, after decompression. Required with CompressionZstd, absent
	// otherwise (the target's own length and hashes are the image's then).
	ImageLength int64  `json:"image_length,omitempty"`
	ImageSHA256 string `json:"image_sha256,omitempty"`
}

// Payload compressions.
const (
	CompressionNone = "none"
	// CompressionZstd is a zstd stream (RFC 8878) whose frames ask for a
	// window of at most MaxZstdWindow bytes, so that a device decodes it
	// within bounded memory.
	CompressionZstd = "zstd"
)

// MaxZstdWindow is the largest zstd window a release may use: the server
// encodes with it and the agent refuses a frame that asks for more.
const MaxZstdWindow = 8 << 20

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Manifest is the release manifest. The target's TUF length and hashes cover
// the payload; the manifest covers everything else a device decides on.
type Manifest struct {
	Product         string     `json:"product"`
	Version         string     `json:"version"`
	Hardware        []string   `json:"hardware"`
	SecurityVersion uint64     `json:"security_version"`
	Kind            Kind       `json:"kind"`
	Impact          Impact     `json:"impact"`
	Notes           string     `json:"notes,omitempty"`
	Advisories      []Advisory `json:"advisories,omitempty"`
	Payload         Payload    `json:"payload"`
	Published       time.Time  `json:"published"`
	// SecurityOnly marks a build that carries only the security fixes of
	// its line, published next to a feature build (SecurityOnlyOf) for
	// owners who have not consented to that feature build. It is of kind
	// security and has no adverse impact.
	SecurityOnly   bool   `json:"security_only,omitempty"`
	SecurityOnlyOf string `json:"security_only_of,omitempty"`
	// Deltas lists the signed deltas that turn an earlier release's image
	// into this release's image (internal/delta format).
	Deltas []Delta `json:"deltas,omitempty"`
}

// Delta describes one delta of a release: its own TUF target (Target,
// Length, SHA256 over the delta bytes, signed like any target) and the
// image it applies to (the installed image of release From: SourceLength
// bytes with SHA-256 SourceSHA256). A device takes it only if its active
// slot holds exactly that image.
type Delta struct {
	From         string `json:"from"`
	Target       string `json:"target"`
	Length       int64  `json:"length"`
	SHA256       string `json:"sha256"`
	SourceLength int64  `json:"source_length"`
	SourceSHA256 string `json:"source_sha256"`
}

// DeltaTargetName is the TUF target path of the delta from release from to
// release version: "<product>/<version>.from-<from>.delta". It has two
// segments, so the product role's pattern covers it, and it is not a valid
// version, so it is never mistaken for a release.
func DeltaTargetName(product, version, from string) string {
	return product + "/" + version + ".from-" + from + ".delta"
}

// Image returns the length and hex SHA-256 of the image this release
// writes into a slot: the manifest's image fields for a compressed payload,
// else the target's own length and hash (passed in).
func (m *Manifest) Image(targetLength int64, targetSHA256 string) (int64, string) {
	if m.Payload.Compression == CompressionZstd {
		return m.Payload.ImageLength, m.Payload.ImageSHA256
	}
	return targetLength, targetSHA256
}

// DeltaFrom returns the delta from version from, or nil.
func (m *Manifest) DeltaFrom(from string) *Delta {
	for i := range m.Deltas {
		if m.Deltas[i].From == from {
			return &m.Deltas[i]
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidName checks a product or hardware revision name: lower-case letters,
// digits and dashes, at most 63 characters, starting with a letter or digit.
// Names become TUF role names and target path segments, so they must be safe
// in URLs and file names.
func ValidName(what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("release: invalid %s %q: use lower-case letters, digits and dashes (at most 63)", what, s)
	}
	return nil
}

// ValidVersion checks that v is a semantic version without a leading "v",
// such as 1.2.3 or 1.2.3-rc.1.
func ValidVersion(v string) error {
	if strings.HasPrefix(v, "v") || !semver.IsValid("v"+v) || semver.Canonical("v"+v) == "" {
		return fmt.Errorf("release: invalid version %q: want a semantic version like 1.2.3", v)
	}
	if strings.Count(strings.SplitN(strings.SplitN(v, "-", 2)[0], "+", 2)[0], ".") != 2 {
		return fmt.Errorf("release: invalid version %q: want major.minor.patch", v)
	}
	return nil
}

// CompareVersions compares two valid versions by semver precedence: -1, 0 or
// +1.
func CompareVersions(a, b string) int {
	return semver.Compare("v"+a, "v"+b)
}

// Validate checks a manifest for completeness and consistency: what it
// declares about the release (ValidateDeclaration), then how it describes the
// bytes (ValidatePayload). A device checks the whole; a publisher checks the
// declaration before it reads the payload and the description once the
// payload is stored, so that each rule runs once.
func (m *Manifest) Validate() error {
	if err := m.ValidateDeclaration(); err != nil {
		return err
	}
	return m.ValidatePayload()
}

// ValidateDeclaration checks what a manifest declares about the release:
// product, version, hardware, kind, impact and the security-only marks. It
// does not look at Payload or Deltas.
func (m *Manifest) ValidateDeclaration() error {
	if err := ValidName("product", m.Product); err != nil {
		return err
	}
	if err := ValidVersion(m.Version); err != nil {
		return err
	}
	if len(m.Hardware) == 0 {
		return errors.New("release: manifest lists no compatible hardware")
	}
	for _, h := range m.Hardware {
		if err := ValidName("hardware revision", h); err != nil {
			return err
		}
	}
	if _, err := ParseKind(string(m.Kind)); err != nil {
		return err
	}
	for _, c := range []Change{m.Impact.DataCollection, m.Impact.Functionality} {
		switch c {
		case ChangeNone, ChangeMore, ChangeLess:
		default:
			return fmt.Errorf("release: unknown impact %q (want none, more or less)", c)
		}
	}
	if m.Impact.Adverse() && m.Impact.DataCollection == ChangeMore && m.Impact.DataCollectionText == "" {
		return errors.New("release: more data collection must be explained (data collection text)")
	}
	if m.Impact.Functionality == ChangeLess && m.Impact.FunctionalityText == "" {
		return errors.New("release: removed functionality must be explained (functionality text)")
	}
	for _, r := range m.Impact.NewRecipients {
		if strings.TrimSpace(r) == "" {
			return errors.New("release: empty data recipient")
		}
	}
	if len(m.Impact.NewRecipients) > 0 && m.Impact.NewRecipientsText == "" {
		return errors.New("release: new data recipients must be explained (new recipients text)")
	}
	if m.SecurityOnly {
		if m.Kind != KindSecurity {
			return fmt.Errorf("release: a security-only build must be of kind security, not %s", m.Kind)
		}
		if m.Impact.Adverse() {
			return errors.New("release: a security-only build cannot collect more data, add recipients or remove functionality")
		}
		if m.SecurityOnlyOf != "" {
			if err := ValidVersion(m.SecurityOnlyOf); err != nil {
				return err
			}
		}
	} else if m.SecurityOnlyOf != "" {
		return errors.New("release: security_only_of is set on a build that is not security-only")
	}
	return nil
}

// ValidatePayload checks how a manifest describes the bytes of the release:
// the payload's type and compression, and the deltas from earlier versions
// (which must name valid, earlier versions, so m.Version must be valid).
func (m *Manifest) ValidatePayload() error {
	if m.Payload.Type != "rootfs" {
		return fmt.Errorf("release: unsupported payload type %q", m.Payload.Type)
	}
	switch m.Payload.Compression {
	case CompressionNone:
		if m.Payload.ImageLength != 0 || m.Payload.ImageSHA256 != "" {
			return errors.New("release: image_length and image_sha256 are only for a compressed payload")
		}
	case CompressionZstd:
		if m.Payload.ImageLength <= 0 {
			return errors.New("release: a zstd payload needs a positive image_length")
		}
		if !sha256HexRE.MatchString(m.Payload.ImageSHA256) {
			return fmt.Errorf("release: a zstd payload needs image_sha256 as 64 lower-case hex digits, not %q", m.Payload.ImageSHA256)
		}
	default:
		return fmt.Errorf("release: unsupported compression %q", m.Payload.Compression)
	}
	seen := map[string]bool{}
	for _, d := range m.Deltas {
		if err := ValidVersion(d.From); err != nil {
			return fmt.Errorf("release: delta: %w", err)
		}
		if CompareVersions(d.From, m.Version) >= 0 {
			return fmt.Errorf("release: a delta of %s must be from an earlier version, not %s", m.Version, d.From)
		}
		if seen[d.From] {
			return fmt.Errorf("release: two deltas from %s", d.From)
		}
		seen[d.From] = true
		if d.Target != DeltaTargetName(m.Product, m.Version, d.From) {
			return fmt.Errorf("release: the delta from %s must be the target %q, not %q", d.From, DeltaTargetName(m.Product, m.Version, d.From), d.Target)
		}
		if d.Length <= 0 || d.SourceLength <= 0 {
			return fmt.Errorf("release: the delta from %s needs a positive length and source_length", d.From)
		}
		if !sha256HexRE.MatchString(d.SHA256) || !sha256HexRE.MatchString(d.SourceSHA256) {
			return fmt.Errorf("release: the delta from %s needs sha256 and source_sha256 as 64 lower-case hex digits", d.From)
		}
	}
	return nil
}

// SupportsHardware reports whether the manifest lists hw.
func (m *Manifest) SupportsHardware(hw string) bool {
	for _, h := range m.Hardware {
		if h == hw {
			return true
		}
	}
	return false
}

// TargetName is the TUF target path of a release payload. It has exactly two
// segments so that the delegation pattern "<product>/*" covers it.
func TargetName(product, version string) string { return product + "/" + version }

// SupportTargetName is the TUF target path of a product's support declaration.
func SupportTargetName(product string) string { return product + "/support.json" }

// Custom is the shape of a release target's custom metadata.
type Custom struct {
	Uptrust *Manifest `json:"uptrust"`
}

// ManifestFromCustom extracts and validates the manifest from a target's
// custom metadata.
func ManifestFromCustom(raw *json.RawMessage) (*Manifest, error) {
	if raw == nil {
		return nil, errors.New("release: target has no custom metadata")
	}
	var c Custom
	if err := json.Unmarshal(*raw, &c); err != nil {
		return nil, fmt.Errorf("release: custom metadata: %w", err)
	}
	if c.Uptrust == nil {
		return nil, errors.New("release: target custom metadata has no uptrust manifest")
	}
	if err := c.Uptrust.Validate(); err != nil {
		return nil, err
	}
	return c.Uptrust, nil
}

// DecodeManifest decodes a manifest as it is stored next to its release: the
// JSON of the Manifest alone, as signed, without the Custom wrapper. Unknown
// fields are ignored, as on the wire. It does not validate: the publisher
// validated the manifest before storing it, and the readers of stored
// releases report on them as they are.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("release: stored manifest: %w", err)
	}
	return m, nil
}

// Support is a product's signed support declaration: until when the maker
// provides security updates, for which hardware, and whom to contact.
// Invariant kept by server and agent: a later declaration never has an
// earlier Until than an accepted one.
type Support struct {
	Product  string   `json:"product"`
	Model    string   `json:"model"`
	Hardware []string `json:"hardware"`
	// Until is the last day of support, as YYYY-MM-DD.
	Until   string    `json:"support_until"`
	Contact string    `json:"contact,omitempty"`
	Issued  time.Time `json:"issued"`
	// Policy holds the maker's defaults for the devices' update policy.
	// Owners decide within them on the device.
	Policy *Policy `json:"policy,omitempty"`
}

// Policy is the maker's update policy for a product.
type Policy struct {
	// AutoInstall lists the kinds that install without the owner's
	// action when they have no adverse impact.
	AutoInstall []Kind `json:"auto_install"`
	// MaxPostponeDays is the longest an owner may postpone automatic
	// updates.
	MaxPostponeDays int `json:"max_postpone_days"`
}

// DefaultPolicy installs security, fix and feature releases without adverse
// impact automatically and lets owners postpone for up to 30 days.
func DefaultPolicy() Policy {
	return Policy{AutoInstall: []Kind{KindSecurity, KindFix, KindFeature}, MaxPostponeDays: 30}
}

// Validate checks a policy.
func (p *Policy) Validate() error {
	for _, k := range p.AutoInstall {
		if _, err := ParseKind(string(k)); err != nil {
			return err
		}
	}
	if p.MaxPostponeDays < 0 || p.MaxPostponeDays > 365 {
		return fmt.Errorf("release: max postpone %d days out of range 0..365", p.MaxPostponeDays)
	}
	return nil
}

// Auto reports whether kind installs automatically under the policy.
func (p *Policy) Auto(k Kind) bool {
	for _, a := range p.AutoInstall {
		if a == k {
			return true
		}
	}
	return false
}

// EffectivePolicy returns the declaration's policy or the default.
func (s *Support) EffectivePolicy() Policy {
	if s == nil || s.Policy == nil {
		return DefaultPolicy()
	}
	return *s.Policy
}

// ParseDate parses a YYYY-MM-DD date.
func ParseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("release: invalid date %q: want YYYY-MM-DD", s)
	}
	return t, nil
}

// Validate checks a support declaration.
func (s *Support) Validate() error {
	if err := ValidName("product", s.Product); err != nil {
		return err
	}
	if _, err := ParseDate(s.Until); err != nil {
		return err
	}
	if s.Policy != nil {
		return s.Policy.Validate()
	}
	return nil
}

// ErrSupportShortened is returned when a support declaration ends earlier than
// one already published or accepted.
var ErrSupportShortened = errors.New("release: support period cannot be shortened")

// CheckExtension verifies that next does not end before prev. prev may be nil.
func CheckExtension(prev, next *Support) error {
	if prev == nil {
		return nil
	}
	a, err := ParseDate(prev.Until)
	if err != nil {
		return err
	}
	b, err := ParseDate(next.Until)
	if err != nil {
		return err
	}
	if b.Before(a) {
		return fmt.Errorf("%w: %s ends %s, earlier than the declared %s", ErrSupportShortened, next.Product, next.Until, prev.Until)
	}
	return nil
}

// ErrSecurityVersionLower is returned when a release would lower the security
// version of its product.
var ErrSecurityVersionLower = errors.New("release: security version lower than an earlier release")
