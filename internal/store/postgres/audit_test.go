package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

// Entries come back in chain order after a purge and a VACUUM that frees
// space at the start of the table (where PostgreSQL puts new rows again),
// which ordering by physical position (ctid) would not give, and the chain
// stays intact.
func TestAuditOrderAfterPurgeAndVacuum(t *testing.T) {
	ctx := context.Background()
	s := openT(t, pgtest.URL(t))
	defer s.Close()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	same := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(at time.Time, from, n int) {
		t.Helper()
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := from; i < from+n; i++ {
				if err := tx.AddAudit(ctx, store.AuditEntry{Time: at, Action: "a", Object: fmt.Sprint(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	add(old, 0, 500)
	add(same, 0, 3)
	if _, err := s.Purge(ctx, store.TableAudit, same); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM audit`); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 30; i += 3 {
		add(same, i, 3)
	}
	got, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Fatalf("%d entries, want 30", len(got))
	}
	for i, e := range got {
		if e.Object != fmt.Sprint(i) {
			t.Fatalf("entry %d is %s, want the order they were added in: %v", i, e.Object, got)
		}
	}
	c, err := s.AuditChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := store.VerifyAudit(c, got); !v.Intact || v.AnchorSeq != 500 || v.FirstSeq != 501 {
		t.Errorf("VerifyAudit after purge, vacuum and appends = %+v, want intact from seq 501 after anchor 500", v)
	}
}

// Purges running while Updates append: both lock the audit_chain row, so
// a purge never writes back a head an append has moved since it read it,
// and the chain stays whole, its head on the last entry appended.
func TestPurgeAuditDuringAppends(t *testing.T) {
	ctx := context.Background()
	s := openT(t, pgtest.URL(t))
	defer s.Close()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				err := s.Update(ctx, func(tx store.Tx) error {
					return tx.AddAudit(ctx, store.AuditEntry{Time: base.Add(time.Duration(w*each+i) * time.Second), Action: "a", Object: fmt.Sprint(w, i)})
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var purged atomic.Int64
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			default:
			}
			n, err := s.Purge(ctx, store.TableAudit, base.Add(time.Duration(i)*time.Second))
			if err != nil {
				errs <- err
				return
			}
			purged.Add(n)
			if i >= writers*each {
				return
			}
		}
	}()
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c, err := s.AuditChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := store.VerifyAudit(c, es)
	if !v.Intact || v.HeadSeq != writers*each || int64(len(es))+purged.Load() != writers*each {
		t.Errorf("after purges during appends: %+v, %d purged; want intact, head %d, every entry stored or purged once",
			v, purged.Load(), writers*each)
	}
}
