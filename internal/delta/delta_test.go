package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

func bruteSuffixArray(data []byte) []int32 {
	sa := make([]int32, len(data))
	for i := range sa {
		sa[i] = int32(i)
	}
	slices.SortFunc(sa, func(a, b int32) int { return bytes.Compare(data[a:], data[b:]) })
	return sa
}

func TestSuffixArray(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := [][]byte{nil, {0}, {1, 1}, []byte("banana"), []byte("mississippi"), bytes.Repeat([]byte{0}, 1000),
		bytes.Repeat([]byte("ab"), 500), bytes.Repeat([]byte("abcab"), 301)}
	for n := 1; n < 3000; n = n*2 + 1 {
		for _, alpha := range []int{1, 2, 4, 256} {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.IntN(alpha))
			}
			inputs = append(inputs, b)
			// Repetitive: a random block repeated with a few mutations.
			blk := b[:min(n, 17)]
			rep := bytes.Repeat(blk, n/len(blk)+1)
			for range 3 {
				rep[r.IntN(len(rep))] ^= 1
			}
			inputs = append(inputs, rep)
		}
	}
	for _, in := range inputs {
		got, err := suffixArray(in)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteSuffixArray(in); !slices.Equal(got, want) {
			t.Fatalf("suffix array of %q: got %v want %v", in[:min(len(in), 40)], got[:min(len(got), 20)], want[:min(len(want), 20)])
		}
	}
}

// TestSearch checks that search finds a longest match (capped at matchLimit), notably when
// the source ends inside a run that the target continues: suffixes that are proper prefixes
// of the target must sort before it (the 0xff-bitmap case of the ext4 benchmark pair).
func TestSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type tc struct{ old, target []byte }
	run := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	cases := []tc{
		{append([]byte("abc"), run(0xff, 100)...), run(0xff, 300)},
		{append(run(0xff, 50), append([]byte("x"), run(0xff, 20)...)...), run(0xff, 40)},
		{append(run(0, 10), run(0xff, matchLimit+100)...), run(0xff, matchLimit+50)},
		{append(run(0xff, matchLimit+10), 1), run(0xff, matchLimit*2)},
	}
	for range 300 {
		old := make([]byte, 1+r.IntN(200))
		for i := range old {
			old[i] = byte(r.IntN(3))
		}
		target := make([]byte, 1+r.IntN(60))
		for i := range target {
			target[i] = byte(r.IntN(3))
		}
		if r.IntN(2) == 0 { // a suffix of old, extended
			k := r.IntN(len(old))
			target = append(slices.Clone(old[k:]), target...)
		}
		cases = append(cases, tc{old, target})
	}
	for i, c := range cases {
		sa, err := suffixArray(c.old)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for p := range c.old {
			want = max(want, commonPrefix(c.old[p:], c.target, 0, matchLimit))
		}
		pos, n := search(sa, c.old, c.target)
		if n != want || commonPrefix(c.old[pos:], c.target, 0, matchLimit) != n {
			t.Errorf("case %d: search = (%d, %d), longest match %d", i, pos, n, want)
		}
	}
}

