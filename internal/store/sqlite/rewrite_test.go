package sqlite

import (
	"fmt"
	"testing"
)

func TestRewrite(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a FROM t WHERE x = $1 AND y = $12`: `SELECT a FROM t WHERE x = ?1 AND y = ?12`,
		`SELECT a FROM t WHERE x = ?`:              `SELECT a FROM t WHERE x = ?`,
		`UPDATE t SET a = $2 WHERE b < $1`:         `UPDATE t SET a = ?2 WHERE b < ?1`,
	} {
		for range 2 { // the second time from the cache
			if got := rewrite(in); got != want {
				t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
			}
		}
	}
}

// TestRewriteCacheBounded checks that queries with literals (LIMIT n) do not
// grow the cache without end, and are still rewritten past the bound.
func TestRewriteCacheBounded(t *testing.T) {
	for i := range 2 * maxRewritten {
		q := fmt.Sprintf(`SELECT a FROM t WHERE x = $1 LIMIT %d`, i)
		if got, want := rewrite(q), fmt.Sprintf(`SELECT a FROM t WHERE x = ?1 LIMIT %d`, i); got != want {
			t.Fatalf("rewrite(%q) = %q, want %q", q, got, want)
		}
	}
	n := 0
	rewritten.Range(func(any, any) bool { n++; return true })
	if n > maxRewritten || nRewritten.Load() > maxRewritten {
		t.Fatalf("cache holds %d entries (counted %d), want at most %d", n, nRewritten.Load(), maxRewritten)
	}
}
