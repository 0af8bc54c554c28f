package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// equalAudit compares what a caller gives AddAudit with what comes back:
// the time to the microsecond, the defaults filled in.
func equalAudit(got, want store.AuditEntry) bool {
	actor, outcome := want.Actor, want.Outcome
	if actor == "" {
		actor = store.ActorCLI
	}
	if outcome == "" {
		outcome = store.OutcomeOK
	}
	return got.Time.Equal(want.Time.Truncate(time.Microsecond)) && got.Action == want.Action && got.Object == want.Object &&
		got.Detail == want.Detail && got.Actor == actor && got.Role == want.Role && got.Outcome == outcome &&
		got.RequestID == want.RequestID
}

func wantAudit(t *testing.T, what string, got []store.AuditEntry, err error, want ...store.AuditEntry) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !slices.EqualFunc(got, want, equalAudit) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// wantIntact verifies the stored chain and fails the test when it is
// broken.
func wantIntact(t *testing.T, s store.Reader, what string) store.AuditVerification {
	t.Helper()
	ctx := context.Background()
	c, err := s.AuditChain(ctx)
	if err != nil {
		t.Fatalf("%s: AuditChain: %v", what, err)
	}
	es, err := s.Audit(ctx)
	if err != nil {
		t.Fatalf("%s: Audit: %v", what, err)
	}
	v := store.VerifyAudit(c, es)
	if !v.Intact {
		t.Errorf("%s: chain broken: %+v", what, v.Break)
	}
	return v
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Entries come back in the order they were added, whatever their
	// times, across Updates too.
	late := store.AuditEntry{Time: at(time.Hour), Action: "release.add", Object: "p/1.0", Detail: "kind security"}
	b1 := store.AuditEntry{Time: at(0), Action: "product.add", Object: "p", Detail: "hardware rev-a",
		Actor: "ci", Role: store.RoleReleaseManager, RequestID: "req-1"}
	b2 := store.AuditEntry{Time: at(0), Action: "rollout.start", Object: "p/1.0", Outcome: store.OutcomeRefused}
	early := store.AuditEntry{Time: at(-time.Microsecond), Action: "project.init", Object: "release", Outcome: store.OutcomeFailed}
	update(t, s, func(tx store.Tx) error {
		if err := errors.Join(tx.AddAudit(ctx, late), tx.AddAudit(ctx, b1)); err != nil {
			return err
		}
		got, err := tx.Audit(ctx)
		wantAudit(t, "tx.Audit of own writes", got, err, late, b1)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		return errors.Join(tx.AddAudit(ctx, b2), tx.AddAudit(ctx, early))
	})
	got, err := s.Audit(ctx)
	wantAudit(t, "Audit", got, err, late, b1, b2, early)

	gen := generation(t, s)
	for _, bad := range []store.AuditEntry{
		{Time: at(0), Object: "p"},
		{Time: at(0), Action: "x", Outcome: "maybe"},
	} {
		err = s.Update(ctx, func(tx store.Tx) error { return tx.AddAudit(ctx, bad) })
		if err == nil {
			t.Errorf("AddAudit(%+v) succeeded", bad)
		}
	}
	got, err = s.Audit(ctx)
	wantAudit(t, "Audit after refused entries", got, err, late, b1, b2, early)
	if g := generation(t, s); g != gen {
		t.Errorf("generation after failed Update = %d, want %d", g, gen)
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.AuditChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.AuditChain{AnchorHash: store.AuditGenesis, HeadHash: store.AuditGenesis}); c != want {
		t.Errorf("AuditChain of an empty store = %+v, want %+v", c, want)
	}
	for i := range 3 {
		update(t, s, func(tx store.Tx) error {
			return errors.Join(
				tx.AddAudit(ctx, store.AuditEntry{Time: at(time.Duration(i) * time.Minute), Action: "a", Object: fmt.Sprint(i)}),
				tx.AddAudit(ctx, store.AuditEntry{Time: at(time.Duration(i) * time.Minute), Action: "b", Object: fmt.Sprint(i)}))
		})
	}
	es, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prev := store.AuditGenesis
	for i, e := range es {
		if e.Seq != int64(i+1) {
			t.Errorf("entry %d has seq %d, want %d", i, e.Seq, i+1)
		}
		if e.PrevHash != prev {
			t.Errorf("seq %d prev hash %s, want %s", e.Seq, e.PrevHash, prev)
		}
		if h := store.AuditHash(e); e.Hash != h {
			t.Errorf("seq %d hash %s, want AuditHash %s", e.Seq, e.Hash, h)
		}
		prev = e.Hash
	}
	c, err = s.AuditChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.HeadSeq != 6 || c.HeadHash != prev || c.AnchorSeq != 0 || c.AnchorHash != store.AuditGenesis {
		t.Errorf("AuditChain = %+v, want head 6 %s, anchor 0 genesis", c, prev)
	}
	if v := wantIntact(t, s, "after 6 appends"); v.Entries != 6 || v.FirstSeq != 1 || v.LastSeq != 6 {
		t.Errorf("VerifyAudit = %+v, want 6 entries from 1 to 6", v)
	}
}

