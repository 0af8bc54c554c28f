package payload

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

type writeback struct {
	Writer
	fd       int
	off      int64 // file offset after the bytes written
	started  int64 // writeback started up to here
	dropped  int64 // waited for and dropped up to here
	disabled bool  // hints switched off
	err      error // sticky I/O error from a wait
}

func newWriteback(w Writer, fd uintptr, off int64) Writer {
	return &writeback{Writer: w, fd: int(fd), off: off, started: off, dropped: off}
}

func (w *writeback) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.Writer.Write(p)
	w.off += int64(n)
	if err == nil && !w.disabled && w.off-w.started >= WritebackWindow {
		w.hint()
	}
	if w.err != nil {
		return n, w.err
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
	w.err = fmt.Errorf("payload: writeback at offset %d: %w", w.dropped, err)
}

func (w *writeback) Sync() error {
	if w.err != nil {
		return w.err
	}
	return w.Writer.Sync()
}
