package progress

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newFake() *fakeClock                 { return &fakeClock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// TestTerminalLine: on a terminal the bar redraws one line in place
// (carriage return, erase line) with phase, percent, rate and time left,
// and ends the phase with a newline.
func TestTerminalLine(t *testing.T) {
	var out bytes.Buffer
	c := newFake()
	b := New(&out, true, 200)
	b.SetClock(c.now)
	b.Start("hashing", 100<<20)
	c.step(2 * time.Second)
	b.Add(50 << 20)
	got := out.String()
	if strings.Count(got, "\r\x1b[K") != 2 || strings.Contains(got, "\n") {
		t.Fatalf("terminal output %q: want two in-place redraws and no newline", got)
	}
	last := got[strings.LastIndex(got, "\r\x1b[K")+4:]
	if want := "hashing   50%  50.0 MiB of 100.0 MiB  25.0 MiB/s  2s left"; last != want {
		t.Errorf("status %q, want %q", last, want)
	}
	// Redraws are throttled.
	b.Add(1 << 20)
	if strings.Count(out.String(), "\r\x1b[K") != 2 {
		t.Errorf("redrawn within RedrawEvery: %q", out.String())
	}
	c.step(2 * time.Second)
	b.Add(49 << 20)
	b.Done()
	if !strings.HasSuffix(out.String(), "\r\x1b[Khashing: done, 100.0 MiB in 4s\n") {
		t.Errorf("end of phase: %q", out.String())
	}
}

// TestPlainLines: elsewhere the bar writes whole lines: at the start, at
// every tenth of the work or PlainEvery, and at the end; never a carriage
// return.
func TestPlainLines(t *testing.T) {
	var out bytes.Buffer
	c := newFake()
	b := New(&out, false, 0)
	b.SetClock(c.now)
	b.Start("compressing", 1000)
	for i := 0; i < 100; i++ {
		c.step(10 * time.Millisecond)
		b.Add(5) // 500 bytes in 1 s: 5 tenths
	}
	c.step(6 * time.Second) // past PlainEvery with no tenth crossed
	b.Add(1)
	b.Done()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if strings.Contains(out.String(), "\r") {
		t.Errorf("plain output has a carriage return: %q", out.String())
	}
	if lines[0] != "compressing: 1000 B" || !strings.HasPrefix(lines[1], "compressing   10%") ||
		!strings.HasPrefix(lines[5], "compressing   50%") || !strings.HasPrefix(lines[6], "compressing   50%  501 B") ||
		lines[7] != "compressing: done, 501 B in 7s" || len(lines) != 8 {
		t.Errorf("plain lines:\n%s", out.String())
	}
}

// TestUnknownTotalAndHelpers: a phase of unknown size shows bytes and
// rate; Reader, Writer and Func count into the phase; a nil Bar does
// nothing.
func TestUnknownTotalAndHelpers(t *testing.T) {
	var out bytes.Buffer
	c := newFake()
	b := New(&out, false, 0)
	b.SetClock(c.now)
	b.Start("reading", -1)
	c.step(6 * time.Second)
	if _, err := io.Copy(b.Writer(io.Discard), b.Reader(strings.NewReader("0123456789"))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "reading  10 B  1 B/s\n") {
		t.Errorf("unknown total: %q", out.String())
	}
	f := b.Func("building the delta from 1.2.0")
	f(0, 2048)
	f(2048, 2048)
	b.Done()
	if !strings.Contains(out.String(), "reading: done, 20 B") || !strings.Contains(out.String(), "building the delta from 1.2.0: 2.0 KiB\n") ||
		!strings.Contains(out.String(), "building the delta from 1.2.0: done, 2.0 KiB") {
		t.Errorf("phases:\n%s", out.String())
	}

	var nilBar *Bar
	nilBar.Start("x", 1)
	nilBar.Add(1)
	nilBar.Done()
	if r := strings.NewReader("a"); nilBar.Reader(r) != r || nilBar.Func("x") != nil {
		t.Error("nil Bar wraps")
	}
	if ForWriter(&out, true) != nil {
		t.Error("quiet bar is not nil")
	}
}

// TestTickerShowsIdlePhase: a phase in which nothing is added (indexing)
// is shown again as time passes, with the time so far.
func TestTickerShowsIdlePhase(t *testing.T) {
	out := &syncBuffer{}
	b := New(out, false, 0)
	b.tick = time.Millisecond
	start := time.Now()
	// Time runs a thousand times faster for this bar.
	b.now = func() time.Time { return start.Add(time.Since(start) * 1000) }
	b.Start("indexing 1.0.0 for the delta", 100)
	for !strings.Contains(out.String(), "indexing 1.0.0 for the delta    0%  0 B of 100 B  ") || !strings.Contains(out.String(), "s so far\n") {
		time.Sleep(time.Millisecond)
	}
	b.Done()
	n := len(out.String())
	time.Sleep(20 * time.Millisecond)
	if len(out.String()) != n {
		t.Errorf("shown after Done: %q", out.String()[n:])
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
