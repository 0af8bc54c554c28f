package agent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/strictjson"
	"github.com/uptrust/uptrust/internal/units"
)

// SlotConfig selects and configures the A/B backend.
type SlotConfig struct {
	// Backend is "file", "uboot" or "grub".
	Backend string `json:"backend"`
	// Dir is the file backend's directory.
	Dir string `json:"dir,omitempty"`
	// FwEnvConfig is the fw_env.config file for the uboot backend.
	FwEnvConfig string `json:"fw_env_config,omitempty"`
	// FwDefaultEnv is the default environment file for fw_printenv -f
	// (optional).
	FwDefaultEnv string `json:"fw_default_env,omitempty"`
	// GrubEnv is the grubenv file for the grub backend.
	GrubEnv string `json:"grub_env,omitempty"`
	// SlotA and SlotB are the slot devices (uboot, grub). They must be two
	// devices: OpenSlots, and so the agent at start and provisioning,
	// refuses paths that are one file (after symlinks; hard links) or one
	// device (the same device number), which would make the agent write
	// its image over the running system.
	SlotA string `json:"slot_a,omitempty"`
	SlotB string `json:"slot_b,omitempty"`
	// Cmdline is where the booted slot is read from (default
	// /proc/cmdline): uptrust.slot=, else root=. Where it has both, root=
	// must not be the device of the other slot than uptrust.slot= names,
	// or the agent refuses to start, write or arm.
	Cmdline string `json:"cmdline,omitempty"`
}

