package payload

// WritebackWindow is how much data Writeback lets accumulate before it asks
// the kernel to start writing it out.
const WritebackWindow = 8 << 20

// Writeback wraps a slot Writer backed by a file descriptor (an *os.File
// for a slot file or a block device) so that its data is written out to the
// device while the download goes on, instead of all at once by the final
// Sync; and so that a finished image does not fill the page cache, which on
// a device with little RAM would evict everything else.
//
// On Linux, after every WritebackWindow bytes it starts writeback of the new
// window (sync_file_range SYNC_FILE_RANGE_WRITE), waits for the window
// before it, and drops that window from the page cache (posix_fadvise
// DONTNEED). At most about two windows are dirty at a time. A later Verify
// of the slot therefore reads the device, not cached pages.
//
// The hints never replace Sync: Install still calls Sync, and only its nil
// result makes the image durable. If the descriptor does not support the
// hints (a pipe, an unusual filesystem) they are switched off silently; an
// I/O error seen while waiting is kept and returned by every later Write and
// Sync, because the kernel may then not report it to Sync again.
//
// Elsewhere, or when w has no Fd method, Writeback returns w unchanged.
// The result is not safe for concurrent use, like w.
func Writeback(w Writer) Writer { return WritebackAt(w, 0) }

// WritebackAt is Writeback for a writer positioned at offset off of its
// file (a slot opened to resume an image), so that the hints cover the
// ranges actually written.
func WritebackAt(w Writer, off int64) Writer {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return w
	}
	return newWriteback(w, f.Fd(), off)
}
