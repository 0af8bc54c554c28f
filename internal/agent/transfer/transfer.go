package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/deviceapi"
)

// Route is how a release's image gets into the slot. It is persisted
// (Progress.Route): the values never change.
type Route string

// Routes.
const (
	// RouteSlot: the payload is the image, streamed into the slot as it
	// arrives (Plain).
	RouteSlot Route = "slot"
	// RouteZstdStream: a zstd payload decompressed into the slot as it
	// arrives (Compressed, without room or leave to stage it).
	RouteZstdStream Route = "zstd-stream"
	// RouteStaged: a zstd payload downloaded into the data directory
	// (StagedFile), then decompressed into the slot (Compressed).
	RouteStaged Route = "staged"
	// RouteDelta: a delta downloaded into the data directory (DeltaFile),
	// then applied from the active slot into the slot (Delta).
	RouteDelta Route = "delta"
)

// Progress is how far a route got, as the caller persists it.
//
// Invariant: it is handed to the Recorder for persisting only after the
// first Offset bytes of the target were synced where the route writes them
// (the slot, or a file in the data directory), and its hash states cover
// exactly those bytes as they arrived from the server. Nothing here is
// trusted: a route that continues from it reads the bytes back and
// verifies them before it succeeds.
type Progress struct {
	// Route is the route that saved it; another route does not continue
	// from it.
	Route Route `json:"route"`
	payload.Progress
	// No entity tag is kept: a resume sends nothing the server chose (see
	// requestRest). The "etag" of progress saved by older agents is
	// ignored when decoding.
	// Image, for RouteZstdStream, is how many image bytes the slot holds
	// (durably) when Offset is a zstd frame boundary of the payload: the
	// download resumes there with a new decoder. 0 for every other route.
	Image int64 `json:"image_offset,omitempty"`
}

// Target is a signed target of the release repository: where to get it
// and what it must be.
type Target struct {
	// Name is the target's path in the repository ("thermostat/1.1.0").
	Name string
	// URL is its consistent-snapshot address.
	URL string
	// Length and Hashes (algorithm → digest) are the signed ones.
	Length int64
	Hashes map[string][]byte
}

// NewTarget returns the target name of the release repository on server,
// as tf signs it.
func NewTarget(server, name string, tf *metadata.TargetFiles) Target {
	hashes := make(map[string][]byte, len(tf.Hashes))
	for alg, h := range tf.Hashes {
		hashes[alg] = h
	}
	return Target{Name: name, URL: server + deviceapi.TargetPath(deviceapi.ReleaseBase, name, hex.EncodeToString(tf.Hashes["sha256"])),
		Length: tf.Length, Hashes: hashes}
}

// Image is what the slot must hold once a route that does not write the
// target itself (Compressed, Delta) is done: the release manifest's image.
type Image struct {
	Length int64
	SHA256 string // hex
}

// Count is what a route's download cost on the wire since it last
// reported, for metered links.
type Count struct {
	// Bytes counts the target bytes received, twice if twice.
	Bytes int64
	// Requests counts requests answered with 200 or 206, Resumed those
	// that continued from an offset, and Restarts the times progress was
	// thrown away (the server ignored the range, the bytes did not
	// verify, the saved bytes no longer matched).
	Requests, Resumed, Restarts int
	// Complete is set once the whole target arrived and verified.
	Complete bool
}

// Recorder keeps a route's progress and counters in the caller's
// persisted state, which the route never sees.
//
// A route calls Record, Count and Encode from one goroutine at a time and
// only while its copy stands still (see payload.Checkpoints.Save), so a
// Recorder that writes into the state it encodes needs no lock, as long
// as the caller leaves that state alone while the route runs. Replace may
// run on another goroutine while the copy goes on: it must only write the
// bytes it is given.
type Recorder interface {
	// Record replaces the saved progress with p (nil: none), in memory.
	Record(p *Progress)
	// Count adds c to the download's counters, in memory.
	Count(c Count)
	// Encode returns the state with everything recorded, encoded as its
	// next save, and that save's sequence number: it must grow with every
	// call, as it orders the journal against the state file.
	Encode() (seq uint64, state []byte, err error)
	// Replace makes state, from Encode, the persisted state, replacing the
	// state file atomically and durably.
	Replace(state []byte) error
}

// Writer receives an image: Write calls are sequential from the offset it
// was opened at, Sync makes them durable, Close releases the slot without
// implying Sync.
type Writer interface {
	io.Writer
	Sync() error
	Close() error
}

// Slot is an A/B slot as a route sees it: the inactive one it writes, or
// the active one a delta reads.
type Slot interface {
	// OpenWriter opens the slot for writing from byte off: at 0 a fresh
	// image, else the rest of an image whose first off bytes an earlier
	// writer made durable, which it leaves unchanged.
	OpenWriter(ctx context.Context, off int64) (Writer, error)
	// OpenReader opens the slot for reading from byte 0. The reader must
	// implement io.Seeker to resume from a write hint, and io.ReaderAt to
	// be a delta's source.
	OpenReader(ctx context.Context) (io.ReadCloser, error)
	// String names the slot in messages.
	String() string
}

