// Package transfer moves the bytes of a release from the update server
// into the inactive A/B slot, by one of four routes (Route): the payload
// streamed into the slot as it is (Plain), a zstd payload decompressed into
// the slot as it arrives or first staged in the data directory
// (Compressed), or a delta downloaded into the data directory and applied
// from the active slot (Delta). It knows nothing of the agent's state: it
// takes a signed Target, a Slot to write and a Recorder through which the
// caller persists the route's Progress and download counters.
//
// Trust. Nothing a route writes is trusted until it returns nil: the
// bytes are checked against the target's signed length and hashes as they
// stream (package payload), a prefix taken from saved progress is read
// back and verified before success, a decompressed image is read back and
// checked against the manifest's image length and SHA-256, and a delta
// must declare, and produce, exactly that image. The slot written is the
// inactive one; the caller arms it only after a route returned nil.
//
// Durability. A Progress handed to the Recorder to persist never claims
// bytes that are not durable: the slot or file is synced first (see
// payload.Checkpoints). What a power loss can cost is bounded per route:
// less than Downloader.LossBudget, or what the link moves in
// Downloader.LossWindow when that is more, plus one buffer
// (payload.BufferSize/4) for Plain and a staged payload, the buffer being filled for a delta, the
// bytes since the last frame boundary saved for a zstd payload streamed
// into the slot (all of it when it is one frame). A dropped connection
// costs nothing: it is resumed with a Range request from the exact offset
// reached. The death of the agent's process alone costs nothing for Plain
// (the write hint, see hint.go).
//
// Files in the data directory (Downloader.Dir): state.journal (the
// checkpoint journal, see Journal), download.hint, payload.tmp (a staged
// payload) and delta.tmp (a delta). Routes share them: run one route at a
// time per data directory. A Downloader holds no other state and is
// otherwise safe to copy.
package transfer
