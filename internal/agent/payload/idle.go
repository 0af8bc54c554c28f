package payload

import (
	"io"
	"sync"
	"time"
)

// watchdog saves progress when the source stays silent (Checkpoints.Idle).
//
// Invariant: mu is held by the copy's goroutine at all times except while
// it waits in read for the source, so the save function, which runs only
// with mu held by the watchdog, never overlaps a write to dst, a hash
// barrier or another save started by the copy.
type watchdog struct {
	mu      sync.Mutex
	idle    time.Duration
	save    func() error
	due     func() bool // whether enough is unsaved to be worth a save
	waiting time.Time   // when the pending read began; zero while the copy runs
	saved   bool        // the current wait was saved already
	err     error       // the save's error, returned by the next read
	quit    chan struct{}
	done    chan struct{}
}

// watchdogError carries a failed idle save out of read.
type watchdogError struct{ err error }

func (e *watchdogError) Error() string { return e.err.Error() }

// startWatchdog starts the watchdog; the caller holds mu from now on.
func startWatchdog(idle time.Duration, due func() bool, save func() error) *watchdog {
	w := &watchdog{idle: idle, due: due, save: save, quit: make(chan struct{}), done: make(chan struct{})}
	w.mu.Lock()
	go w.run()
	return w
}

func (w *watchdog) run() {
	defer close(w.done)
	tick := time.NewTicker(w.idle / 4)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		if !w.mu.TryLock() {
			continue // the copy is running
		}
		if !w.waiting.IsZero() && !w.saved && w.err == nil && time.Since(w.waiting) >= w.idle && w.due() {
			w.saved = true
			w.err = w.save()
		}
		w.mu.Unlock()
	}
}

// read is io.ReadFull with mu released while it waits. A failed idle save
// is returned as a *watchdogError (with the bytes read, which were not
// written).
func (w *watchdog) read(src io.Reader, p []byte) (int, error) {
	w.waiting, w.saved = time.Now(), false
	w.mu.Unlock()
	n, err := io.ReadFull(src, p)
	w.mu.Lock()
	w.waiting = time.Time{}
	if w.err != nil {
		return n, &watchdogError{w.err}
	}
	return n, err
}

// stop ends the watchdog; the caller holds mu and keeps it.
func (w *watchdog) stop() {
	close(w.quit)
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
}
