package project

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/store"
)

// Generation implements server.Source.
func (p *Project) Generation(ctx context.Context) (int64, error) { return p.Store.Generation(ctx) }

// Content implements server.Source: both repositories' published metadata,
// the blob files of their targets, and every product with every release
// ever added (reports may be about any of them).
func (p *Project) Content(ctx context.Context) (*server.Content, error) {
	c := &server.Content{Metadata: map[string][]byte{}, Payloads: map[string]server.PayloadFile{}, Releases: map[string][]string{}}
	prods, err := p.Store.Products(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: products: %w", err)
	}
	for _, pr := range prods {
		c.Releases[pr.Name] = []string{}
	}
	rels, err := p.Store.Releases(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("project: releases: %w", err)
	}
	for _, r := range rels {
		c.Releases[r.Product] = append(c.Releases[r.Product], r.Version)
	}
	for name, base := range map[string]string{deviceapi.RepoRelease: deviceapi.ReleaseBase, deviceapi.RepoFleet: deviceapi.FleetBase} {
		f, err := repo.Published(ctx, p.Store, name, base)
		if err != nil {
			return nil, err
		}
		for k, v := range f.Metadata {
			c.Metadata[k] = v
		}
		for k, t := range f.Targets {
			pf := server.PayloadFile{Size: t.Length, SHA256: t.SHA256}
			if fs, ok := p.Blobs.(*blob.Store); ok {
				// Files go out with sendfile.
				path, err := fs.Path(t.SHA256)
				if err != nil {
					return nil, err
				}
				pf.Path = path
			} else {
				c.Store = payloadStore{p.Blobs}
			}
			c.Payloads[k] = pf
		}
	}
	return c, nil
}

// payloadStore serves payloads from a blob store that is not a directory.
type payloadStore struct{ b blob.Storage }

func (s payloadStore) OpenPayload(ctx context.Context, sha string) (server.Payload, error) {
	return s.b.Open(ctx, sha)
}

// readBlob reads a small blob (a support declaration) of the given
// signed length whole.
func (p *Project) readBlob(ctx context.Context, sha string, length int64) ([]byte, error) {
	f, err := p.Blobs.Open(ctx, sha)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, length+1))
	if err != nil {
		return nil, fmt.Errorf("project: blob %s: %w", sha, err)
	}
	if int64(len(b)) != length {
		return nil, fmt.Errorf("project: blob %s has %d bytes, the metadata says %d", sha, len(b), length)
	}
	return b, nil
}

// ResignLease is the store lease a server holds while it re-signs, so that
// of several servers on one database exactly one re-signs at a time.
const ResignLease = "resign"

// ResignLeaseTTL is how long the re-signing lease lasts unless renewed.
// The holder renews it on every ResignDue call (every
// server.DefaultResignEvery), so it survives two missed calls; when its
// holder dies, another server takes it over on its first call after the
// lease expired: at most ResignLeaseTTL + server.DefaultResignEvery after
// the holder's last renewal.
const ResignLeaseTTL = 10 * time.Second

// ResignDue implements server.Resigner: when this process holds (or can
// take) the ResignLease, it re-signs the online roles of both repositories
// that have less than half their lifetime left and, at most every
// DecideEvery, runs the decision loop of managed rollouts (Tick);
// otherwise it does nothing.
// It writes (and so bumps the store generation) only when something is
// due.
func (p *Project) ResignDue(ctx context.Context) (bool, error) {
	held, err := p.Store.AcquireLease(ctx, ResignLease, p.LeaseHolder(), ResignLeaseTTL, p.Clock.Now())
	if err != nil || !held {
		return false, err
	}
	changed := false
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		now := p.Clock.Now()
		// A read first, so that a server with nothing due does not bump
		// the generation and make every server reload.
		d, err := repo.CheckDue(ctx, p.Store, name, now, p.Lifetimes())
		if err != nil {
			return changed, fmt.Errorf("project: checking %s for re-signing: %w", name, err)
		}
		if !d.Any() {
			continue
		}
		k, err := p.keys.online(name)
		if err != nil {
			return changed, err
		}
		err = p.Store.Update(ctx, func(tx store.Tx) error {
			c, err := repo.ResignDue(ctx, tx, name, now, p.Lifetimes(), k)
			changed = changed || c
			return err
		})
		if err != nil {
			return changed, fmt.Errorf("project: re-signing %s: %w", name, err)
		}
	}
	// The decision loop of managed rollouts runs under the same lease, so
	// that only one replica decides.
	steps, err := p.tickDue(ctx)
	return changed || steps > 0, err
}

// LeaseHolder is the random id this Project holds store leases under,
// made on first use; each process (each Project) has its own.
func (p *Project) LeaseHolder() string {
	p.holderOnce.Do(func() { p.holder = rand.Text() })
	return p.holder
}

// ReleaseResignLease gives up the re-signing lease if this Project holds
// it, so that another server takes it over at once rather than after
// ResignLeaseTTL; serve calls it when shutting down.
func (p *Project) ReleaseResignLease(ctx context.Context) error {
	return p.Store.ReleaseLease(ctx, ResignLease, p.LeaseHolder())
}

// DefaultReportRowsPerDay caps the report counters one UTC day can create.
// Releases × outcomes × classes that devices actually report stay far
// below it; it bounds what forged reports about real releases can add.
const DefaultReportRowsPerDay = 10_000

// AddReport implements server.ReportSink: one more report in the counter of
// its release × outcome × error class for the UTC day, the class as
// report.Counted gives it. A report that needs a new counter on a day that
// has ReportRowsPerDay of them already is refused with
// server.ErrReportsFull.
func (p *Project) AddReport(ctx context.Context, r report.Report, at time.Time) error {
	r = r.Counted()
	err := p.Store.AddReportCapped(ctx, store.ReportCount{Product: r.Product, Version: r.Version, Outcome: string(r.Outcome),
		ErrorClass: string(r.ErrorClass), Count: 1, Day: at.UTC().Truncate(24 * time.Hour)}, p.reportRowsPerDay())
	if errors.Is(err, store.ErrFull) {
		return fmt.Errorf("project: %w: %w", server.ErrReportsFull, err)
	}
	return err
}

func (p *Project) reportRowsPerDay() int {
	if p.ReportRowsPerDay > 0 {
		return p.ReportRowsPerDay
	}
	return DefaultReportRowsPerDay
}

// FleetOnlineKeys returns the fleet repository's online signers (targets,
// snapshot, timestamp): package managed signs each managed device's own
// fleet view with them.
func (p *Project) FleetOnlineKeys() (repo.OnlineKeys, error) {
	return p.keys.online(deviceapi.RepoFleet)
}
