package payload

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

type writeback struct {
	Writer
	fd       int
	off      int64 // file offset after the bytes written
	started  int64 // writeback started up to here
	dropped  int64 // waited for and dropped up to here
	disabled bool  // hints switched off

	mu  sync.Mutex // guards err: Sync may run while Write does
	err error      // sticky I/O error from a wait
}

func (w *writeback) sticky() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func newWriteback(w Writer, fd uintptr, off int64) Writer {
	return &writeback{Writer: w, fd: int(fd), off: off, started: off, dropped: off}
}

func (w *writeback) Write(p []byte) (int, error) {
	if err := w.sticky(); err != nil {
		return 0, err
	}
	n, err := w.Writer.Write(p)
	w.off += int64(n)
	if err == nil && !w.disabled && w.off-w.started >= WritebackWindow {
		w.hint()
	}
	if serr := w.sticky(); serr != nil {
		return n, serr
	}
	return n, err
}

func (w *writeback) hint() {
	if err := unix.SyncFileRange(w.fd, w.started, w.off-w.started, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		w.fail(err)
		return
	}
	if w.started > w.dropped {
		const wait = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
		if err := unix.SyncFileRange(w.fd, w.dropped, w.started-w.dropped, wait); err != nil {
			w.fail(err)
			return
		}
		// Only a hint: failure costs page cache, not correctness.
		_ = unix.Fadvise(w.fd, w.dropped, w.started-w.dropped, unix.FADV_DONTNEED)
		w.dropped = w.started
	}
	w.started = w.off
}

// fail switches the hints off for descriptors that do not support them and
// keeps any other error.
func (w *writeback) fail(err error) {
	for _, unsupported := range []error{unix.ESPIPE, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP} {
		if errors.Is(err, unsupported) {
			w.disabled = true
			return
		}
	}
	w.mu.Lock()
	w.err = fmt.Errorf("payload: writeback at offset %d: %w", w.dropped, err)
	w.mu.Unlock()
}

// Sync may run while Write does (a background checkpoint); so may the
// underlying Sync (os.File's is safe for that).
func (w *writeback) Sync() error {
	if err := w.sticky(); err != nil {
		return err
	}
	return w.Writer.Sync()
}
