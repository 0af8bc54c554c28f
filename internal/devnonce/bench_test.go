package devnonce_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/devnonce"
)

// BenchmarkUse: recording one fresh nonce in the shared table (one upsert;
// the opportunistic purge runs at most once a minute of the clock passed
// in, here once), on SQLite and PostgreSQL. What a state-changing device
// request pays on top of the in-memory check.
func BenchmarkUse(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			st, _ := twoStoresB(b, db)
			s := devnonce.New(st)
			now := time.Now()
			b.ResetTimer()
			for i := range b.N {
				n := devauth.Nonce{KeyID: "bench-key", Value: fmt.Sprint(i), Method: "POST", Until: now.Add(devauth.DefaultSkew)}
				if err := s.Use(b.Context(), n, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
