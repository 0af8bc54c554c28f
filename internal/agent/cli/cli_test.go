package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/release"
)

// device is a provisioned agent config in a temp dir with a fake clock.
type device struct {
	t     *testing.T
	cfg   string
	data  string
	clock *clock.Fake
}

func newDevice(t *testing.T) *device {
	t.Helper()
	dir := t.TempDir()
	if err := fileslot.Create(filepath.Join(dir, "slots"), strings.NewReader("factory"), 3); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"server": "https://updates.example.com", "product": "thermostat", "hardware": "rev-a",
		"data_dir": "data", "release_root": "release.json", "fleet_root": "fleet.json", "slot": map[string]any{"backend": "file", "dir": "slots"}}
	for _, name := range []string{"release.json", "fleet.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), selfSignedRoot(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, cfg: path, data: filepath.Join(dir, "data"), clock: clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	if code, _, stderr := d.run("", "provision", "--version", "1.0.0", "--security-version", "1"); code != 0 {
		t.Fatalf("provision: %d %s", code, stderr)
	}
	return d
}

// selfSignedRoot is a TUF root.json with one key that signs it, as
// provision wants.
func selfSignedRoot(t *testing.T) []byte {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	root := metadata.Root(time.Now().AddDate(1, 0, 0))
	key, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Signed.AddKey(key, metadata.ROOT); err != nil {
		t.Fatal(err)
	}
	signer, err := signature.LoadED25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Sign(signer); err != nil {
		t.Fatal(err)
	}
	b, err := root.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs the command line with stdin and returns its exit status and
// output.
func (d *device) run(stdin string, args ...string) (int, string, string) {
	d.t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), append([]string{"--config", d.cfg}, args...),
		Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Now: d.clock.Now})
	return code, stdout.String(), stderr.String()
}

