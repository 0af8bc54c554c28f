package transfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/uptrust/uptrust/internal/atomicfile"
)

// The checkpoint journal. The agent's state file is replaced atomically: a
// new file, fsync, rename, fsync of the directory. A download saves its
// progress every 512 KiB, and at that rate the replacement is most of a
// save's time (0.48 ms against 0.14 ms for an in-place write here) and most
// of the flash writes of a device's data partition. So download checkpoints
// write the encoded state in place into state.journal instead, with one
// fdatasync; every other save still replaces the state file.
//
// Layout: two slots of journalSlot bytes. A slot holds journalMagic, the
// state's sequence number (uint64, big-endian), the length of the encoded
// state (uint32), its CRC-32C (uint32), then the encoded state. The record
// of seq goes into slot seq%2, so a torn write can damage only the slot
// being written, never the record before it. The reader of the state takes
// the newest intact record (JournalRecords) if its sequence number is higher
// than the state file's: then it is the latest state saved. A record older
// than the state file is ignored, so nothing ever has to clear the journal.
const (
	journalSlot   = 64 << 10
	journalMagic  = "UPTJRNL1"
	journalHeader = 8 + 8 + 4 + 4
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// ErrJournalFull: the encoded state does not fit a journal slot; the
// caller replaces the state file instead.
var ErrJournalFull = errors.New("transfer: state too large for the journal")

// JournalPath is the checkpoint journal of the data directory dir.
func JournalPath(dir string) string { return filepath.Join(dir, "state.journal") }

// Journal is the open checkpoint journal. It is not safe for concurrent
// use; a route writes it from one checkpoint at a time.
type Journal struct {
	f *os.File
}

// OpenJournal opens the journal of the data directory dir, creating it at
// its full size (synced, with its directory entry) so that later writes
// change no metadata.
func OpenJournal(dir string) (*Journal, error) {
	path := JournalPath(dir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("transfer: opening the journal: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != 2*journalSlot {
		if err = f.Truncate(2 * journalSlot); err == nil {
			if err = f.Sync(); err == nil {
				err = atomicfile.SyncDir(dir)
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("transfer: preparing the journal %s: %w", path, err)
	}
	return &Journal{f: f}, nil
}

// Write records the encoded state b, whose sequence number is seq,
// durably. A state too large for a slot is ErrJournalFull.
func (j *Journal) Write(seq uint64, b []byte) error {
	if len(b) > journalSlot-journalHeader {
		return ErrJournalFull
	}
	rec := make([]byte, journalHeader, journalHeader+len(b))
	copy(rec, journalMagic)
	binary.BigEndian.PutUint64(rec[8:], seq)
	binary.BigEndian.PutUint32(rec[16:], uint32(len(b)))
	binary.BigEndian.PutUint32(rec[20:], crc32.Checksum(b, crc32c))
	rec = append(rec, b...)
	if _, err := j.f.WriteAt(rec, int64(seq%2)*journalSlot); err != nil {
		return fmt.Errorf("transfer: writing the journal: %w", err)
	}
	// fdatasync: the file's size and blocks are fixed once both slots were
	// written, so only the data (and, the first time, the blocks holding
	// it) must reach the disk; its modification time need not.
	if err := datasync(j.f); err != nil {
		return fmt.Errorf("transfer: syncing the journal: %w", err)
	}
	return nil
}

// Close closes the journal's file.
func (j *Journal) Close() error { return j.f.Close() }

// JournalRecord is an intact record of the journal: one encoded state and
// its sequence number.
type JournalRecord struct {
	Seq   uint64
	State []byte
}

// JournalRecords returns the intact records of the journal of the data
// directory dir, newest first: none, one or two.
func JournalRecords(dir string) ([]JournalRecord, error) {
	f, err := os.Open(JournalPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("transfer: reading the journal: %w", err)
	}
	defer f.Close()
	var recs []JournalRecord
	buf := make([]byte, journalSlot)
	for i := range int64(2) {
		n, err := f.ReadAt(buf, i*journalSlot)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("transfer: reading the journal: %w", err)
		}
		if s, rec, good := parseJournalSlot(buf[:n]); good {
			recs = append(recs, JournalRecord{Seq: s, State: bytes.Clone(rec)})
		}
	}
	if len(recs) == 2 && recs[1].Seq > recs[0].Seq {
		recs[0], recs[1] = recs[1], recs[0]
	}
	return recs, nil
}

// parseJournalSlot checks one slot and returns its record.
func parseJournalSlot(slot []byte) (uint64, []byte, bool) {
	if len(slot) < journalHeader || string(slot[:8]) != journalMagic {
		return 0, nil, false
	}
	seq := binary.BigEndian.Uint64(slot[8:])
	n := binary.BigEndian.Uint32(slot[16:])
	if int64(n) > int64(len(slot)-journalHeader) {
		return 0, nil, false
	}
	rec := slot[journalHeader : journalHeader+int(n)]
	if crc32.Checksum(rec, crc32c) != binary.BigEndian.Uint32(slot[20:]) {
		return 0, nil, false
	}
	return seq, rec, true
}