// Downloader runs the routes. Its fields are the knobs; see the package
// doc for the files it keeps in Dir.
type Downloader struct {
	HTTP *fetch.Client
	// Dir is the data directory.
	Dir string
	// MaxAttempts is how many drops in a row without progress (less than
	// minProgress bytes gained since the last attempt that made some) end a
	// download for this check; progress resets the count.
	MaxAttempts int
	// LossBudget bounds the bytes a power loss can cost Plain and a staged
	// payload (payload.Checkpoints.MaxLag); 0: none, saves are then not
	// run in the background.
	LossBudget int64
	// LossWindow raises LossBudget to the bytes the link moves in this
	// long, measured as the download goes, when that is more
	// (payload.Checkpoints.Window); 0: LossBudget alone.
	LossWindow time.Duration
	Now        func() time.Time
	Log        *slog.Logger
	// Power, if set, is called before each write with the power point's
	// name ("mid-write" for the slot, "stage-write" for a staged payload,
	// "delta-write" for a delta); its error aborts the route there, as a
	// power loss would.
	Power func(point string) error
	// BootID, if set, identifies the running boot for the write hint;
	// "" turns the hint off.
	BootID func(ctx context.Context) string
	// Received, if set, is told of every read of target bytes from the
	// server, with how many arrived (progress display).
	Received func(n int64)
}

// Job is a route's work: one signed target into one slot.
type Job struct {
	// Version is the release's, for messages.
	Version string
	Target  Target
	Slot    Slot
	// Saved is the progress an earlier call handed to Rec, nil if none.
	// Progress of another route is dropped.
	Saved *Progress
	Rec   Recorder
}

// When a download saves its progress (see payload.Checkpoints): after
// CheckpointBytes or CheckpointInterval since the last save began,
// whichever comes first, and at once, at the exact offset reached, when the
// connection fails or ctx ends. Each save is an fsync of the slot (or the
// staged file) and a write of the state into the checkpoint journal
// (Journal), in place with one fdatasync; for Plain and a staged payload it
// runs in the background while the download goes on, one at a time, so a
// save comes due only once the previous one is done.
//
// Downloader.LossBudget bounds what a power loss can cost, however fast the
// link and however slow the fsyncs (payload.Checkpoints.MaxLag): the
// download never has that many bytes written that no persisted save covers
// before it reads the next buffer (it waits for the running save instead).
// With Downloader.LossWindow the bound is the larger of the budget and the
// bytes the link moves in that window (payload.Checkpoints.Window), so a
// fast link is not held back by every flush and a power loss costs about
// the same link time on any link. So a power loss costs less than that
// bound plus one buffer (payload.BufferSize/4) downloaded again, plus what
// was still in flight in the network; on a link slower than the fsyncs,
// about CheckpointBytes. A
// server that stalls gets a save after checkpointIdle (Plain), so a power
// loss during a stall costs at most a partly filled buffer.
const (
	CheckpointBytes    = 256 << 10
	CheckpointInterval = 2 * time.Second
	// DeltaCheckpointBytes is how often a delta download saves: each save
	// is done before the download goes on, as deltas are small (a few MiB,
	// a few dozen saves). It is one copy buffer, so every whole buffer
	// written is saved and a power loss costs at most the buffer being
	// filled; an idle save would add nothing.
	DeltaCheckpointBytes = 256 << 10
)

// checkpointIdle: a download whose server has sent nothing for this long
// is saved at the offset reached (payload.Checkpoints.Idle).
const checkpointIdle = 100 * time.Millisecond

// minProgress is how far a download must get, over one or more attempts,
// for its dropped connections not to count against
// Downloader.MaxAttempts (see retry): a link that drops now and then but
// moves on is followed to the end; one that cannot deliver this much in
// MaxAttempts tries in a row waits for the next check.
//
// 64 KiB is less than any link worth resuming on moves between drops (a
// 2G link at 5 KB/s takes 13 s), so a flaky link finishes within the
// check; it is far more than a server gets through with a byte, or a first
// TCP window, per connection, so such a server still ends the call after
// MaxAttempts attempts; and it bounds the attempts of a call by the signed
// length (MaxAttempts × (Length/minProgress + 1)).
const minProgress = 64 << 10

// Errors callers may test with errors.Is.
var (
	// ErrWindowTooLarge: a zstd frame asks for a window larger than
	// release.MaxZstdWindow, more memory than a decoder is given.
	ErrWindowTooLarge = errors.New("transfer: the zstd payload asks for a window larger than the agent allows")
	// ErrDecode: the payload, verified against the signed hashes, is not a
	// valid zstd stream.
	ErrDecode = errors.New("transfer: the zstd payload does not decode")
	// ErrImageMismatch: the image is not the one the signed manifest
	// describes (image_length, image_sha256).
	ErrImageMismatch = errors.New("transfer: the decompressed image does not match the manifest")
	// ErrDeltaInterrupted: the link dropped the delta download
	// MaxAttempts times in a row. Not a reason to fetch the larger full
	// payload over the same link: the progress is kept for the next check.
	ErrDeltaInterrupted = errors.New("transfer: the delta download was interrupted")
	// ErrDeltaTarget: the delta does not make the manifest's image.
	ErrDeltaTarget = errors.New("transfer: the delta's target does not match the manifest's image")
	// ErrDeltaNoReaderAt: the source slot's reader has no random access.
	ErrDeltaNoReaderAt = errors.New("transfer: the slot backend's reader has no random access (io.ReaderAt)")
)
