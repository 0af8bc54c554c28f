package store

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// TestAuditHashEncoding spells out the canonical encoding documented in
// auditchain.go and checks AuditHash follows it: the encoding is a promise
// to whoever verifies a log with their own tools.
func TestAuditHashEncoding(t *testing.T) {
	e := AuditEntry{Seq: 12, Time: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.FixedZone("x", 3600)),
		Actor: "ci", Role: "operator", Action: "rollout.change", Object: "thermostat/1.1.0", Detail: "percent 10 -> 50",
		Outcome: "ok", RequestID: "r-1", PrevHash: AuditGenesis, Hash: "ignored"}
	enc := "uptrust-audit-v1\n" +
		"2:12\n" +
		"27:2026-03-01T11:00:00.123456Z\n" +
		"2:ci\n" + "8:operator\n" + "14:rollout.change\n" + "16:thermostat/1.1.0\n" + "16:percent 10 -> 50\n" +
		"2:ok\n" + "3:r-1\n" + "64:" + AuditGenesis + "\n"
	sum := sha256.Sum256([]byte(enc))
	if got, want := AuditHash(e), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("AuditHash = %s, want %s (the documented encoding)", got, want)
	}
}

// TestAuditHashFieldBoundaries: moving text from one field to the next
// changes the hash.
func TestAuditHashFieldBoundaries(t *testing.T) {
	a := AuditEntry{Seq: 1, Action: "x", Object: "ab", Detail: "c"}
	b := AuditEntry{Seq: 1, Action: "x", Object: "a", Detail: "bc"}
	if AuditHash(a) == AuditHash(b) {
		t.Error("entries differing in where a field ends hash the same")
	}
}

func TestVerifyAuditEmpty(t *testing.T) {
	v := VerifyAudit(AuditChain{AnchorHash: AuditGenesis, HeadHash: AuditGenesis}, nil)
	if !v.Intact || v.Entries != 0 {
		t.Errorf("empty chain: %+v, want intact", v)
	}
	v = VerifyAudit(AuditChain{AnchorHash: AuditGenesis, HeadSeq: 2, HeadHash: "h"}, nil)
	if v.Intact || v.Break.Kind != BreakMissing || v.Break.Seq != 1 {
		t.Errorf("every entry deleted: %+v, want missing from seq 1", v)
	}
}
