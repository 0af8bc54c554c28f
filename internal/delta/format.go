package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Format constants. Changing any of them changes the format version.
const (
	Magic      = "UPTDELTA"
	Version    = 3
	coderRange = 2 // the body is range coded (version 2: 1, zstd)
	HeaderSize = 8 + 4 + 8 + 32 + 8 + 32
	// MaxOpLength bounds an op's add and its extra bytes, and so the applier's buffers.
	MaxOpLength = 1 << 20
)

// Errors returned by Apply and ReadHeader. They are wrapped with detail; compare with errors.Is.
var (
	ErrCorrupt        = errors.New("delta: corrupt delta")
	ErrTruncated      = errors.New("delta: truncated delta")
	ErrVersion        = errors.New("delta: unsupported delta version")
	ErrSourceMismatch = errors.New("delta: source image does not match the delta")
	ErrTargetMismatch = errors.New("delta: result does not match the declared target hash")
	ErrTooLong        = errors.New("delta: output longer than the declared target length")
)

// Header is the uncompressed prefix of a delta. It can be read on its own (ReadHeader) to
// decide whether a delta applies to the image in the active slot.
type Header struct {
	SourceSize   int64
	SourceSHA256 [32]byte
	TargetSize   int64
	TargetSHA256 [32]byte
}

func (h Header) marshal() []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, Magic...)
	b = append(b, Version, coderRange, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(h.SourceSize))
	b = append(b, h.SourceSHA256[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.TargetSize))
	b = append(b, h.TargetSHA256[:]...)
	return b
}

// ReadHeader reads and checks the header at the start of a delta.
func ReadHeader(r io.Reader) (Header, error) {
	var b [HeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, fmt.Errorf("%w: header: %v", ErrTruncated, err)
		}
		return Header{}, fmt.Errorf("delta: reading header: %w", err)
	}
	if string(b[:8]) != Magic {
		return Header{}, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if b[8] != Version || b[9] != coderRange || b[10] != 0 || b[11] != 0 {
		return Header{}, fmt.Errorf("%w: version %d, compression %d", ErrVersion, b[8], b[9])
	}
	var h Header
	p := b[12:]
	src, dst := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[40:])
	if src > 1<<62 || dst > 1<<62 {
		return Header{}, fmt.Errorf("%w: image length out of range", ErrCorrupt)
	}
	h.SourceSize = int64(src)
	copy(h.SourceSHA256[:], p[8:40])
	h.TargetSize = int64(dst)
	copy(h.TargetSHA256[:], p[48:80])
	return h, nil
}

// op is one control triple, applied in this order: move the source position by seek, then
// produce add bytes as source plus diff, then extra literal bytes.
type op struct {
	seek       int64
	add, extra int64
}
