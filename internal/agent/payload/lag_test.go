package payload

import (
	"testing"
	"time"
)

// feed observes a source delivering step bytes every tick for d, from
// (t, off), and returns where it ends.
func feed(m *linkMeter, t time.Time, off int64, tick time.Duration, step int64, d time.Duration) (time.Time, int64) {
	for end := t.Add(d); t.Before(end); {
		t, off = t.Add(tick), off+step
		m.observe(t, off)
	}
	return t, off
}

// The bound in link time, as a pure function of what the source delivered
// and when (no clock read): with no window it is the byte budget; on a
// steady link it is the bytes of one window, never more; it follows a link
// that slows down or stops back to the budget; it never counts bytes from
// before the copy began.
func TestAllowedLag(t *testing.T) {
	const budget = 512 << 10
	const window = 250 * time.Millisecond
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

	t.Run("no window", func(t *testing.T) {
		m := newLinkMeter(windowSpans*window, t0, 0)
		end, _ := feed(m, t0, 0, time.Millisecond, 1<<20, 2*time.Second)
		if got := allowedLag(budget, 0, m, end); got != budget {
			t.Fatalf("allowed %d without a window, want the budget %d", got, budget)
		}
		if got := allowedLag(budget, window, nil, end); got != budget {
			t.Fatalf("allowed %d without a meter, want the budget %d", got, budget)
		}
	})

	t.Run("steady fast link", func(t *testing.T) {
		// 1 MiB per ms: 250 MiB per window, of which the lag may take
		// three quarters.
		m := newLinkMeter(windowSpans*window, t0, 0)
		end, _ := feed(m, t0, 0, time.Millisecond, 1<<20, 3*time.Second)
		got, want := allowedLag(budget, window, m, end), int64(250<<20)*3/4
		if got > want || got < want*(meterSlots-2)/meterSlots {
			t.Fatalf("allowed %d on a link moving %d bytes per window, want at most %d and within two samples of it", got, 250<<20, want)
		}
	})

	t.Run("slow link keeps the budget", func(t *testing.T) {
		// 64 KiB per 100 ms: 160 KiB per window, below the budget.
		m := newLinkMeter(windowSpans*window, t0, 0)
		end, _ := feed(m, t0, 0, 100*time.Millisecond, 64<<10, 5*time.Second)
		if got := allowedLag(budget, window, m, end); got != budget {
			t.Fatalf("allowed %d on a slow link, want the budget %d", got, budget)
		}
	})

	t.Run("start of a resumed copy", func(t *testing.T) {
		// A burst of 8 MiB in 1 ms right after the copy began at 100 MiB
		// (a full socket): the rate is averaged over the whole span, so
		// a window's bytes are a quarter of the burst, the bound three
		// quarters of that, and nothing before 100 MiB counts.
		m := newLinkMeter(windowSpans*window, t0, 100<<20)
		end, _ := feed(m, t0, 100<<20, time.Millisecond/8, 1<<20, time.Millisecond)
		if got := allowedLag(budget, window, m, end); got != 3<<19 {
			t.Fatalf("allowed %d after an 8 MiB burst, want %d", got, 3<<19)
		}
	})

	t.Run("link slows down", func(t *testing.T) {
		m := newLinkMeter(windowSpans*window, t0, 0)
		end, off := feed(m, t0, 0, time.Millisecond, 1<<20, 2*time.Second)
		fast := allowedLag(budget, window, m, end)
		end, _ = feed(m, end, off, 100*time.Millisecond, 16<<10, 2*time.Second)
		if got := allowedLag(budget, window, m, end); fast < 160<<20 || got != budget {
			t.Fatalf("allowed %d on the fast link, then %d once it slowed to 160 KiB/s; want over 160 MiB, then the budget", fast, got)
		}
	})

	t.Run("link stops", func(t *testing.T) {
		m := newLinkMeter(windowSpans*window, t0, 0)
		end, _ := feed(m, t0, 0, time.Millisecond, 1<<20, 2*time.Second)
		if got := allowedLag(budget, window, m, end.Add(2*windowSpans*window)); got != budget {
			t.Fatalf("allowed %d two spans after the link stopped, want the budget %d", got, budget)
		}
	})

	t.Run("bounded memory", func(t *testing.T) {
		m := newLinkMeter(windowSpans*window, t0, 0)
		feed(m, t0, 0, time.Microsecond, 4<<10, 3*time.Second)
		if n := len(m.samples); n > meterSlots+2 {
			t.Fatalf("%d samples kept, want at most %d", n, meterSlots+2)
		}
	})
}