// Config is the agent's provisioning file.
type Config struct {
	// Server is the base URL of the uptrust server, e.g. https://updates.example.com.
	Server   string `json:"server"`
	Product  string `json:"product"`
	Hardware string `json:"hardware"`
	// DataDir holds state, the TUF caches and the report queue.
	DataDir string     `json:"data_dir"`
	Slot    SlotConfig `json:"slot"`
	// ReleaseRoot and FleetRoot are the trusted root.json files provisioned
	// at the factory.
	ReleaseRoot string `json:"release_root"`
	FleetRoot   string `json:"fleet_root"`
	// CAFile is an optional PEM bundle for HTTPS.
	CAFile string `json:"ca_file,omitempty"`
	// AllowInsecureHTTP permits plain HTTP to a non-loopback server.
	AllowInsecureHTTP bool `json:"allow_insecure_http,omitempty"`
	// PollInterval is the mean time between checks (default 6h); each wait
	// is drawn from [interval/2, interval*3/2).
	PollInterval units.Duration `json:"poll_interval,omitempty"`
	// StallTimeout fails a download that sends nothing this long (default 60s).
	StallTimeout units.Duration `json:"stall_timeout,omitempty"`
	// MetadataTimeout bounds the fetch of one metadata file, however
	// slowly its bytes arrive (default 5m).
	MetadataTimeout units.Duration `json:"metadata_timeout,omitempty"`
	// MinTransferRate and MinTransferWindow: a response that brings fewer
	// than MinTransferRate bytes per second over MinTransferWindow of
	// waiting for the server is cut (a payload resumes where it stopped);
	// defaults 512 bytes/s over 2m. Must be below DownloadRateLimit. The
	// rate is written as a size ("512", "2KiB"), per second.
	MinTransferRate   units.ByteSize `json:"min_transfer_rate,omitempty"`
	MinTransferWindow units.Duration `json:"min_transfer_window,omitempty"`
	// MaxAttempts per request (default 5). A payload download whose
	// connection drops is resumed within the check for as long as it makes
	// progress; this many drops in a row without progress (together less
	// than 64 KiB gained) end the check, and the next one resumes.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// DownloadRateLimit caps the bytes per second the agent reads from the
	// server, payloads and metadata together: a number, or a string such as
	// "512KiB" or "2MiB" (see units.ParseByteRate). 0 or absent: no limit.
	DownloadRateLimit units.ByteRate `json:"download_rate_limit,omitempty" zero:"ok"`
	// PowerLossBudget bounds what a power loss during a payload download
	// into the slot costs: the download never has this many bytes written
	// that no saved checkpoint covers (or more, up to what the link moves
	// in PowerLossWindow) before it reads its next buffer of
	// payload.BufferSize/4 (it waits for the running checkpoint instead).
	// So a power loss costs less than that plus one buffer of bytes
	// downloaded again, plus what was in flight in the network. Default
	// DefaultPowerLossBudget, at least CheckpointBytes. A small budget
	// syncs the slot more often: where its flushes are slow and the link is
	// fast, a larger one (or the window) installs faster. A number of bytes
	// or a string such as "512KiB" or "4MiB".
	PowerLossBudget units.ByteSize `json:"power_loss_budget,omitempty"`
	// PowerLossWindow bounds what a power loss costs in link time: the
	// bytes written and not covered by a saved checkpoint may reach three
	// quarters of the bytes the link moves in this long (its rate measured
	// as the download goes, over the last four windows) when that is more
	// than PowerLossBudget; the last quarter is left for the buffer being
	// filled and the bytes in flight. So a power loss costs at most about
	// this much link time, or the budget plus one buffer and what was in
	// flight, and a fast link is not held back by every flush of the slot.
	// Absent: DefaultPowerLossWindow (250ms); "0s": the budget alone, as
	// agents before it did. At most 10s.
	PowerLossWindow *units.Duration `json:"power_loss_window,omitempty" zero:"ok"`
	// StageCompressed lets the agent download a compressed payload into the
	// data directory first, when there is room, so that a power loss does
	// not restart it (default true). false: always stream it into the slot
	// (the data directory stays small; a power loss restarts a compressed
	// download from byte 0).
	StageCompressed *bool `json:"stage_compressed,omitempty"`
	// HealthCheck is an executable run after booting a new release; exit
	// status 0 means healthy. Empty: the system came up, that is enough.
	HealthCheck []string `json:"health_check,omitempty"`
	// RebootCommand restarts the device (default ["systemctl", "reboot"]).
	RebootCommand []string `json:"reboot_command,omitempty"`
	// Reports turns anonymous outcome reports on (default true).
	Reports *bool `json:"reports,omitempty"`
	// Notify is an executable with its arguments that tells the owner
	// about events (see Event): it gets one JSON event on stdin per call.
	// Empty: no notifications.
	Notify []string `json:"notify,omitempty"`
	// NotifyTimeout bounds one run of Notify (default 30s).
	NotifyTimeout units.Duration `json:"notify_timeout,omitempty"`
	// MetadataMaxBytes caps each metadata document downloaded, per role
	// (defaults: deviceapi.DefaultMax*Bytes). A document longer than its
	// limit, or than the length its signed entry lists, is refused before
	// it is parsed.
	MetadataMaxBytes MetadataMaxBytes `json:"metadata_max_bytes,omitzero"`
	// StaleAfter is how long the device may go without fresh signed
	// metadata before it warns that it may be cut off from updates
	// (default 14 days).
	StaleAfter units.Duration `json:"stale_after,omitempty"`

	// Mode is "anonymous" (the default: the server never learns which
	// device asks) or "managed": the device has its own Ed25519 key, enrols
	// with the server and signs every request to it (see managed.go and
	// docs/device-protocol.md).
	Mode string `json:"mode,omitempty"`
	// KeyFile is the managed device's private key, PEM PKCS #8, created
	// (mode 0600) at the first start in managed mode (default
	// <data_dir>/device.key). Managed mode only.
	KeyFile string `json:"key_file,omitempty"`
	// EnrollmentToken, or the file EnrollmentTokenFile holding it (one
	// line), is the enrolment token the device presents until the server
	// accepts it. Optional, at most one of the two; managed mode only.
	EnrollmentToken     string `json:"enrollment_token,omitempty"`
	EnrollmentTokenFile string `json:"enrollment_token_file,omitempty"`
	// FullCheckEvery bounds the conditional checks of a managed device
	// (quick.go): the whole TUF refresh of both repositories runs at least
	// this often, and whenever trusted metadata expires within it; it is
	// also how long a forged 304 can hide a new fleet view from the device
	// (default 1h, at least 1m). Managed mode only.
	FullCheckEvery units.Duration `json:"full_check_every,omitempty"`
}

// The agent's modes (Config.Mode).
const (
	ModeAnonymous = "anonymous"
	ModeManaged   = "managed"
)

// Managed says whether the device runs in managed mode.
func (c *Config) Managed() bool { return c.Mode == ModeManaged }

