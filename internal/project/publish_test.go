package project_test

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
)

// racingPayload is a payload during whose reading another publisher
// publishes: race runs once, at the first Read, after AddRelease has checked
// its spec and before it opens its transaction.
type racingPayload struct {
	io.Reader
	race func()
	once sync.Once
}

func (r *racingPayload) Read(b []byte) (int, error) {
	r.once.Do(r.race)
	return r.Reader.Read(b)
}

func TestAddReleaseChecksInTransaction(t *testing.T) {
	for _, tc := range []struct {
		name        string
		racer, mine project.ReleaseSpec
		want        func(error) bool
	}{
		{"duplicate version", releaseSpec("thermostat", "1.2.0", 2, "racer"), releaseSpec("thermostat", "1.2.0", 2, "mine"),
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "1.2.0 is published already") }},
		{"lowered security version", releaseSpec("thermostat", "1.2.0", 3, "racer"), releaseSpec("thermostat", "1.3.0", 2, "mine"),
			func(err error) bool { return errors.Is(err, release.ErrSecurityVersionLower) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := initDev(t, clock.NewFake(t0))
			ctx := t.Context()
			addProduct(t, p, thermostat())
			addRelease(t, p, releaseSpec("thermostat", "1.1.0", 2, "first"))
			var raceErr error
			var roleAfterRace, tsAfterRace, auditAfterRace int64
			mine := tc.mine
			mine.Payload = &racingPayload{Reader: mine.Payload, race: func() {
				_, raceErr = p.AddRelease(ctx, tc.racer)
				roleAfterRace = latest(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Version
				tsAfterRace = latest(t, p, deviceapi.RepoRelease, repo.RoleTimestamp).Version
				es, _ := p.Audit(ctx)
				auditAfterRace = int64(len(es))
			}}
			_, err := p.AddRelease(ctx, mine)
			if raceErr != nil {
				t.Fatalf("the racing release: %v", raceErr)
			}
			if !tc.want(err) {
				t.Fatalf("AddRelease after a racing release: %v", err)
			}
			// Nothing of the refused release is stored.
			rels, err := p.Store.Releases(ctx, "thermostat")
			if err != nil || len(rels) != 2 || rels[1].Version != tc.racer.Version || rels[1].SecurityVersion != tc.racer.SecurityVersion {
				t.Errorf("releases %+v, %v; want 1.1.0 and the racer's", rels, err)
			}
			if v := latest(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Version; v != roleAfterRace {
				t.Errorf("product role version %d, want %d as the racer left it", v, roleAfterRace)
			}
			if v := latest(t, p, deviceapi.RepoRelease, repo.RoleTimestamp).Version; v != tsAfterRace {
				t.Errorf("timestamp version %d, want %d as the racer left it", v, tsAfterRace)
			}
			if es, _ := p.Audit(ctx); int64(len(es)) != auditAfterRace {
				t.Errorf("%d audit entries, want %d as the racer left them", len(es), auditAfterRace)
			}
		})
	}
}

func TestAddReleaseReturnsWhatItPublished(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	ctx := t.Context()
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 2, strings.Repeat("image one ", 5000)))
	spec := releaseSpec("thermostat", "1.2.0", 3, strings.Repeat("image one ", 4000)+strings.Repeat("image two ", 1000))
	spec.Compression, spec.DeltaFrom = release.CompressionZstd, []string{"1.1.0"}
	pub, err := p.AddRelease(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := p.Store.Release(ctx, "thermostat", "1.2.0")
	if err != nil || !reflect.DeepEqual(pub.Release, stored) {
		t.Errorf("returned release\n %+v\nstored\n %+v (%v)", pub.Release, stored, err)
	}
	if m, err := release.DecodeManifest(stored.Manifest); err != nil || !reflect.DeepEqual(pub.Manifest, m) {
		t.Errorf("returned manifest\n %+v\nstored\n %+v (%v)", pub.Manifest, m, err)
	}
	tf := loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Signed.Targets["thermostat/1.2.0"]
	signed, err := release.ManifestFromCustom(tf.Custom)
	if err != nil || !reflect.DeepEqual(pub.Manifest, *signed) {
		t.Errorf("returned manifest\n %+v\nsigned\n %+v (%v)", pub.Manifest, signed, err)
	}
	if pub.Manifest.Payload.Compression != release.CompressionZstd || len(pub.Manifest.Deltas) != 1 || pub.Manifest.Deltas[0].From != "1.1.0" {
		t.Errorf("returned manifest payload %+v, deltas %+v", pub.Manifest.Payload, pub.Manifest.Deltas)
	}
}

func TestCheckCompression(t *testing.T) {
	for _, c := range []string{"", release.CompressionNone, release.CompressionZstd} {
		if err := project.CheckCompression(c); err != nil {
			t.Errorf("CheckCompression(%q): %v", c, err)
		}
	}
	if err := project.CheckCompression("gzip"); err == nil || !strings.Contains(err.Error(), `"gzip"`) {
		t.Errorf("CheckCompression(gzip): %v", err)
	}
	for _, tc := range []struct {
		compression string
		frame       int64
		ok          bool
	}{
		{"", 0, true},
		{release.CompressionZstd, 0, true},
		{release.CompressionZstd, project.MinZstdFrame, true},
		{release.CompressionZstd, project.MinZstdFrame - 1, false},
		{release.CompressionNone, 4 << 20, false},
		{"", 4 << 20, false},
	} {
		if err := project.CheckZstdFrame(tc.compression, tc.frame); (err == nil) != tc.ok {
			t.Errorf("CheckZstdFrame(%q, %d): %v, want ok %v", tc.compression, tc.frame, err, tc.ok)
		}
	}
}

// unreadPayload fails the test when read.
type unreadPayload struct{ t *testing.T }

func (u unreadPayload) Read([]byte) (int, error) {
	u.t.Error("the payload was read although the release is refused")
	return 0, io.EOF
}

// TestAddReleaseRefusesBeforeReadingThePayload: a version published
// already, or a lowered security version, is refused before minutes of
// hashing and compressing.
func TestAddReleaseRefusesBeforeReadingThePayload(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 2, "first"))
	for _, spec := range []project.ReleaseSpec{releaseSpec("thermostat", "1.1.0", 2, ""), releaseSpec("thermostat", "1.2.0", 1, "")} {
		spec.Payload = unreadPayload{t}
		if _, err := p.AddRelease(t.Context(), spec); err == nil {
			t.Fatalf("%s with security version %d was published", spec.Version, spec.SecurityVersion)
		}
	}
}