func create(t testing.TB, src, dst []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Create(context.Background(), &b, src, dst); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func apply(src, patch []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := Apply(context.Background(), &out, Source{R: bytes.NewReader(src), Size: int64(len(src)), SHA256: sha256.Sum256(src)}, bytes.NewReader(patch))
	return out.Bytes(), err
}

// edit returns a copy of b with insertions, deletions, overwrites and a shifted-pointer region.
func edit(r *rand.Rand, b []byte) []byte {
	out := slices.Clone(b)
	for range 20 {
		if len(out) < 2 {
			break
		}
		i := r.IntN(len(out))
		switch r.IntN(4) {
		case 0:
			ins := make([]byte, r.IntN(300))
			for k := range ins {
				ins[k] = byte(r.Uint32())
			}
			out = slices.Insert(out, i, ins...)
		case 1:
			out = slices.Delete(out, i, min(len(out), i+r.IntN(300)))
		case 2:
			out[i] ^= 0x5a
		case 3:
			for j := i; j+4 <= len(out) && j < i+400; j += 8 {
				out[j] += 4
			}
		}
	}
	return out
}

func randomImage(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; {
		// Mix random data, zero runs and repeated records, like a filesystem image.
		k := min(n-i, 1+r.IntN(5000))
		switch r.IntN(3) {
		case 0:
			for j := range k {
				b[i+j] = byte(r.Uint32())
			}
		case 1:
		case 2:
			rec := []byte("record-0123456789\x00\x01")
			for j := range k {
				b[i+j] = rec[j%len(rec)]
			}
		}
		i += k
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	big := randomImage(r, 3<<20) // several blocks
	cases := []struct {
		name     string
		src, dst []byte
	}{
		{"empty-empty", nil, nil},
		{"empty-source", nil, []byte("hello, world")},
		{"empty-target", []byte("hello"), nil},
		{"identical", big, big},
		{"edited", big, edit(r, big)},
		{"unrelated", randomImage(r, 100000), randomImage(r, 120000)},
		{"zeros", make([]byte, 2<<20), append(make([]byte, 1<<20), 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := create(t, c.src, c.dst)
			got, err := apply(c.src, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.dst) {
				t.Fatalf("apply gave %d bytes, want %d", len(got), len(c.dst))
			}
			if c.name == "identical" && len(p) > 2000 {
				t.Errorf("delta between identical images is %d bytes", len(p))
			}
		})
	}
}

func testPair(t testing.TB) (src, dst, patch []byte) {
	r := rand.New(rand.NewPCG(5, 6))
	src = randomImage(r, 1<<20+12345)
	dst = edit(r, src)
	return src, dst, create(t, src, dst)
}

func TestSourceMismatch(t *testing.T) {
	src, _, p := testPair(t)
	other := slices.Clone(src)
	other[100] ^= 1
	var out bytes.Buffer
	_, err := Apply(context.Background(), &out, Source{R: bytes.NewReader(other), Size: int64(len(other)), SHA256: sha256.Sum256(other)}, bytes.NewReader(p))
	if !errors.Is(err, ErrSourceMismatch) {
		t.Fatalf("got %v, want ErrSourceMismatch", err)
	}
	if out.Len() != 0 {
		t.Fatalf("wrote %d bytes before refusing", out.Len())
	}
}

func TestTruncated(t *testing.T) {
	src, _, p := testPair(t)
	for _, n := range []int{0, 5, HeaderSize - 1, HeaderSize, HeaderSize + 3, len(p) / 2, len(p) - 5, len(p) - 1} {
		if _, err := apply(src, p[:n]); !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d of %d: got %v, want ErrTruncated", n, len(p), err)
		}
	}
}

// TestTruncatedEveryPrefix cuts a small delta (with modelled and stored extra bytes) at every
// length: each prefix must fail with ErrTruncated, never apply or report corruption.
func TestTruncatedEveryPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	src := randomImage(r, 20000)
	dst := edit(r, src)
	noise := make([]byte, 3000)
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	dst = append(append(dst[:10000:10000], noise...), dst[10000:]...)
	p := create(t, src, dst)
	if got, err := apply(src, p); err != nil || !bytes.Equal(got, dst) {
		t.Fatalf("full delta: %v", err)
	}
	for n := range len(p) {
		if _, err := apply(src, p[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: got %v, want ErrTruncated", n, len(p), err)
		}
	}
}

// TestOffsetTable: a table of 32-bit offsets, some of which moved by a constant after an
// insertion (as in an executable's tables), gives a small delta.
func TestOffsetTable(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	const n = 1 << 17
	src := make([]byte, 4*n)
	off := uint32(0x40000)
	for i := range n {
		off += uint32(1 + r.IntN(200))
		binary.LittleEndian.PutUint32(src[4*i:], off)
	}
	dst := slices.Clone(src)
	for i := range n {
		if v := binary.LittleEndian.Uint32(dst[4*i:]); v > 0x40000+100*n/2 {
			binary.LittleEndian.PutUint32(dst[4*i:], v+0x34)
		}
	}
	p := create(t, src, dst)
	got, err := apply(src, p)
	if err != nil || !bytes.Equal(got, dst) {
		t.Fatalf("apply: %v", err)
	}
	// Half the entries changed, in one byte or two (carry): the value predictor and the run
	// flags make the delta well under 1 % of the image.
	if len(p) > len(src)/100 {
		t.Errorf("delta is %d bytes for a %d-byte table", len(p), len(src))
	}
}

func TestCorrupt(t *testing.T) {
	src, _, p := testPair(t)
	bad := slices.Clone(p)
	copy(bad, "NOTDELTA")
	if _, err := apply(src, bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad magic: got %v", err)
	}
	for _, v := range []byte{1, 2, 9} { // versions 1 and 2 (zstd body) are no longer read
		bad = slices.Clone(p)
		bad[8], bad[9] = v, 1
		if _, err := apply(src, bad); !errors.Is(err, ErrVersion) {
			t.Errorf("version %d: got %v", v, err)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		bad = slices.Clone(p)
		bad[HeaderSize+r.IntN(len(p)-HeaderSize)] ^= byte(1 + r.IntN(255))
		_, err := apply(src, bad)
		if err == nil {
			t.Fatal("corrupted delta applied without error")
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTargetMismatch) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrTooLong) {
			t.Fatalf("corrupted delta: unexpected error %v", err)
		}
	}
	// A wrong target hash in the header: the result is detected as wrong.
	bad = slices.Clone(p)
	bad[HeaderSize-1] ^= 1
	if _, err := apply(src, bad); !errors.Is(err, ErrTargetMismatch) {
		t.Errorf("wrong target hash: got %v, want ErrTargetMismatch", err)
	}
}

func TestTooLong(t *testing.T) {
	src, dst, p := testPair(t)
	bad := slices.Clone(p)
	h, err := ReadHeader(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	h.TargetSize = int64(len(dst)) - 1
	copy(bad, h.marshal())
	out, err := apply(src, bad)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("got %v, want ErrTooLong", err)
	}
	if len(out) > len(dst)-1 {
		t.Fatalf("wrote %d bytes past the declared length", len(out)-(len(dst)-1))
	}
}

func TestTrailingData(t *testing.T) {
	src, _, p := testPair(t)
	if _, err := apply(src, append(slices.Clone(p), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

func TestCancel(t *testing.T) {
	src, _, p := testPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, io.Discard, Source{R: bytes.NewReader(src), Size: int64(len(src)), SHA256: sha256.Sum256(src)}, bytes.NewReader(p))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// FuzzApply feeds arbitrary deltas to Apply against a fixed source: it must return an error or
// the declared target, never panic, and never allocate beyond its fixed buffers.
func FuzzApply(f *testing.F) {
	src := []byte("the quick brown fox jumps over the lazy dog; 0123456789 the quick brown fox")
	for _, dst := range [][]byte{nil, []byte("the quick red fox jumps over the lazy cat"), bytes.Repeat([]byte("xyz"), 50)} {
		f.Add(create(f, src, dst))
	}
	sum := sha256.Sum256(src)
	f.Fuzz(func(t *testing.T, p []byte) {
		// Make most inputs reach the body: keep the header's source fields valid.
		if len(p) >= HeaderSize && string(p[:8]) == Magic {
			p = slices.Clone(p)
			copy(p[12:], (Header{SourceSize: int64(len(src)), SourceSHA256: sum}).marshal()[12:52])
		}
		var out bytes.Buffer
		h, err := Apply(context.Background(), &out, Source{R: bytes.NewReader(src), Size: int64(len(src)), SHA256: sum}, bytes.NewReader(p))
		if int64(out.Len()) > max(h.TargetSize, 0) {
			t.Fatalf("wrote %d bytes, declared %d", out.Len(), h.TargetSize)
		}
		if err == nil && sha256.Sum256(out.Bytes()) != h.TargetSHA256 {
			t.Fatal("success with the wrong target")
		}
	})
}
