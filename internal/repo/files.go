package repo

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/store"
)

// Files is what a repository publishes under its base URL path.
type Files struct {
	// Metadata maps URL paths to signed documents.
	Metadata map[string][]byte
	// Targets maps URL paths to the target they serve.
	Targets map[string]FileTarget
}

// FileTarget is a target file by content.
type FileTarget struct {
	Target string
	SHA256 string
	Length int64
}

// KeepVersions is how many recent versions of targets roles and snapshots
// stay reachable, so that a client that read an older timestamp just before
// a publish still finds the documents it names.
const KeepVersions = 3

// Published lists the files of repository name under base (for example
// "/repo/release"): every root version (and the latest also as root.json, for
// provisioning), the last KeepVersions versions of every targets role and of
// the snapshot, the latest timestamp, and every target of the latest
// targets roles.
func Published(ctx context.Context, r store.Reader, name, base string) (Files, error) {
	all, err := r.AllMetadata(ctx, name)
	if err != nil {
		return Files{}, fmt.Errorf("repo %s: %w", name, err)
	}
	latest := map[string]store.Metadata{}
	for _, m := range all {
		if cur, ok := latest[m.Role]; !ok || m.Version > cur.Version {
			latest[m.Role] = m
		}
	}
	f := Files{Metadata: map[string][]byte{}, Targets: map[string]FileTarget{}}
	for _, m := range all {
		l := latest[m.Role]
		switch {
		case m.Role == RoleRoot:
			f.Metadata[deviceapi.MetadataPath(base, m.Role, m.Version)] = m.Body
		case m.Role == RoleTimestamp:
			if m.Version == l.Version {
				f.Metadata[deviceapi.MetadataPath(base, m.Role, m.Version)] = m.Body
			}
		case m.Version > l.Version-KeepVersions:
			f.Metadata[deviceapi.MetadataPath(base, m.Role, m.Version)] = m.Body
		}
	}
	if root, ok := latest[RoleRoot]; ok {
		f.Metadata[deviceapi.MetadataDir(base)+"/root.json"] = root.Body
	}
	roles, err := targetsRoles(ctx, r, name)
	if err != nil {
		return Files{}, err
	}
	for _, role := range roles {
		md, err := LoadTargets(ctx, r, name, role)
		if err != nil {
			return Files{}, err
		}
		for path, tf := range md.Signed.Targets {
			sum, ok := tf.Hashes["sha256"]
			if !ok {
				return Files{}, fmt.Errorf("repo %s: target %s has no sha256", name, path)
			}
			h := hex.EncodeToString(sum)
			f.Targets[deviceapi.TargetPath(base, path, h)] = FileTarget{Target: path, SHA256: h, Length: tf.Length}
		}
	}
	return f, nil
}
