package release

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func good() Manifest {
	return Manifest{Product: "thermostat", Version: "1.2.3", Hardware: []string{"rev-a"}, SecurityVersion: 2, Kind: KindSecurity,
		Impact: Impact{DataCollection: ChangeNone, Functionality: ChangeNone}, Payload: Payload{Type: "rootfs", Compression: "none"}}
}

func TestManifestValidate(t *testing.T) {
	m := good()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Manifest){
		"product":                func(m *Manifest) { m.Product = "Thermo Stat" },
		"version v prefix":       func(m *Manifest) { m.Version = "v1.2.3" },
		"version two":            func(m *Manifest) { m.Version = "1.2" },
		"no hardware":            func(m *Manifest) { m.Hardware = nil },
		"kind":                   func(m *Manifest) { m.Kind = "urgent" },
		"impact":                 func(m *Manifest) { m.Impact.DataCollection = "lots" },
		"payload":                func(m *Manifest) { m.Payload.Type = "exe" },
		"compression":            func(m *Manifest) { m.Payload.Compression = "rar" },
		"unexplained more":       func(m *Manifest) { m.Impact.DataCollection = ChangeMore },
		"unexplained less":       func(m *Manifest) { m.Impact.Functionality = ChangeLess },
		"empty recipient":        func(m *Manifest) { m.Impact.NewRecipients = []string{" "}; m.Impact.NewRecipientsText = "x" },
		"unexplained recipients": func(m *Manifest) { m.Impact.NewRecipients = []string{"ads.example"} },
		"security-only feature": func(m *Manifest) {
			m.SecurityOnly, m.Kind = true, KindFeature
		},
		"security-only adverse": func(m *Manifest) {
			m.SecurityOnly, m.Impact.NewRecipients, m.Impact.NewRecipientsText = true, []string{"ads.example"}, "ads"
		},
		"orphan security_only_of": func(m *Manifest) { m.SecurityOnlyOf = "2.0.0" },
		"image hash uncompressed": func(m *Manifest) { m.Payload.ImageLength, m.Payload.ImageSHA256 = 5, strings.Repeat("ab", 32) },
		"zstd without image":      func(m *Manifest) { m.Payload.Compression = CompressionZstd },
		"zstd without length": func(m *Manifest) {
			m.Payload.Compression, m.Payload.ImageSHA256 = CompressionZstd, strings.Repeat("ab", 32)
		},
		"zstd bad hash": func(m *Manifest) {
			m.Payload.Compression, m.Payload.ImageLength, m.Payload.ImageSHA256 = CompressionZstd, 5, "AB"
		},
	}
	z := good()
	z.Payload = Payload{Type: "rootfs", Compression: CompressionZstd, ImageLength: 5, ImageSHA256: strings.Repeat("ab", 32)}
	if err := z.Validate(); err != nil {
		t.Errorf("zstd manifest: %v", err)
	}
	for name, f := range bad {
		m := good()
		f(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{{"1.0.0", "1.0.1", -1}, {"1.10.0", "1.9.0", 1}, {"2.0.0-rc.1", "2.0.0", -1}, {"1.0.0", "1.0.0", 0}}
	for _, c := range cases {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("Compare(%s,%s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestImpactAdverseAndReasons(t *testing.T) {
	if (Impact{DataCollection: ChangeLess, Functionality: ChangeMore}).Adverse() {
		t.Fatal("less data and more function is not adverse")
	}
	i := Impact{DataCollection: ChangeMore, DataCollectionText: "room occupancy", NewRecipients: []string{"analytics.example"}, Functionality: ChangeLess, FunctionalityText: "no local schedule"}
	if !i.Adverse() {
		t.Fatal("adverse impact not recognised")
	}
	r := strings.Join(i.Reasons(), "; ")
	for _, want := range []string{"room occupancy", "analytics.example", "no local schedule"} {
		if !strings.Contains(r, want) {
			t.Errorf("reasons %q lack %q", r, want)
		}
	}
}

func TestSupportExtension(t *testing.T) {
	a := &Support{Product: "p", Until: "2030-01-01"}
	longer := &Support{Product: "p", Until: "2031-01-01"}
	shorter := &Support{Product: "p", Until: "2029-12-31"}
	if err := CheckExtension(a, longer); err != nil {
		t.Fatal(err)
	}
	if err := CheckExtension(a, a); err != nil {
		t.Fatal(err)
	}
	if err := CheckExtension(nil, shorter); err != nil {
		t.Fatal(err)
	}
	if err := CheckExtension(a, shorter); !errors.Is(err, ErrSupportShortened) {
		t.Fatalf("shortening: %v", err)
	}
	if (&Support{Product: "p", Until: "31.12.2030"}).Validate() == nil {
		t.Fatal("bad date accepted")
	}
}

func TestPolicy(t *testing.T) {
	var s *Support
	p := s.EffectivePolicy()
	if !p.Auto(KindSecurity) || p.MaxPostponeDays != 30 {
		t.Fatalf("default policy %+v", p)
	}
	bad := Policy{MaxPostponeDays: 400}
	if bad.Validate() == nil {
		t.Fatal("400 days accepted")
	}
	if (&Policy{AutoInstall: []Kind{"all"}}).Validate() == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestManifestFromCustom(t *testing.T) {
	m := good()
	b, _ := json.Marshal(Custom{Uptrust: &m})
	raw := json.RawMessage(b)
	got, err := ManifestFromCustom(&raw)
	if err != nil || got.Version != "1.2.3" {
		t.Fatalf("%+v %v", got, err)
	}
	for _, s := range []string{`{}`, `{"uptrust":{"product":"x"}}`, `[`} {
		r := json.RawMessage(s)
		if _, err := ManifestFromCustom(&r); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	if _, err := ManifestFromCustom(nil); err == nil {
		t.Error("nil accepted")
	}
}

func TestManifestValidateDeltas(t *testing.T) {
	d := func() Delta {
		return Delta{From: "1.2.0", Target: "thermostat/1.2.3.from-1.2.0.delta", Length: 10, SHA256: strings.Repeat("ab", 32),
			SourceLength: 100, SourceSHA256: strings.Repeat("cd", 32)}
	}
	m := good()
	m.Deltas = []Delta{d()}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if DeltaTargetName("thermostat", "1.2.3", "1.2.0") != d().Target || ValidVersion("1.2.3.from-1.2.0.delta") == nil {
		t.Fatal("delta target name")
	}
	bad := map[string]func(*Delta){
		"from invalid":     func(x *Delta) { x.From = "1.2" },
		"from not earlier": func(x *Delta) { x.From, x.Target = "1.2.3", DeltaTargetName("thermostat", "1.2.3", "1.2.3") },
		"target":           func(x *Delta) { x.Target = "thermostat/other" },
		"length":           func(x *Delta) { x.Length = 0 },
		"source length":    func(x *Delta) { x.SourceLength = -1 },
		"sha256":           func(x *Delta) { x.SHA256 = "AB" },
		"source sha256":    func(x *Delta) { x.SourceSHA256 = "" },
	}
	for name, f := range bad {
		m := good()
		x := d()
		f(&x)
		m.Deltas = []Delta{x}
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m = good()
	m.Deltas = []Delta{d(), d()}
	if err := m.Validate(); err == nil {
		t.Error("two deltas from one version accepted")
	}
}

func TestValidateHalves(t *testing.T) {
	// The declaration does not look at the payload description, nor the
	// payload description at the declaration; Validate needs both.
	noPayload := good()
	noPayload.Payload = Payload{}
	if err := noPayload.ValidateDeclaration(); err != nil {
		t.Errorf("declaration of a manifest without payload: %v", err)
	}
	if noPayload.ValidatePayload() == nil || noPayload.Validate() == nil {
		t.Error("a manifest without payload passes ValidatePayload or Validate")
	}
	badKind := good()
	badKind.Kind = "urgent"
	if err := badKind.ValidatePayload(); err != nil {
		t.Errorf("payload of a manifest with a bad kind: %v", err)
	}
	if badKind.ValidateDeclaration() == nil || badKind.Validate() == nil {
		t.Error("a bad kind passes ValidateDeclaration or Validate")
	}
	laterDelta := good()
	laterDelta.Deltas = []Delta{{From: "1.3.0", Target: DeltaTargetName("thermostat", "1.2.3", "1.3.0"), Length: 1, SHA256: strings.Repeat("ab", 32),
		SourceLength: 1, SourceSHA256: strings.Repeat("cd", 32)}}
	if laterDelta.ValidateDeclaration() != nil || laterDelta.ValidatePayload() == nil {
		t.Error("a delta from a later version is not the payload half's to refuse")
	}
}

func TestDecodeManifest(t *testing.T) {
	m := good()
	m.Deltas = []Delta{{From: "1.0.0", Target: DeltaTargetName("thermostat", "1.2.3", "1.0.0"), Length: 7, SHA256: strings.Repeat("ab", 32),
		SourceLength: 9, SourceSHA256: strings.Repeat("cd", 32)}}
	b, _ := json.Marshal(m)
	got, err := DecodeManifest(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("DecodeManifest(stored) = %+v, %v; want %+v", got, err, m)
	}
	// A field this version does not know is ignored, as on the wire.
	withUnknown := strings.Replace(string(b), `"product":`, `"from_the_future":{"x":1},"product":`, 1)
	if got, err := DecodeManifest([]byte(withUnknown)); err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("DecodeManifest(unknown field) = %+v, %v; want the manifest", got, err)
	}
	// It decodes, it does not validate.
	invalid := good()
	invalid.Kind = "urgent"
	b, _ = json.Marshal(invalid)
	if got, err := DecodeManifest(b); err != nil || got.Kind != "urgent" {
		t.Errorf("DecodeManifest(invalid manifest) = %+v, %v; want it decoded", got, err)
	}
	for _, bad := range []string{"", "{", `{"version": 3}`, `{"uptrust":`} {
		if _, err := DecodeManifest([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "release: stored manifest: ") {
			t.Errorf("DecodeManifest(%q): %v; want a release: stored manifest error", bad, err)
		}
	}
}
