package replicatest_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/replicatest"
	"github.com/uptrust/uptrust/internal/testbin"
)

// TestIfMatchAcrossReplicas: two operators read the rollout (one ETag) and
// PATCH it at the same moment, each through another replica, with that
// ETag. At most one may be answered 200: the other changed a state it had
// not seen (a lost update) unless it is told 412. Repeated, since the race
// needs both requests between the other's read and commit.
func TestIfMatchAcrossReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	dir, _ := replicaProject(t, ctx)
	a := startReplica(t, ctx, dir, "a")
	b := startReplica(t, ctx, dir, "b")
	res := testbin.Run(t, exec.CommandContext(ctx, filepath.Join(binDir, "uptrust"), "token", "create",
		"--role", "operator", "--name", "ops", "--expires", "1d", "--dir", dir))
	if res.Code != 0 {
		t.Fatalf("token create: %v", res)
	}
	tok := strings.TrimSpace(res.Stdout)
	c := &http.Client{Timeout: 20 * time.Second}
	do := func(method, admin, etag, body string) (int, string) {
		u := "http://" + admin + "/api/v1/rollouts/" + replicatest.Product
		req, _ := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if etag != "" {
			req.Header.Set("If-Match", etag)
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag")
	}
	const rounds = 40
	both := 0
	for i := range rounds {
		code, etag := do(http.MethodGet, a.AdminAddr, "", "")
		if code != http.StatusOK {
			t.Fatalf("GET rollout: %d", code)
		}
		var codes [2]int
		var wg sync.WaitGroup
		for j, r := range []*replicatest.Replica{a, b} {
			wg.Go(func() {
				codes[j], _ = do(http.MethodPatch, r.AdminAddr, etag, fmt.Sprintf(`{"percent":%d}`, 1+(2*i+j)%100))
			})
		}
		wg.Wait()
		for _, code := range codes {
			if code != http.StatusOK && code != http.StatusPreconditionFailed {
				t.Fatalf("round %d: PATCH answered %d, want 200 or 412", i, code)
			}
		}
		switch {
		case codes[0] == http.StatusOK && codes[1] == http.StatusOK:
			both++
		case codes[0] != http.StatusOK && codes[1] != http.StatusOK:
			t.Fatalf("round %d: both PATCHes refused (%v); one must win", i, codes)
		}
	}
	if both != 0 {
		t.Errorf("in %d of %d rounds both replicas answered 200 to a PATCH with the same If-Match: lost updates", both, rounds)
	}
}
