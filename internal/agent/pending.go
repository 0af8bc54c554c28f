package agent

import (
	"encoding/json"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
)

// Pending is the release being installed.
type Pending struct {
	Product         string    `json:"product"`
	Version         string    `json:"version"`
	SecurityVersion uint64    `json:"security_version"`
	Target          string    `json:"target"`
	Length          int64     `json:"length"`
	SHA256          string    `json:"sha256"`
	Slot            slot.Name `json:"slot"`
	// From is the slot and version that ran before; rollback returns to it.
	From        slot.Name `json:"from"`
	FromVersion string    `json:"from_version"`
	// Failure is set once the new slot has been judged bad.
	Failure *Failure `json:"failure,omitempty"`
	// Progress is the saved progress of the route writing the image
	// (Progress.Route: the payload into the slot, a compressed payload
	// streamed into the slot or staged in the data directory, or the
	// release's delta), while the phase is writing; nil before the first
	// checkpoint. It is never trusted for arming (see transfer.Progress).
	Progress *transfer.Progress `json:"progress,omitempty"`
	// Delta is the delta Progress belongs to, set exactly when its route
	// is transfer.RouteDelta.
	Delta *DeltaID `json:"delta,omitempty"`
	// Compression is the manifest's payload compression ("" or "none":
	// the payload is the image). With "zstd", ImageLength and ImageSHA256
	// (hex) describe the decompressed image the slot must hold.
	Compression string `json:"compression,omitempty"`
	ImageLength int64  `json:"image_length,omitempty"`
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// Ready is set, in phase writing, once the whole image was written
	// into Slot and verified while the maintenance window was closed: the
	// release waits there for the window (window.go). Progress is nil
	// then; the slot is read back and verified again before it is armed.
	Ready bool `json:"ready,omitempty"`
}

// DeltaID names a delta of the release: from version From, with the
// signed target, length and sha256 of the manifest's entry.
type DeltaID struct {
	From   string `json:"from"`
	Target string `json:"target"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// payloadProgress is the saved progress of p's payload download, into the
// slot or staged; nil if there is none (or it is the delta's).
func (p *Pending) payloadProgress() *transfer.Progress {
	if p.Progress == nil || p.Progress.Route == transfer.RouteDelta {
		return nil
	}
	return p.Progress
}

// deltaProgress is the saved progress of p's delta download; nil if there
// is none.
func (p *Pending) deltaProgress() *transfer.Progress {
	if p.Progress == nil || p.Progress.Route != transfer.RouteDelta {
		return nil
	}
	return p.Progress
}

// setPayloadProgress replaces the saved progress with pr (nil: none), the
// progress of a payload route.
func (p *Pending) setPayloadProgress(pr *transfer.Progress) { p.Progress, p.Delta = pr, nil }

// setDeltaProgress replaces the saved progress with pr (nil: none), the
// progress of the delta d.
func (p *Pending) setDeltaProgress(d release.Delta, pr *transfer.Progress) {
	p.Progress, p.Delta = pr, nil
	if pr != nil {
		p.Delta = &DeltaID{From: d.From, Target: d.Target, Length: d.Length, SHA256: d.SHA256}
	}
}

// UnmarshalJSON reads a pending install as this agent writes it, or as
// agents of state format 1 wrote it before the routes had one progress:
// "download" (into the slot; for a compressed payload streamed into the
// slot, with "image_offset"), "staged" or "delta" (the delta's identity
// and its progress in one object), each with "offset", "hash_states" and
// "etag" (the server's entity tag, now ignored) inline, at most one of
// them set. Those become Progress, with the route they were of, and Delta. Progress that contradicts Delta (a delta
// route without the delta, or the reverse) is dropped: the download then
// starts over.
//
// Agents of format 1 that predate this read the new shape as an install
// without saved progress: in phase writing they start over, which is safe;
// they meet it only after a revert to the slot they run from, in phases
// that carry no progress.
func (p *Pending) UnmarshalJSON(b []byte) error {
	type pending Pending // without this method
	var v struct {
		pending
		Download *transfer.Progress `json:"download"`
		Staged   *transfer.Progress `json:"staged"`
		// Delta shadows pending.Delta: its object may hold the progress
		// too.
		Delta json.RawMessage `json:"delta"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Pending(v.pending)
	var delta *transfer.Progress
	if len(v.Delta) > 0 {
		if err := json.Unmarshal(v.Delta, &p.Delta); err != nil {
			return err
		}
		if err := json.Unmarshal(v.Delta, &delta); err != nil {
			return err
		}
	}
	if p.Progress == nil {
		switch {
		case v.Download != nil:
			p.Progress, p.Delta = v.Download, nil
			p.Progress.Route = transfer.RouteSlot
			if p.Progress.Image > 0 {
				p.Progress.Route = transfer.RouteZstdStream
			}
		case v.Staged != nil:
			p.Progress, p.Delta = v.Staged, nil
			p.Progress.Route = transfer.RouteStaged
		case p.Delta != nil && delta != nil && delta.States != nil:
			p.Progress = delta
			p.Progress.Route = transfer.RouteDelta
		}
	}
	if (p.Progress != nil && p.Progress.Route == transfer.RouteDelta) != (p.Delta != nil) {
		p.Progress, p.Delta = nil, nil
	}
	return nil
}
