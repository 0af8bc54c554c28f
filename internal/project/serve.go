package project

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/store"
)

// Generation implements server.Source.
func (p *Project) Generation(ctx context.Context) (int64, error) { return p.Store.Generation(ctx) }

// Content implements server.Source: both repositories' published metadata
// and the blob files of their targets.
func (p *Project) Content(ctx context.Context) (*server.Content, error) {
	c := &server.Content{Metadata: map[string][]byte{}, Payloads: map[string]server.PayloadFile{}}
	for name, base := range map[string]string{deviceapi.RepoRelease: deviceapi.ReleaseBase, deviceapi.RepoFleet: deviceapi.FleetBase} {
		f, err := repo.Published(ctx, p.Store, name, base)
		if err != nil {
			return nil, err
		}
		for k, v := range f.Metadata {
			c.Metadata[k] = v
		}
		for k, t := range f.Targets {
			path, err := p.Blobs.Path(t.SHA256)
			if err != nil {
				return nil, err
			}
			c.Payloads[k] = server.PayloadFile{Path: path, Size: t.Length, SHA256: t.SHA256}
		}
	}
	return c, nil
}

// ResignDue implements server.Resigner: it re-signs the online roles of both
// repositories that have less than half their lifetime left.
func (p *Project) ResignDue(ctx context.Context) (bool, error) {
	changed := false
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		k, err := p.keys.online(name)
		if err != nil {
			return changed, err
		}
		now := p.Clock.Now()
		err = p.Store.Update(ctx, func(tx store.Tx) error {
			c, err := repo.ResignDue(ctx, tx, name, now, p.Lifetimes(), k)
			changed = changed || c
			return err
		})
		if err != nil {
			return changed, fmt.Errorf("project: re-signing %s: %w", name, err)
		}
	}
	return changed, nil
}

// AddReport implements server.ReportSink: one more report in the counter of
// its release × outcome × error class for the UTC day.
func (p *Project) AddReport(ctx context.Context, r report.Report, at time.Time) error {
	return p.Store.AddReport(ctx, store.ReportCount{Product: r.Product, Version: r.Version, Outcome: string(r.Outcome),
		ErrorClass: string(r.ErrorClass), Count: 1, Day: at.UTC().Truncate(24 * time.Hour)})
}
