package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The audit hash chain.
//
// Each entry's Hash is the SHA-256 of a canonical encoding of its fields
// and of PrevHash, the Hash of the entry before it (AuditGenesis for the
// first entry). Changing, removing or inserting an entry therefore breaks
// either its own hash or the next entry's link, which VerifyAudit finds.
// Someone able to rewrite the whole database can recompute every hash
// after the change: record the head (seq and hash, printed by uptrust
// audit verify) somewhere else now and then to catch that too.
//
// The canonical encoding is the line "uptrust-audit-v1" followed by each
// field as "<length in bytes>:<bytes>\n", in this order: seq (decimal),
// time (UTC, "2006-01-02T15:04:05.000000Z", microseconds, the precision
// every store keeps), actor, role, action, object, detail, outcome,
// request id, prev hash. Lengths make the encoding unambiguous whatever
// the fields contain. It never changes; a new encoding gets a new version
// line.

// AuditGenesis is the PrevHash of the first entry of a chain.
const AuditGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// auditTimeLayout is the time of the canonical encoding.
const auditTimeLayout = "2006-01-02T15:04:05.000000Z"

// AuditHash returns the hex SHA-256 of e's canonical encoding (its Hash
// field excluded).
func AuditHash(e AuditEntry) string {
	h := sha256.New()
	h.Write([]byte("uptrust-audit-v1\n"))
	for _, f := range []string{
		strconv.FormatInt(e.Seq, 10),
		e.Time.UTC().Format(auditTimeLayout),
		e.Actor, e.Role, e.Action, e.Object, e.Detail, e.Outcome, e.RequestID,
		e.PrevHash,
	} {
		fmt.Fprintf(h, "%d:%s\n", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SealAudit returns e as AddAudit stores it after the chain's head: the
// defaults filled in, Time in UTC truncated to the microsecond, Seq,
// PrevHash and Hash set. It fails when Action is empty or Outcome is not
// one of the Outcome constants. Store implementations call it.
func SealAudit(head AuditChain, e AuditEntry) (AuditEntry, error) {
	if e.Action == "" {
		return e, fmt.Errorf("empty action")
	}
	if e.Actor == "" {
		e.Actor = ActorCLI
	}
	switch e.Outcome {
	case "":
		e.Outcome = OutcomeOK
	case OutcomeOK, OutcomeRefused, OutcomeFailed:
	default:
		return e, fmt.Errorf("outcome %q is not %s, %s or %s", e.Outcome, OutcomeOK, OutcomeRefused, OutcomeFailed)
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Seq = head.HeadSeq + 1
	e.PrevHash = head.HeadHash
	e.Hash = AuditHash(e)
	return e, nil
}

// Kinds of breaks VerifyAudit reports.
const (
	// BreakEdited: an entry's fields no longer hash to its stored hash.
	BreakEdited = "edited"
	// BreakMissing: sequence numbers are skipped, or the chain ends
	// before its head.
	BreakMissing = "missing"
	// BreakInserted: an entry that the chain around it does not account
	// for (out of order, beyond the head, or skipped by the next link).
	BreakInserted = "inserted"
	// BreakLink: an entry's PrevHash is not the hash of the entry before
	// it, which is intact: the one before was replaced whole.
	BreakLink = "link"
)

// AuditBreak says where and how a chain is broken.
type AuditBreak struct {
	// Seq is the first sequence number at which the chain is broken.
	Seq int64 `json:"seq"`
	// Kind is one of the Break constants.
	Kind string `json:"kind"`
	// Reason says it in words, with the hashes involved.
	Reason string `json:"reason"`
}

// AuditVerification is the result of VerifyAudit.
type AuditVerification struct {
	Intact bool `json:"intact"`
	// Entries is how many entries were checked; FirstSeq and LastSeq the
	// first and last sequence numbers stored (0 when none).
	Entries  int   `json:"entries"`
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// Anchor and head of the chain as stored.
	AnchorSeq  int64  `json:"anchor_seq"`
	AnchorHash string `json:"anchor_hash"`
	HeadSeq    int64  `json:"head_seq"`
	HeadHash   string `json:"head_hash"`
	LegacySeq  int64  `json:"legacy_seq,omitempty"`
	// Break is the first break found; nil when Intact.
	Break *AuditBreak `json:"break,omitempty"`
}

// VerifyAudit walks entries, which must be every stored entry in sequence
// order, from the chain's anchor to its head, and reports the first break.
func VerifyAudit(c AuditChain, entries []AuditEntry) AuditVerification {
	v := AuditVerification{Entries: len(entries), AnchorSeq: c.AnchorSeq, AnchorHash: c.AnchorHash,
		HeadSeq: c.HeadSeq, HeadHash: c.HeadHash, LegacySeq: c.LegacySeq}
	if len(entries) > 0 {
		v.FirstSeq, v.LastSeq = entries[0].Seq, entries[len(entries)-1].Seq
	}
	v.Break = findBreak(c, entries)
	v.Intact = v.Break == nil
	return v
}

func findBreak(c AuditChain, es []AuditEntry) *AuditBreak {
	prevSeq, prevHash := c.AnchorSeq, c.AnchorHash
	for i, e := range es {
		switch {
		case e.Seq <= prevSeq:
			return &AuditBreak{Seq: e.Seq, Kind: BreakInserted,
				Reason: fmt.Sprintf("seq %d comes after seq %d: an entry was inserted out of order", e.Seq, prevSeq)}
		case e.Seq > c.HeadSeq:
			return &AuditBreak{Seq: e.Seq, Kind: BreakInserted,
				Reason: fmt.Sprintf("seq %d is beyond the chain head (seq %d): it was added outside uptrust", e.Seq, c.HeadSeq)}
		case e.Seq > prevSeq+1:
			return &AuditBreak{Seq: prevSeq + 1, Kind: BreakMissing,
				Reason: fmt.Sprintf("%s missing between seq %d and seq %d", seqRange(prevSeq+1, e.Seq-1), prevSeq, e.Seq)}
		}
		if got := AuditHash(e); got != e.Hash {
			// The entry after links straight to the one before: this one
			// was slipped in between (and later ones renumbered).
			if i+1 < len(es) && es[i+1].PrevHash == prevHash {
				return &AuditBreak{Seq: e.Seq, Kind: BreakInserted,
					Reason: fmt.Sprintf("seq %d was inserted: the entry after it links to seq %d's hash %s", e.Seq, prevSeq, short(prevHash))}
			}
			return &AuditBreak{Seq: e.Seq, Kind: BreakEdited,
				Reason: fmt.Sprintf("seq %d was edited: its fields hash to %s, its stored hash is %s", e.Seq, short(got), short(e.Hash))}
		}
		if e.PrevHash != prevHash {
			return &AuditBreak{Seq: e.Seq, Kind: BreakLink,
				Reason: fmt.Sprintf("seq %d links to hash %s, but the entry before it (seq %d) has hash %s: that entry was replaced", e.Seq, short(e.PrevHash), prevSeq, short(prevHash))}
		}
		prevSeq, prevHash = e.Seq, e.Hash
	}
	switch {
	case prevSeq < c.HeadSeq:
		return &AuditBreak{Seq: prevSeq + 1, Kind: BreakMissing,
			Reason: fmt.Sprintf("%s missing at the end: the chain head is seq %d", seqRange(prevSeq+1, c.HeadSeq), c.HeadSeq)}
	case prevHash != c.HeadHash:
		return &AuditBreak{Seq: prevSeq, Kind: BreakLink,
			Reason: fmt.Sprintf("the last entry, seq %d, has hash %s but the chain head records %s: it was replaced", prevSeq, short(prevHash), short(c.HeadHash))}
	}
	return nil
}

func seqRange(a, b int64) string {
	if a == b {
		return fmt.Sprintf("entry seq %d", a)
	}
	return fmt.Sprintf("entries seq %d to %d", a, b)
}

// short abbreviates a hash for messages.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	if strings.TrimSpace(h) == "" {
		return `""`
	}
	return h
}
