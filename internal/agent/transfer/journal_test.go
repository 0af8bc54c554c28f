package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// writeRecords writes one journal record per state, numbered from seq 1.
func writeRecords(t *testing.T, dir string, states ...string) {
	t.Helper()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i, s := range states {
		if err := j.Write(uint64(i+1), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJournalNewest: JournalRecords gives first the record with the highest
// sequence number, whichever slot holds it; no journal is no record.
func TestJournalNewest(t *testing.T) {
	dir := t.TempDir()
	if _, _, ok, err := readJournal(dir); ok || err != nil {
		t.Fatalf("no journal: ok %v, err %v", ok, err)
	}
	for n := 1; n <= 3; n++ {
		var states []string
		for i := range n {
			states = append(states, fmt.Sprintf(`{"offset":%d}`, i))
		}
		writeRecords(t, dir, states...)
		seq, b, ok, err := readJournal(dir)
		if err != nil || !ok || seq != uint64(n) || string(b) != states[n-1] {
			t.Fatalf("after %d records: seq %d, %q, ok %v, err %v", n, seq, b, ok, err)
		}
	}
	if fi, err := os.Stat(JournalPath(dir)); err != nil || fi.Size() != 2*journalSlot {
		t.Fatalf("journal size %v (%v), want two slots", fi.Size(), err)
	}
}

// TestJournalTornWrite: a damaged slot (a write cut by a power loss) is
// ignored; the record before it, in the other slot, is used.
func TestJournalTornWrite(t *testing.T) {
	dir := t.TempDir()
	writeRecords(t, dir, "first", "second")
	f, err := os.OpenFile(JournalPath(dir), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Damage the newest record's payload, as a write cut short would.
	if _, err := f.WriteAt([]byte("to"), 2%2*journalSlot+journalHeader+2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if seq, b, ok, err := readJournal(dir); err != nil || !ok || seq != 1 || string(b) != "first" {
		t.Fatalf("with the newest record torn: seq %d, %q, ok %v, err %v; want record 1", seq, b, ok, err)
	}
	// Both damaged: no record.
	f, _ = os.OpenFile(JournalPath(dir), os.O_RDWR, 0)
	f.WriteAt([]byte("XXXX"), 1%2*journalSlot)
	f.Close()
	if _, b, ok, err := readJournal(dir); err != nil || ok {
		t.Fatalf("with both records damaged: %q, ok %v, err %v; want none", b, ok, err)
	}
}

// TestJournalFull: a state too large for a slot is refused, and the
// record before it stays.
func TestJournalFull(t *testing.T) {
	dir := t.TempDir()
	writeRecords(t, dir, "small")
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Write(2, bytes.Repeat([]byte("x"), journalSlot)); !errors.Is(err, ErrJournalFull) {
		t.Fatalf("large state: %v, want ErrJournalFull", err)
	}
	if seq, b, ok, err := readJournal(dir); err != nil || !ok || seq != 1 || string(b) != "small" {
		t.Fatalf("after the refused write: seq %d, %q, ok %v, err %v", seq, b, ok, err)
	}
}

// TestCheckpointFallsBack: a checkpoint whose state is too large for the
// journal replaces the state file instead.
func TestCheckpointFallsBack(t *testing.T) {
	dir := t.TempDir()
	rec := &memRecorder{}
	d := newDownloader(t, dir)
	tr, err := d.start(Job{Target: Target{Length: 1, Hashes: map[string][]byte{"sha256": make([]byte, 32)}}, Rec: rec}, RouteSlot, "payload")
	if err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	// The record's size comes from its hash state (it came from the ETag
	// before the agent stopped keeping one).
	for _, state := range [][]byte{[]byte("small"), bytes.Repeat([]byte("x"), journalSlot)} {
		persist, err := tr.checkpoint(j, Progress{Route: RouteSlot, Progress: payload.Progress{States: map[string][]byte{"sha256": state}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := persist(); err != nil {
			t.Fatal(err)
		}
		if p := rec.persisted(t, dir); p == nil || !bytes.Equal(p.States["sha256"], state) {
			t.Fatalf("persisted %+v, want the checkpoint's", p)
		}
	}
	if seq, _, ok, err := readJournal(dir); err != nil || !ok || seq != 1 || rec.state == nil {
		t.Fatalf("journal record %d (ok %v, err %v), state file %d bytes: want the small one in the journal, the large one in the file",
			seq, ok, err, len(rec.state))
	}
}