// testAuditChainRollback: an append that rolls back leaves no gap.
func testAuditChainRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	update(t, s, func(tx store.Tx) error { return tx.AddAudit(ctx, store.AuditEntry{Time: at(0), Action: "a"}) })
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AddAudit(ctx, store.AuditEntry{Time: at(0), Action: "lost"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	update(t, s, func(tx store.Tx) error { return tx.AddAudit(ctx, store.AuditEntry{Time: at(0), Action: "b"}) })
	es, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[1].Seq != 2 || es[1].Action != "b" {
		t.Errorf("Audit after a rolled-back append = %+v, want a (1), b (2)", es)
	}
	wantIntact(t, s, "after a rolled-back append")
}

// testConcurrentAudit: concurrent appends take distinct, gapless sequence
// numbers and keep the chain intact.
func testConcurrentAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Update(ctx, func(tx store.Tx) error {
				return tx.AddAudit(ctx, store.AuditEntry{Time: at(0), Action: "c", Object: fmt.Sprint(i)})
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent AddAudit: %v", err)
		}
	}
	if v := wantIntact(t, s, "after concurrent appends"); v.Entries != n || v.LastSeq != n {
		t.Errorf("VerifyAudit = %+v, want %d entries", v, n)
	}
}

func testAuditQuery(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1 := store.AuditEntry{Time: at(0), Action: "token.create", Object: "ci", Actor: store.ActorCLI}
	e2 := store.AuditEntry{Time: at(time.Hour), Action: "rollout.change", Object: "p/1.0", Actor: "ops", Role: store.RoleOperator, RequestID: "r2"}
	e3 := store.AuditEntry{Time: at(2 * time.Hour), Action: "rollout.change", Object: "p/1.0", Actor: "ops", Role: store.RoleOperator, Outcome: store.OutcomeRefused}
	e4 := store.AuditEntry{Time: at(3 * time.Hour), Action: "rollout.change", Object: "q/2.0", Actor: "ci", Role: store.RoleOperator}
	update(t, s, func(tx store.Tx) error {
		return errors.Join(tx.AddAudit(ctx, e1), tx.AddAudit(ctx, e2), tx.AddAudit(ctx, e3), tx.AddAudit(ctx, e4))
	})
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []store.AuditEntry
	}{
		{"all", store.AuditFilter{}, []store.AuditEntry{e1, e2, e3, e4}},
		{"action", store.AuditFilter{Action: "rollout.change"}, []store.AuditEntry{e2, e3, e4}},
		{"object", store.AuditFilter{Object: "p/1.0"}, []store.AuditEntry{e2, e3}},
		{"actor", store.AuditFilter{Actor: "ops"}, []store.AuditEntry{e2, e3}},
		{"actor cli", store.AuditFilter{Actor: store.ActorCLI}, []store.AuditEntry{e1}},
		{"outcome", store.AuditFilter{Outcome: store.OutcomeRefused}, []store.AuditEntry{e3}},
		{"since inclusive", store.AuditFilter{Since: e2.Time}, []store.AuditEntry{e2, e3, e4}},
		{"until exclusive", store.AuditFilter{Until: e3.Time}, []store.AuditEntry{e1, e2}},
		{"since and until", store.AuditFilter{Since: e2.Time, Until: e4.Time}, []store.AuditEntry{e2, e3}},
		{"limit", store.AuditFilter{Limit: 2}, []store.AuditEntry{e1, e2}},
		{"after seq", store.AuditFilter{AfterSeq: 2}, []store.AuditEntry{e3, e4}},
		{"after seq and limit", store.AuditFilter{AfterSeq: 1, Limit: 2}, []store.AuditEntry{e2, e3}},
		{"newest", store.AuditFilter{Newest: true, Limit: 3}, []store.AuditEntry{e4, e3, e2}},
		{"newest before seq", store.AuditFilter{Newest: true, AfterSeq: 3}, []store.AuditEntry{e2, e1}},
		{"combined", store.AuditFilter{Action: "rollout.change", Actor: "ops", Outcome: store.OutcomeOK}, []store.AuditEntry{e2}},
		{"none", store.AuditFilter{Object: "nothing"}, nil},
	} {
		got, err := s.AuditQuery(ctx, tc.f)
		wantAudit(t, "AuditQuery "+tc.name, got, err, tc.want...)
	}
}

func testPurgeAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := func(d time.Duration, action string) store.AuditEntry {
		return store.AuditEntry{Time: at(d), Action: action, Object: "p"}
	}
	// c is appended first but is the newest: the clock went back. A cut
	// after a removes c too, so that the chain stays whole.
	a, b, c, d := e(0, "a"), e(time.Microsecond, "b"), e(time.Hour, "c"), e(2*time.Hour, "d")
	update(t, s, func(tx store.Tx) error {
		return errors.Join(tx.AddAudit(ctx, a), tx.AddAudit(ctx, b), tx.AddAudit(ctx, d))
	})
	seed(t, s, "p", "1.0")
	gen := generation(t, s)
	n, err := s.Purge(ctx, store.TableAudit, b.Time)
	if err != nil || n != 1 {
		t.Fatalf("Purge(audit, time of b) = %d, %v; want 1 (a only: the bound is exclusive)", n, err)
	}
	got, err := s.Audit(ctx)
	wantAudit(t, "Audit after purge", got, err, b, d)
	v := wantIntact(t, s, "after purging a")
	if v.AnchorSeq != 1 || v.FirstSeq != 2 || v.LastSeq != 3 {
		t.Errorf("after purging seq 1: %+v, want anchor 1, entries 2 to 3", v)
	}
	update(t, s, func(tx store.Tx) error { return tx.AddAudit(ctx, c) })
	wantIntact(t, s, "after appending c")
	n, err = s.Purge(ctx, store.TableAudit, d.Time)
	if err != nil || n != 3 {
		t.Fatalf("Purge(audit, time of d) = %d, %v; want 3 (b, d, and c: d precedes c in the chain)", n, err)
	}
	got, err = s.Audit(ctx)
	wantAudit(t, "Audit after purging all", got, err)
	v = wantIntact(t, s, "after purging everything")
	if v.AnchorSeq != 4 || v.HeadSeq != 4 || v.AnchorHash != v.HeadHash {
		t.Errorf("after purging everything: %+v, want anchor = head = seq 4", v)
	}
	if g := generation(t, s); g != gen+1 {
		t.Errorf("generation after Purge = %d, want %d (the append of c only)", g, gen+1)
	}
	// Appends go on from the anchor.
	update(t, s, func(tx store.Tx) error { return tx.AddAudit(ctx, e(3*time.Hour, "e")) })
	if v := wantIntact(t, s, "after appending to a purged chain"); v.FirstSeq != 5 {
		t.Errorf("first seq after purge and append = %d, want 5", v.FirstSeq)
	}
	if n, err := s.Purge(ctx, store.TableAudit, a.Time); err != nil || n != 0 {
		t.Errorf("Purge(audit, before everything) = %d, %v; want 0", n, err)
	}
	// Purging the audit log leaves the project alone.
	if _, err := s.Release(ctx, "p", "1.0"); err != nil {
		t.Errorf("Release after purging the audit log: %v", err)
	}
}

func token(id, name, role string, created time.Time) store.Token {
	return store.Token{ID: id, Name: name, Role: role, SecretHash: "hash-" + id, Created: created, Expires: created.Add(90 * 24 * time.Hour)}
}

