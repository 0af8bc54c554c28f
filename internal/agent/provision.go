package agent

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/release"
)

// ProvisionSpec is what uptrust-agent provision is given.
type ProvisionSpec struct {
	// Version and SecurityVersion describe the factory firmware in the
	// booted slot.
	Version         string
	SecurityVersion uint64
	// FactoryImage, for the file backend only, is the image written into
	// slot A when slot.dir holds no device yet.
	FactoryImage string
	// BootLimit is the file backend's simulated boot limit (default 3).
	BootLimit int
}

// DefaultBootLimit is the file backend's boot limit when none is given.
const DefaultBootLimit = 3

// CheckProvision validates everything provisioning will use, before
// anything is written: the version, both trusted roots (they exist, parse
// as TUF root metadata, are signed by their own threshold of keys, and are
// two different repositories), the slot configuration, and for the file
// backend the factory image when the device directory is still empty.
func CheckProvision(cfg *Config, spec ProvisionSpec, log *slog.Logger) error {
	if spec.Version == "" {
		return errors.New("provision: --version is required")
	}
	if err := release.ValidVersion(spec.Version); err != nil {
		return fmt.Errorf("provision: --version: %w", err)
	}
	if _, err := os.Stat(statePath(cfg.DataDir)); err == nil {
		return fmt.Errorf("provision: %s is provisioned already", cfg.DataDir)
	}
	rel, err := checkRootFile("release_root", cfg.ReleaseRoot)
	if err != nil {
		return err
	}
	fleet, err := checkRootFile("fleet_root", cfg.FleetRoot)
	if err != nil {
		return err
	}
	if bytes.Equal(rel, fleet) {
		return fmt.Errorf("provision: release_root %s and fleet_root %s are the same root; the release and fleet repositories have their own (device/release-root.json and device/fleet-root.json of the project)", cfg.ReleaseRoot, cfg.FleetRoot)
	}
	if spec.BootLimit < 0 {
		return fmt.Errorf("provision: --boot-limit %d is negative", spec.BootLimit)
	}
	if cfg.Slot.Backend == "file" {
		_, err := os.Stat(filepath.Join(cfg.Slot.Dir, fileslot.EnvFile))
		switch {
		case err == nil && spec.FactoryImage != "":
			return fmt.Errorf("provision: %s holds a device already; leave out --factory-image", cfg.Slot.Dir)
		case err != nil && spec.FactoryImage == "":
			return fmt.Errorf("provision: slot.dir %s holds no device yet: give the factory image to install in slot A with --factory-image FILE", cfg.Slot.Dir)
		case err != nil:
			fi, err := os.Stat(spec.FactoryImage)
			if err != nil {
				return fmt.Errorf("provision: --factory-image: %w", err)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("provision: --factory-image %s is not a regular file", spec.FactoryImage)
			}
		}
		return nil
	}
	if spec.FactoryImage != "" {
		return fmt.Errorf("provision: --factory-image is for the file backend; the %s backend's slots are written at the factory", cfg.Slot.Backend)
	}
	if _, err := OpenSlots(cfg.Slot, log); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

// checkRootFile reads a trusted root and checks that it parses as TUF root
// metadata signed by its own threshold of root keys; it returns the bytes.
func checkRootFile(field, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provision: %s: %w (copy device/%s.json from the project)", field, err, map[string]string{"release_root": "release-root", "fleet_root": "fleet-root"}[field])
	}
	md, err := metadata.Root().FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("provision: %s %s is not TUF root metadata: %w", field, path, err)
	}
	if err := md.VerifyDelegate(metadata.ROOT, md); err != nil {
		return nil, fmt.Errorf("provision: %s %s is not signed by its own root keys: %w", field, path, err)
	}
	return b, nil
}

// ProvisionDevice provisions a device: it checks everything first
// (CheckProvision), then, for the file backend, creates the device
// directory with the factory image in slot A, then writes the agent's
// state. A refused provision writes nothing.
func ProvisionDevice(cfg *Config, spec ProvisionSpec, log *slog.Logger) error {
	if err := CheckProvision(cfg, spec, log); err != nil {
		return err
	}
	if cfg.Slot.Backend == "file" && spec.FactoryImage != "" {
		f, err := os.Open(spec.FactoryImage)
		if err != nil {
			return fmt.Errorf("provision: --factory-image: %w", err)
		}
		limit := spec.BootLimit
		if limit == 0 {
			limit = DefaultBootLimit
		}
		err = fileslot.Create(cfg.Slot.Dir, f, limit)
		f.Close()
		if err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	return Provision(cfg.DataDir, spec.Version, spec.SecurityVersion)
}