// edit changes state.json as an agent's check would have.
func (d *device) edit(change func(*agent.State)) {
	d.t.Helper()
	s, err := agent.LoadState(d.data)
	if err != nil {
		d.t.Fatal(err)
	}
	change(s)
	b, err := json.Marshal(s)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.data, "state.json"), b, 0o600); err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) state() *agent.State {
	d.t.Helper()
	s, err := agent.LoadState(d.data)
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

// waiting leaves 2.0.0 waiting for consent, as a check would.
func (d *device) waiting() {
	d.edit(func(s *agent.State) {
		s.Support = &release.Support{Product: "thermostat", Until: "2030-01-01",
			Policy: &release.Policy{AutoInstall: []release.Kind{release.KindSecurity, release.KindFix}, MaxPostponeDays: 7}}
		s.Waiting = []agent.Waiting{{Version: "2.0.0", Kind: release.KindFeature, Hold: agent.HoldAdverse,
			Reason:        "2.0.0 waits for the owner's consent because it collects more data: hourly usage statistics; run uptrust-agent consent 2.0.0 to install",
			ImpactReasons: []string{"collects more data: hourly usage statistics"}, Notes: "New dashboard.\nFaster boot.",
			Advisories: []release.Advisory{{ID: "CVE-2026-1234", Summary: "buffer overflow in the web server"}}, Since: d.clock.Now()}}
	})
}

func TestConsentShowsThenAsks(t *testing.T) {
	d := newDevice(t)
	d.waiting()

	code, out, stderr := d.run("n\n", "consent", "2.0.0")
	if code != 1 || !strings.Contains(stderr, "consent: not given; 2.0.0 keeps waiting") {
		t.Fatalf("declined: %d %q %q", code, out, stderr)
	}
	prompt := strings.Index(out, "Install 2.0.0? [y/N]")
	for _, want := range []string{
		"thermostat 2.0.0 (feature release) is waiting since 2026-03-01 12:00 UTC",
		"why:      2.0.0 waits for the owner's consent because it collects more data",
		"impact:   collects more data: hourly usage statistics",
		"  New dashboard.\n  Faster boot.",
		"fixes:    CVE-2026-1234: buffer overflow in the web server",
	} {
		if i := strings.Index(out, want); i < 0 || prompt < 0 || i > prompt {
			t.Errorf("%q is not shown before the prompt:\n%s", want, out)
		}
	}
	if len(d.state().Owner.Consents) != 0 {
		t.Fatal("a declined consent was recorded")
	}
	// No answer at all (end of input) is no.
	if code, _, _ := d.run("", "consent", "2.0.0"); code != 1 || len(d.state().Owner.Consents) != 0 {
		t.Fatalf("consent without an answer: %d", code)
	}

	code, out, stderr = d.run("yes\n", "consent", "2.0.0")
	if code != 0 || !strings.Contains(out, "consent to 2.0.0 recorded") {
		t.Fatalf("consent: %d %q %q", code, out, stderr)
	}
	s := d.state()
	if at, ok := s.Owner.Consents["2.0.0"]; !ok || !at.Equal(d.clock.Now()) {
		t.Fatalf("consents: %v", s.Owner.Consents)
	}
}

func TestConsentYesAndRefusals(t *testing.T) {
	d := newDevice(t)
	code, _, stderr := d.run("", "consent", "2.0.0", "--yes")
	if code != 1 || !strings.Contains(stderr, "2.0.0: it does not wait for consent: no release waits") {
		t.Fatalf("consent with nothing waiting: %d %q", code, stderr)
	}
	d.waiting()
	code, _, stderr = d.run("", "consent", "--yes", "3.0.0")
	if code != 1 || !strings.Contains(stderr, "3.0.0: it does not wait for consent (waiting: 2.0.0)") {
		t.Fatalf("consent to a release that does not wait: %d %q", code, stderr)
	}
	if code, _, _ := d.run("", "consent"); code != 2 {
		t.Fatalf("consent without a version: %d", code)
	}
	// --yes after the version, nothing read from stdin.
	code, out, stderr := d.run("n\n", "consent", "2.0.0", "--yes")
	if code != 0 || strings.Contains(out, "[y/N]") || !strings.Contains(out, "impact:   collects more data") {
		t.Fatalf("consent --yes: %d %q %q", code, out, stderr)
	}
	if _, ok := d.state().Owner.Consents["2.0.0"]; !ok {
		t.Fatal("consent --yes not recorded")
	}
}

func TestPostponeCommand(t *testing.T) {
	d := newDevice(t)
	d.waiting() // the maker allows 7 days
	code, _, stderr := d.run("", "postpone", "8d")
	if code != 1 || !strings.Contains(stderr, "8d is longer than the maker allows: at most 7 days") {
		t.Fatalf("postpone beyond the limit: %d %q", code, stderr)
	}
	if d.state().Owner.PostponedUntil != nil {
		t.Fatal("a refused postponement was recorded")
	}
	code, out, stderr := d.run("", "postpone", "72h")
	if code != 0 || !strings.Contains(out, "postponed until 2026-03-04 12:00 UTC") {
		t.Fatalf("postpone 72h: %d %q %q", code, out, stderr)
	}
	// Renewing cannot stretch it beyond 7 days from the first postponement.
	d.clock.Advance(2 * 24 * time.Hour)
	code, _, stderr = d.run("", "postpone", "6d")
	if code != 1 || !strings.Contains(stderr, "until 2026-03-08 12:00 UTC at the latest") {
		t.Fatalf("renewal beyond the limit: %d %q", code, stderr)
	}
	if code, out, _ := d.run("", "postpone", "5d"); code != 0 || !strings.Contains(out, "until 2026-03-08 12:00 UTC") {
		t.Fatalf("renewal to the limit: %d %q", code, out)
	}
	code, out, _ = d.run("", "status")
	if code != 0 || !strings.Contains(out, "postponed until:  2026-03-08 12:00 UTC") {
		t.Fatalf("status while postponed: %d\n%s", code, out)
	}
	code, out, _ = d.run("", "postpone", "--cancel")
	if code != 0 || !strings.Contains(out, "postponement cancelled") || d.state().Owner.PostponedUntil != nil {
		t.Fatalf("cancel: %d %q", code, out)
	}
	if code, out, _ := d.run("", "postpone", "--cancel"); code != 0 || !strings.Contains(out, "no postponement was in force") {
		t.Fatalf("second cancel: %d %q", code, out)
	}
	if code, _, stderr := d.run("", "postpone", "soon"); code != 1 || !strings.Contains(stderr, `duration "soon"`) {
		t.Fatalf("bad duration: %d %q", code, stderr)
	}
	for _, args := range [][]string{{"postpone"}, {"postpone", "1d", "2d"}, {"postpone", "--cancel", "1d"}} {
		if code, _, _ := d.run("", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestPolicyCommand(t *testing.T) {
	d := newDevice(t)
	code, out, _ := d.run("", "policy")
	if code != 0 || !strings.Contains(out, "automatic install of security, fix, feature releases") || !strings.Contains(out, "the default") ||
		!strings.Contains(out, "auto-updates:     on") {
		t.Fatalf("policy: %d\n%s", code, out)
	}
	code, out, _ = d.run("", "policy", "auto-updates", "off")
	if code != 0 || !strings.Contains(out, "automatic updates are off") {
		t.Fatalf("policy auto-updates off: %d %q", code, out)
	}
	code, out, _ = d.run("", "status")
	if code != 0 || !strings.Contains(out, "WARNING:          automatic updates are off since 2026-03-01 12:00 UTC (owner's choice)") {
		t.Fatalf("status while off: %d\n%s", code, out)
	}
	code, out, _ = d.run("", "status", "--json")
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.AutoUpdates != "off" || st.AutoUpdatesOffSince == nil {
		t.Fatalf("status --json while off: %d %v\n%s", code, err, out)
	}
	if code, out, _ := d.run("", "policy", "auto-updates", "off"); code != 0 || !strings.Contains(out, "off already") {
		t.Fatalf("off twice: %d %q", code, out)
	}
	d.clock.Advance(time.Hour)
	if code, out, _ := d.run("", "policy", "auto-updates", "on"); code != 0 || !strings.Contains(out, "on again") {
		t.Fatalf("policy auto-updates on: %d %q", code, out)
	}
	code, out, _ = d.run("", "status")
	if code != 0 || strings.Contains(out, "automatic updates are off") || !strings.Contains(out, "auto-updates:     on") {
		t.Fatalf("status after turning on: %d\n%s", code, out)
	}
	code, out, _ = d.run("", "policy")
	if code != 0 || !strings.Contains(out, "history:          2026-03-01 12:00 UTC auto-updates-off") ||
		!strings.Contains(out, "history:          2026-03-01 13:00 UTC auto-updates-on") {
		t.Fatalf("policy history: %d\n%s", code, out)
	}
	for _, args := range [][]string{{"policy", "auto-updates"}, {"policy", "auto-updates", "maybe"}, {"policy", "security", "off"}} {
		if code, _, _ := d.run("", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	d := newDevice(t)
	if code, _, stderr := d.run("", "frobnicate"); code != 2 || !strings.Contains(stderr, "consent VERSION") {
		t.Fatalf("unknown command: %d %q", code, stderr)
	}
}
