package zstdframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// frames encodes each part as its own frame, with the encoder options given.
func frames(t *testing.T, parts [][]byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		out.Write(enc.EncodeAll(p, nil))
	}
	return out.Bytes()
}

// split reads every frame and returns their bytes.
func split(t *testing.T, stream []byte) [][]byte {
	t.Helper()
	s := New(bytes.NewReader(stream), 0)
	var got [][]byte
	for {
		fr, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(fr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if s.Offset() != int64(len(stream)) {
		t.Fatalf("offset %d after the stream, want %d", s.Offset(), len(stream))
	}
	return got
}

func testParts() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10) // raw blocks
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("uptrust keeps firmware updated. "), 20000) // compressed blocks
	return [][]byte{text, make([]byte, 500<<10) /* RLE */, random, []byte("x")}
}

// Every frame comes out whole and alone: it decodes to its part, and the
// frames put together are the stream.
func TestSplitFrames(t *testing.T) {
	parts := testParts()
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for name, opts := range map[string][]zstd.EOption{
		"default":       nil,
		"checksum":      {zstd.WithEncoderCRC(true)},
		"no-checksum":   {zstd.WithEncoderCRC(false)},
		"small-window":  {zstd.WithWindowSize(1 << 16), zstd.WithSingleSegment(false)},
		"best":          {zstd.WithEncoderLevel(zstd.SpeedBestCompression)},
		"no-size-field": {zstd.WithZeroFrames(true), zstd.WithSingleSegment(false)},
	} {
		t.Run(name, func(t *testing.T) {
			stream := frames(t, parts, opts...)
			got := split(t, stream)
			if len(got) != len(parts) {
				t.Fatalf("%d frames, want %d", len(got), len(parts))
			}
			if !bytes.Equal(bytes.Join(got, nil), stream) {
				t.Fatal("the frames do not add up to the stream")
			}
			for i, f := range got {
				out, err := dec.DecodeAll(f, nil)
				if err != nil || !bytes.Equal(out, parts[i]) {
					t.Fatalf("frame %d does not decode to its part alone: %v", i, err)
				}
			}
		})
	}
}

// The streaming encoder's output (one frame, many blocks) is one frame.
func TestSplitStreamingEncoder(t *testing.T) {
	var buf bytes.Buffer
	enc, _ := zstd.NewWriter(&buf, zstd.WithWindowSize(1<<20))
	for _, p := range testParts() {
		enc.Write(p)
	}
	enc.Close()
	if got := split(t, buf.Bytes()); len(got) != 1 {
		t.Fatalf("%d frames, want 1", len(got))
	}
}

func TestSkippableFrame(t *testing.T) {
	skip := binary.LittleEndian.AppendUint32(nil, skippableMagic|7)
	skip = binary.LittleEndian.AppendUint32(skip, 5)
	skip = append(skip, "hello"...)
	stream := append(append(append([]byte(nil), skip...), frames(t, [][]byte{[]byte("abc")})...), skip...)
	got := split(t, stream)
	if len(got) != 3 || !bytes.Equal(got[0], skip) || !bytes.Equal(got[2], skip) {
		t.Fatalf("frames %q, want the skippable frame first and last", got)
	}
}

// A stream cut anywhere inside a frame is an unexpected EOF, never a clean
// end; cut at a boundary it is a clean end.
func TestTruncated(t *testing.T) {
	parts := [][]byte{bytes.Repeat([]byte("ab"), 5000), []byte("tail")}
	stream := frames(t, parts, zstd.WithEncoderCRC(true))
	first := len(frames(t, parts[:1], zstd.WithEncoderCRC(true)))
	for cut := 1; cut < len(stream); cut++ {
		s := New(bytes.NewReader(stream[:cut]), 0)
		var err error
		for err == nil {
			var fr io.Reader
			if fr, err = s.Next(); err == nil {
				_, err = io.ReadAll(fr)
			}
		}
		if cut == first {
			if err != io.EOF {
				t.Fatalf("cut at the frame boundary %d: %v, want a clean end", cut, err)
			}
			continue
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d of %d: %v, want an unexpected EOF", cut, len(stream), err)
		}
	}
}

func TestNotZstd(t *testing.T) {
	for name, b := range map[string][]byte{
		"garbage":        []byte("this is not zstd at all"),
		"reserved bit":   {0x28, 0xB5, 0x2F, 0xFD, 0x08, 0, 0, 0},
		"reserved block": {0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x01, 0x07, 0, 0},
		"huge block":     {0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x01, 0xF8, 0xFF, 0xFF},
	} {
		s := New(bytes.NewReader(b), 0)
		fr, err := s.Next()
		if err == nil {
			_, err = io.ReadAll(fr)
		}
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

// Next refuses to skip a frame that was not read to its end.
func TestNextBeforeEnd(t *testing.T) {
	s := New(bytes.NewReader(frames(t, [][]byte{[]byte("one"), []byte("two")})), 100)
	fr, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	fr.Read(make([]byte, 2))
	if _, err := s.Next(); err == nil {
		t.Fatal("Next skipped a frame half read")
	}
	if s.Offset() < 100 {
		t.Fatalf("offset %d below the starting offset", s.Offset())
	}
}

// FuzzSplit: any input splits without panicking, the frames handed out are
// consecutive pieces of the input, and the offset counts exactly the bytes
// they hold.
func FuzzSplit(f *testing.F) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc.EncodeAll(bytes.Repeat([]byte("two"), 100), enc.EncodeAll([]byte("one"), nil)))
	f.Add([]byte{0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x01, 0x07, 0, 0})
	f.Add([]byte{0x50, 0x2A, 0x4D, 0x18, 2, 0, 0, 0, 'h', 'i'})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := New(bytes.NewReader(in), 0)
		var got []byte
		for range 1000 {
			fr, err := s.Next()
			if err != nil {
				break
			}
			b, err := io.ReadAll(fr)
			got = append(got, b...)
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(in, got) {
			t.Fatalf("the frames are not a prefix of the input")
		}
		if s.Offset() < int64(len(got)) || s.Offset() > int64(len(in)) {
			t.Fatalf("offset %d, frames hold %d of %d bytes", s.Offset(), len(got), len(in))
		}
	})
}
