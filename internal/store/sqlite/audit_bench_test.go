package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// auditBenchStore is a store with n audit entries, 100 per Update.
func auditBenchStore(b *testing.B, n int) *Store {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "uptrust.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += 100 {
		err := s.Update(ctx, func(tx store.Tx) error {
			for j := i; j < i+100 && j < n; j++ {
				actor := []string{"cli", "ci", "ops"}[j%3]
				if err := tx.AddAudit(ctx, store.AuditEntry{Time: base.Add(time.Duration(j) * time.Minute), Actor: actor,
					Action: "rollout.change", Object: fmt.Sprintf("p%d/1.0", j%50), Detail: "percent 10 -> 50"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkAuditVerify10k reads and verifies a chain of 10,000 entries.
func BenchmarkAuditVerify10k(b *testing.B) {
	s := auditBenchStore(b, 10000)
	ctx := context.Background()
	for b.Loop() {
		c, err := s.AuditChain(ctx)
		if err != nil {
			b.Fatal(err)
		}
		es, err := s.Audit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if v := store.VerifyAudit(c, es); !v.Intact || v.Entries != 10000 {
			b.Fatalf("%+v", v)
		}
	}
}

// BenchmarkAuditQuery10k is one filtered page of 50 newest entries of an
// actor out of 10,000, as the audit API answers it.
func BenchmarkAuditQuery10k(b *testing.B) {
	s := auditBenchStore(b, 10000)
	ctx := context.Background()
	for b.Loop() {
		es, err := s.AuditQuery(ctx, store.AuditFilter{Actor: "ops", Newest: true, Limit: 50})
		if err != nil || len(es) != 50 {
			b.Fatal(len(es), err)
		}
	}
}

// BenchmarkAuditAppend is one Update appending one entry to a chain.
func BenchmarkAuditAppend(b *testing.B) {
	s := auditBenchStore(b, 1000)
	ctx := context.Background()
	for b.Loop() {
		if err := s.Update(ctx, func(tx store.Tx) error {
			return tx.AddAudit(ctx, store.AuditEntry{Time: time.Now(), Action: "rollout.change", Object: "p/1.0"})
		}); err != nil {
			b.Fatal(err)
		}
	}
}