// LoadConfig reads and validates a config file. Relative paths in it are
// taken relative to the file's directory.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	var c Config
	if err := strictjson.Decode(path, b, &c); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	base := filepath.Dir(path)
	for _, p := range []*string{&c.DataDir, &c.ReleaseRoot, &c.FleetRoot, &c.CAFile, &c.Slot.Dir, &c.Slot.FwEnvConfig, &c.Slot.FwDefaultEnv, &c.Slot.GrubEnv,
		&c.Slot.SlotA, &c.Slot.SlotB, &c.Slot.Cmdline, &c.KeyFile, &c.EnrollmentTokenFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	return &c, nil
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	u, err := url.Parse(c.Server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("server %q is not an http(s) URL", c.Server)
	}
	if u.Scheme == "http" && !c.AllowInsecureHTTP && !loopback(u.Hostname()) {
		return fmt.Errorf("server %s uses plain HTTP to a host that is not loopback: use https, or set allow_insecure_http (anyone on the path then sees which firmware this device fetches)", c.Server)
	}
	if err := release.ValidName("product", c.Product); err != nil {
		return err
	}
	if err := release.ValidName("hardware revision", c.Hardware); err != nil {
		return err
	}
	if c.DataDir == "" || c.ReleaseRoot == "" || c.FleetRoot == "" {
		return errors.New("data_dir, release_root and fleet_root are required")
	}
	switch c.Slot.Backend {
	case "file":
		if c.Slot.Dir == "" {
			return errors.New("slot backend file needs slot.dir")
		}
	case "uboot":
		if c.Slot.FwEnvConfig == "" || c.Slot.SlotA == "" || c.Slot.SlotB == "" {
			return errors.New("slot backend uboot needs slot.fw_env_config, slot.slot_a and slot.slot_b")
		}
	case "grub":
		if c.Slot.GrubEnv == "" || c.Slot.SlotA == "" || c.Slot.SlotB == "" {
			return errors.New("slot backend grub needs slot.grub_env, slot.slot_a and slot.slot_b")
		}
	default:
		return fmt.Errorf("unknown slot backend %q (want file, uboot or grub)", c.Slot.Backend)
	}
	if c.PollInterval == 0 {
		c.PollInterval = units.Duration(6 * time.Hour)
	}
	if c.PollInterval < units.Duration(time.Second) {
		return fmt.Errorf("poll_interval %v is too short", time.Duration(c.PollInterval))
	}
	if err := c.DownloadRateLimit.Validate(); err != nil {
		return err
	}
	if c.PowerLossBudget == 0 {
		c.PowerLossBudget = DefaultPowerLossBudget
	}
	if c.PowerLossBudget < CheckpointBytes {
		return fmt.Errorf("power_loss_budget %v is below the checkpoint interval of %v bytes", c.PowerLossBudget, units.ByteSize(CheckpointBytes))
	}
	if c.PowerLossWindow == nil {
		w := units.Duration(DefaultPowerLossWindow)
		c.PowerLossWindow = &w
	}
	if w := time.Duration(*c.PowerLossWindow); w < 0 || w > maxPowerLossWindow {
		return fmt.Errorf("power_loss_window %v is outside 0s..%v", w, maxPowerLossWindow)
	}
	if err := c.MetadataMaxBytes.validate(); err != nil {
		return err
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = units.Duration(60 * time.Second)
	}
	if c.MetadataTimeout == 0 {
		c.MetadataTimeout = units.Duration(fetch.DefaultMetadataTimeout)
	}
	if c.MetadataTimeout < units.Duration(10*time.Second) {
		return fmt.Errorf("metadata_timeout %v is too short (at least 10s)", time.Duration(c.MetadataTimeout))
	}
	if c.MinTransferRate == 0 {
		c.MinTransferRate = fetch.DefaultMinRate
	}
	if c.MinTransferRate < 0 {
		return fmt.Errorf("min_transfer_rate %d is negative", c.MinTransferRate)
	}
	if c.DownloadRateLimit > 0 && int64(c.MinTransferRate) >= int64(c.DownloadRateLimit) {
		return fmt.Errorf("min_transfer_rate %v must be below download_rate_limit %v", c.MinTransferRate, c.DownloadRateLimit)
	}
	if c.MinTransferWindow == 0 {
		c.MinTransferWindow = units.Duration(fetch.DefaultMinRateWindow)
	}
	if c.MinTransferWindow < units.Duration(10*time.Second) {
		return fmt.Errorf("min_transfer_window %v is too short (at least 10s)", time.Duration(c.MinTransferWindow))
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if len(c.RebootCommand) == 0 {
		c.RebootCommand = []string{"systemctl", "reboot"}
	}
	if len(c.Notify) > 0 && c.Notify[0] == "" {
		return errors.New("notify: the first element must be the executable to run")
	}
	if c.NotifyTimeout == 0 {
		c.NotifyTimeout = units.Duration(30 * time.Second)
	}
	if c.NotifyTimeout < 0 {
		return fmt.Errorf("notify_timeout %v is negative", time.Duration(c.NotifyTimeout))
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = units.Duration(14 * 24 * time.Hour)
	}
	if c.StaleAfter < units.Duration(time.Hour) {
		return fmt.Errorf("stale_after %v is too short (at least 1h)", time.Duration(c.StaleAfter))
	}
	return c.validateMode()
}

// validateMode checks mode and the managed-mode fields, and fills the
// default key file.
func (c *Config) validateMode() error {
	switch c.Mode {
	case "":
		c.Mode = ModeAnonymous
	case ModeAnonymous, ModeManaged:
	default:
		return fmt.Errorf("mode %q is unknown (want %q or %q)", c.Mode, ModeAnonymous, ModeManaged)
	}
	if !c.Managed() {
		full := ""
		if c.FullCheckEvery != 0 {
			full = time.Duration(c.FullCheckEvery).String()
		}
		for name, v := range map[string]string{"key_file": c.KeyFile, "enrollment_token": c.EnrollmentToken, "enrollment_token_file": c.EnrollmentTokenFile, "full_check_every": full} {
			if v != "" {
				return fmt.Errorf("%s is set but mode is %q: it applies to managed mode only (set \"mode\": \"managed\")", name, c.Mode)
			}
		}
		return nil
	}
	if c.FullCheckEvery != 0 && c.FullCheckEvery < units.Duration(time.Minute) {
		return fmt.Errorf("full_check_every %v is too short (at least 1m)", time.Duration(c.FullCheckEvery))
	}
	if every := c.fullCheckEvery(); c.StaleAfter != 0 && every >= time.Duration(c.StaleAfter) {
		// Conditional checks do not renew last_refresh: the device would
		// call its metadata stale while 304s end its checks.
		return fmt.Errorf("full_check_every %v is not below stale_after %v", every, time.Duration(c.StaleAfter))
	}
	if c.EnrollmentToken != "" && c.EnrollmentTokenFile != "" {
		return errors.New("enrollment_token and enrollment_token_file are both set: use one")
	}
	if c.EnrollmentToken != "" {
		if err := validToken(c.EnrollmentToken); err != nil {
			return fmt.Errorf("enrollment_token: %w", err)
		}
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, "device.key")
	}
	return nil
}

