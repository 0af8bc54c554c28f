// Package progress shows how long work is going: a phase ("hashing",
// "building the delta from 1.2.0", "downloading"), the share done, the rate
// and the time left.
//
// On a terminal it keeps one line up to date (redrawn at most every
// RedrawEvery); elsewhere (a log, a pipe) it writes a plain line when a
// phase starts, every PlainEvery or every 10 % of the work, and when the
// phase ends. It writes to the writer it is given, which callers make
// stderr: progress never goes to stdout, where results (and --json) go.
//
// A nil *Bar is valid and shows nothing, so code that takes a *Bar needs
// no checks. Bar is safe for concurrent use.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Defaults of a Bar.
const (
	RedrawEvery = 100 * time.Millisecond
	PlainEvery  = 5 * time.Second
)

// Bar shows the progress of one phase at a time on w.
type Bar struct {
	w     io.Writer
	tty   bool
	width int
	now   func() time.Time
	// tick is how often a phase is shown again while nothing is added
	// (elapsed time goes on); 0: never.
	tick time.Duration

	mu        sync.Mutex
	phase     string
	total     int64 // <= 0: unknown
	done      int64
	start     time.Time
	lastDraw  time.Time
	lastTenth int64
	drawn     bool          // a terminal line is showing
	stop      chan struct{} // ends the current phase's ticker
}

// New returns a Bar writing to w. tty selects the single updating line;
// width is the terminal's width (0: 80).
func New(w io.Writer, tty bool, width int) *Bar {
	if width <= 0 {
		width = 80
	}
	tick := PlainEvery
	if tty {
		tick = time.Second
	}
	return &Bar{w: w, tty: tty, width: width, now: time.Now, tick: tick}
}

// ForFile returns a Bar on f that updates one line when f is a terminal
// and writes plain lines otherwise; nil when quiet (for --json).
func ForFile(f *os.File, quiet bool) *Bar {
	if quiet || f == nil {
		return nil
	}
	fd := int(f.Fd())
	tty := term.IsTerminal(fd)
	width := 0
	if tty {
		width, _, _ = term.GetSize(fd)
	}
	return New(f, tty, width)
}

// ForWriter is ForFile for a writer that may be an *os.File: anything else
// gets plain lines.
func ForWriter(w io.Writer, quiet bool) *Bar {
	if f, ok := w.(*os.File); ok {
		return ForFile(f, quiet)
	}
	if quiet || w == nil {
		return nil
	}
	return New(w, false, 0)
}

// SetClock replaces time.Now, for tests; it also stops the redraws of a
// phase in which nothing is added, which run on real time.
func (b *Bar) SetClock(now func() time.Time) {
	if b != nil {
		b.now, b.tick = now, 0
	}
}

// Start begins a phase of total units of work (bytes; <= 0 when unknown),
// ending the previous phase if it is still open.
func (b *Bar) Start(phase string, total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.phase != "" {
		b.finishLocked()
	}
	b.phase, b.total, b.done, b.start, b.lastTenth = phase, total, 0, b.now(), 0
	b.lastDraw = b.start
	if b.tick > 0 {
		// A phase can go a long time without Add (indexing an image):
		// show it again so the elapsed time moves.
		stop := make(chan struct{})
		b.stop = stop
		go b.ticker(stop, b.tick)
	}
	if b.tty {
		b.drawLocked()
	} else {
		if total > 0 {
			fmt.Fprintf(b.w, "%s: %s\n", phase, Size(total))
		} else {
			fmt.Fprintf(b.w, "%s\n", phase)
		}
	}
}

// Add records n more units done.
func (b *Bar) Add(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.done += n
	b.updateLocked()
	b.mu.Unlock()
}

// Set records that done units are done.
func (b *Bar) Set(done int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.done = done
	b.updateLocked()
	b.mu.Unlock()
}

// Done ends the current phase with a last line.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.phase != "" {
		b.finishLocked()
	}
}

// Func returns a callback for code that reports (done, total) pairs
// without knowing about Bar: the first call starts phase.
func (b *Bar) Func(phase string) func(done, total int64) {
	if b == nil {
		return nil
	}
	started := false
	return func(done, total int64) {
		if !started {
			started = true
			b.Start(phase, total)
		}
		b.Set(done)
	}
}

// Reader returns r counting what is read from it into the current phase.
func (b *Bar) Reader(r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	return &reader{r: r, b: b}
}

type reader struct {
	r io.Reader
	b *Bar
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.b.Add(int64(n))
	return n, err
}

// Writer returns w counting what is written to it into the current phase.
func (b *Bar) Writer(w io.Writer) io.Writer {
	if b == nil {
		return w
	}
	return &writer{w: w, b: b}
}

type writer struct {
	w io.Writer
	b *Bar
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.b.Add(int64(n))
	return n, err
}

func (b *Bar) updateLocked() {
	if b.phase == "" {
		return
	}
	now := b.now()
	if b.tty {
		if now.Sub(b.lastDraw) >= RedrawEvery {
			b.lastDraw = now
			b.drawLocked()
		}
		return
	}
	tenth := int64(0)
	if b.total > 0 {
		tenth = b.done * 10 / b.total
	}
	if now.Sub(b.lastDraw) >= PlainEvery || tenth > b.lastTenth && tenth < 10 {
		b.lastDraw, b.lastTenth = now, tenth
		fmt.Fprintf(b.w, "%s\n", b.statusLocked(now))
	}
}

func (b *Bar) drawLocked() {
	line := b.statusLocked(b.now())
	if len(line) > b.width-1 {
		line = line[:b.width-1]
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
	b.drawn = true
}

// ticker shows the phase again every tick until stop is closed.
func (b *Bar) ticker(stop chan struct{}, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		select {
		case <-stop:
		default:
			now := b.now()
			if now.Sub(b.lastDraw) >= tick {
				b.lastDraw = now
				if b.tty {
					b.drawLocked()
				} else {
					fmt.Fprintf(b.w, "%s\n", b.statusLocked(now))
				}
			}
		}
		b.mu.Unlock()
	}
}

func (b *Bar) finishLocked() {
	if b.stop != nil {
		close(b.stop)
		b.stop = nil
	}
	now := b.now()
	el := now.Sub(b.start)
	msg := fmt.Sprintf("%s: done, %s in %s", b.phase, Size(b.done), round(el))
	if b.tty {
		fmt.Fprintf(b.w, "\r\x1b[K%s\n", msg)
	} else {
		fmt.Fprintf(b.w, "%s\n", msg)
	}
	b.phase, b.drawn = "", false
}

// statusLocked is the one-line status: "hashing  45%  230.4 MiB of 512.0
// MiB  120.3 MiB/s  2s left".
func (b *Bar) statusLocked(now time.Time) string {
	el := now.Sub(b.start)
	var sb strings.Builder
	sb.WriteString(b.phase)
	if b.total > 0 {
		fmt.Fprintf(&sb, "  %3d%%  %s of %s", min(b.done*100/b.total, 100), Size(b.done), Size(b.total))
	} else {
		fmt.Fprintf(&sb, "  %s", Size(b.done))
	}
	if el >= time.Second/2 && b.done > 0 {
		rate := float64(b.done) / el.Seconds()
		fmt.Fprintf(&sb, "  %s/s", Size(int64(rate)))
		if b.total > b.done {
			left := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
			fmt.Fprintf(&sb, "  %s left", round(left))
		}
	} else if el >= time.Second {
		fmt.Fprintf(&sb, "  %s so far", el.Round(time.Second))
	}
	return sb.String()
}

func round(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// Size formats n bytes for people: B, KiB, MiB or GiB.
func Size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
