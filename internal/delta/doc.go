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
//	seek s:  pos += s
//	add n:   target[i] = source[pos+i] + diff[i] for i < n  (diff mostly zero)
//	extra m: m literal bytes
//
// # Format (version 3)
//
//	header, uncompressed, HeaderSize bytes:
//	  magic "UPTDELTA", version byte 3, coder byte 2 (range coder), 2 zero bytes,
//	  source length (uint64 BE), source SHA-256, target length (uint64 BE), target SHA-256
//	body: range-coded ops in target order, each preceded by a "more" flag (0 ends the body):
//	  seek, add length, extra length (each at most MaxOpLength), and if extra > 0 a
//	  "stored" flag
//	  the add's diff bytes: runs of zeros and nonzeros (see model.codeDiff)
//	  the extra bytes: modelled (order-1/2/3 context mixing), or, if stored, the range
//	  coder stream ends, the raw bytes follow, and a new stream starts after them
//
// An op moves the source position by seek, produces add bytes as source plus diff and then
// extra literal bytes; add+extra is at least 1. The range coder (rangecoder.go) is LZMA's
// binary adaptive coder; the models (model.go) say what each bit is predicted from: diff runs
// from the source bytes at and around the position (which fields of a table or which
// instruction operands change is told by their old values), diff values from the last value
// seen for the same field's higher source bytes, the previous run and the carry out of the
// byte before, mixed in the logistic domain (mixer.go, after lpaq1). Encoder and decoder run
// the same model code (rangeCoder.bit codes or decodes), so they cannot drift apart. Stored
// extra bytes keep incompressible data (compressed files) fast to apply. Long-range match
// models (match.go) predict runs, values, extra bytes and ops that repeat earlier ones (the
// same changed file twice in one image). The models' memory is fixed, about 8 MiB; the
// applier holds one op (two MaxOpLength buffers) and three 256 KiB output buffers, whatever
// the images.
//
// # Security model
//
// A delta is untrusted input until its own signed hash has been checked, and even then the
// applier treats it as hostile: no length read from it sizes an allocation (all buffers are
// fixed), op lengths are checked against MaxOpLength and the declared target length before
// use, the range decoder checks its invariant (code below range) on every byte and reports a
// body that ends early as ErrTruncated, and every decoding loop is bounded by checked lengths.
// Source reads are range-checked against the declared source length; output beyond the
// declared target length stops with ErrTooLong. Apply refuses a delta whose source hash is not
// the hash the caller computed for its source (ErrSourceMismatch): a delta is never applied to
// an unverified source. The hash of the written target is checked at the end (ErrTargetMismatch);
// the caller must not use (arm) the target unless Apply returned nil.
//
// Functions in this package are safe for concurrent use; they share no state.
package delta