// fullCheckEvery is FullCheckEvery, or its default when unset.
func (c *Config) fullCheckEvery() time.Duration {
	if c.FullCheckEvery == 0 {
		return DefaultFullCheckEvery
	}
	return time.Duration(c.FullCheckEvery)
}

// lossBudget is PowerLossBudget, or its default when unset.
func (c *Config) lossBudget() int64 {
	if c.PowerLossBudget == 0 {
		return DefaultPowerLossBudget
	}
	return int64(c.PowerLossBudget)
}

// lossWindow is PowerLossWindow, or its default when unset.
func (c *Config) lossWindow() time.Duration {
	if c.PowerLossWindow == nil {
		return DefaultPowerLossWindow
	}
	return time.Duration(*c.PowerLossWindow)
}

// metadataMax is MetadataMaxBytes with the defaults filled in (for a
// Config that was not validated).
func (c *Config) metadataMax() MetadataMaxBytes {
	m := c.MetadataMaxBytes
	if err := m.validate(); err != nil {
		// Validate refuses such a config; fall back to the defaults.
		m = MetadataMaxBytes{}
		_ = m.validate()
	}
	return m
}

// StagingEnabled says whether compressed payloads may be staged.
func (c *Config) StagingEnabled() bool { return c.StageCompressed == nil || *c.StageCompressed }

// ReportsEnabled says whether outcome reports are sent.
func (c *Config) ReportsEnabled() bool { return c.Reports == nil || *c.Reports }

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
