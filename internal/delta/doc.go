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
// # Format (version 2)
//
//	header, uncompressed, HeaderSize bytes:
//	  magic "UPTDELTA", version byte 2, compression byte 1 (zstd), 2 zero bytes,
//	  source length (uint64 BE), source SHA-256, target length (uint64 BE), target SHA-256
//	body: one zstd frame (window at most MaxWindow) holding a sequence of blocks:
//	  uvarint nops (0 ends the body; at most MaxOpsPerBlock)
//	  nops × uvarint add, then nops × uvarint extra, then nops × zigzag varint seek
//	  uvarint len(zero runs), uvarint len(nonzero runs), uvarint len(values)
//	  the block's diff bytes (the add bytes of all its ops) coded sparsely as (zero bytes,
//	  nonzero bytes) run-length pairs: zero runs = the first uvarint of every pair, nonzero
//	  runs = the second, values = the nonzero bytes
//	  then the extra bytes of all its ops
//
// A block produces at most MaxBlockOutput (64 MiB) of target; its run sections together hold
// at most MaxDiffRuns bytes and its values at most MaxDiffValues. The applier holds one block's
// ops and sparse sections and expands the diff bytes 64 KiB at a time as the ops consume them;
// extra bytes stream straight from the decoder to the output. Keeping every kind of data in its
// own section (column order for the ops too), and ending a zstd block after each section, lets
// zstd model each kind (lengths, positions, near-zero differences, literal data) with its own
// Huffman/FSE tables. The encoder keeps the same format whatever the block boundaries.
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
