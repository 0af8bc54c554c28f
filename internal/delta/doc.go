// Package delta creates and applies binary deltas between firmware images.
//
// A delta turns a source image (the active slot) into a target image (the inactive slot). It is
// built on the server, where both images fit in memory, and applied on the device in one
// streaming pass with memory bounded by constants, not by the image size: the applier reads the
// delta sequentially, reads the source with random access (io.ReaderAt) and writes the target
// sequentially.
//
// # Algorithm
//
// Create runs Colin Percival's bsdiff matcher: a suffix array of the source (SA-IS, O(n),
// int32 indices, so 4 bytes per source byte), binary search for the longest match of each
// target position, and approximate matches extended forwards and backwards so that code whose
// embedded addresses shifted still becomes a run of small byte differences. The result is a
// list of operations:
//
//	add n:   target[i] = source[pos+i] + diff[i] for i < n  (diff mostly zero)
//	extra m: m literal bytes
//	seek s:  pos += s
//
// # Format (version 1)
//
//	header, uncompressed, HeaderSize bytes:
//	  magic "UPTDELTA", version byte 1, compression byte 1 (zstd), 2 zero bytes,
//	  source length (uint64 BE), source SHA-256, target length (uint64 BE), target SHA-256
//	body: one zstd frame (window at most MaxWindow) holding a sequence of blocks:
//	  uvarint nops (0 ends the body; at most MaxOpsPerBlock)
//	  nops × (uvarint add, uvarint extra, zigzag varint seek)
//	  uvarint len(runs), uvarint len(values), then the block's diff bytes (the add bytes of
//	  all its ops) coded sparsely: runs = uvarint pairs (zero bytes, nonzero bytes), values =
//	  the nonzero bytes; then the extra bytes of all its ops
//
// A block produces at most MaxBlockOutput bytes of target, so the applier holds one block's
// diff bytes (1 MiB) and a source buffer of the same size. Grouping the diff bytes and the
// extra bytes of a block, rather than interleaving them op by op, lets zstd model the two very
// different streams (near-zero differences versus literal data) in separate Huffman/FSE blocks.
//
// # Security model
//
// A delta is untrusted input until its own signed hash has been checked, and even then the
// applier treats it as hostile: every length is bounded before anything is allocated, the zstd
// window is capped at MaxWindow (a frame asking for more is refused with ErrWindowTooLarge),
// source reads are range-checked against the declared source length, and output beyond the
// declared target length stops with ErrTooLong. Apply refuses a delta whose source hash is not
// the hash the caller computed for its source (ErrSourceMismatch): a delta is never applied to
// an unverified source. The hash of the written target is checked at the end (ErrTargetMismatch);
// the caller must not use (arm) the target unless Apply returned nil.
//
// Functions in this package are safe for concurrent use; they share no state.
package delta