func equalToken(a, b store.Token) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Role == b.Role && a.SecretHash == b.SecretHash &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && a.Revoked.Equal(b.Revoked) && a.LastUsed.Equal(b.LastUsed)
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	ci := token("id1", "ci", store.RoleOperator, at(0))
	adm := token("id2", "admin", store.RoleAdmin, at(time.Hour))
	update(t, s, func(tx store.Tx) error { return errors.Join(tx.AddToken(ctx, ci), tx.AddToken(ctx, adm)) })
	got, err := s.Token(ctx, "id1")
	if err != nil || !equalToken(got, ci) {
		t.Errorf("Token(id1) = %+v, %v; want %+v", got, err, ci)
	}
	_, err = s.Token(ctx, "nope")
	wantNotFound(t, "Token(nope)", err)

	for _, bad := range []store.Token{
		token("id1", "other", store.RoleAuditor, at(0)), // id taken
		token("id3", "ci", store.RoleAuditor, at(0)),    // name taken
		token("id4", "x", "root", at(0)),                // unknown role
		token("", "x", store.RoleAuditor, at(0)),        // no id
		{ID: "id5", Name: "x", Role: store.RoleAuditor}, // no hash
	} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.AddToken(ctx, bad) })
		if err == nil {
			t.Errorf("AddToken(%+v) succeeded", bad)
		}
		if bad.ID == "id1" || bad.Name == "ci" {
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("AddToken(%+v) = %v, want ErrConflict", bad, err)
			}
		}
	}

	revoked := at(2 * time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.RevokeToken(ctx, "id1", revoked) })
	err = s.Update(ctx, func(tx store.Tx) error { return tx.RevokeToken(ctx, "id1", at(3*time.Hour)) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("revoking twice = %v, want ErrConflict", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.RevokeToken(ctx, "nope", revoked) })
	wantNotFound(t, "RevokeToken(nope)", err)

	// A revoked token's name can be given to a new one.
	ci2 := token("id6", "ci", store.RoleOperator, at(4*time.Hour))
	update(t, s, func(tx store.Tx) error { return tx.AddToken(ctx, ci2) })
	ci.Revoked = revoked
	all, err := s.Tokens(ctx)
	if err != nil || !slices.EqualFunc(all, []store.Token{adm, ci, ci2}, equalToken) {
		t.Errorf("Tokens = %+v, %v; want admin, ci (revoked), ci", all, err)
	}
}

func testTouchToken(t *testing.T, s store.Store) {
	ctx := context.Background()
	update(t, s, func(tx store.Tx) error { return tx.AddToken(ctx, token("id1", "ci", store.RoleOperator, at(0))) })
	gen := generation(t, s)
	day := func(d time.Duration) time.Time { return at(d).UTC().Truncate(24 * time.Hour) }
	for _, tc := range []struct {
		touch time.Time
		want  time.Time
	}{
		{at(48 * time.Hour), day(48 * time.Hour)},
		{at(24 * time.Hour), day(48 * time.Hour)}, // never backwards
		{at(72 * time.Hour), day(72 * time.Hour)},
	} {
		if err := s.TouchToken(ctx, "id1", tc.touch); err != nil {
			t.Fatalf("TouchToken: %v", err)
		}
		got, err := s.Token(ctx, "id1")
		if err != nil || !got.LastUsed.Equal(tc.want) {
			t.Errorf("after TouchToken(%v): LastUsed %v, %v; want %v", tc.touch, got.LastUsed, err, tc.want)
		}
	}
	wantNotFound(t, "TouchToken(nope)", s.TouchToken(ctx, "nope", at(0)))
	if g := generation(t, s); g != gen {
		t.Errorf("generation after TouchToken = %d, want %d", g, gen)
	}
}

func testPurgeTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	live := token("live", "live", store.RoleOperator, at(0))
	expired := token("expired", "expired", store.RoleOperator, at(0))
	expired.Expires = at(time.Hour)
	revoked := token("revoked", "revoked", store.RoleOperator, at(0))
	update(t, s, func(tx store.Tx) error {
		return errors.Join(tx.AddToken(ctx, live), tx.AddToken(ctx, expired), tx.AddToken(ctx, revoked),
			tx.RevokeToken(ctx, "revoked", at(2*time.Hour)))
	})
	if n, err := s.Purge(ctx, store.TableTokens, at(time.Hour)); err != nil || n != 0 {
		t.Errorf("Purge(tokens, at expiry) = %d, %v; want 0 (the bound is exclusive)", n, err)
	}
	if n, err := s.Purge(ctx, store.TableTokens, at(3*time.Hour)); err != nil || n != 2 {
		t.Errorf("Purge(tokens) = %d, %v; want 2", n, err)
	}
	all, err := s.Tokens(ctx)
	if err != nil || len(all) != 1 || all[0].ID != "live" {
		t.Errorf("Tokens after purge = %+v, %v; want live only", all, err)
	}
}
