// Package devio opens slot images (block devices or regular files) as
// slot.Writer and io.ReadCloser whose errors name the backend and the slot.
package devio

import (
	"fmt"
	"io"
	"os"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

// OpenWriter opens path with flag (O_WRONLY is added) for writing slot n's
// image from offset 0. prefix names the backend in errors, e.g. "slot/uboot".
// Sync fsyncs the file or device; Close does not.
func OpenWriter(prefix string, n slot.Name, path string, flag int, perm os.FileMode) (slot.Writer, error) {
	f, err := os.OpenFile(path, flag|os.O_WRONLY, perm)
	if err != nil {
		return nil, fmt.Errorf("%s: open slot %s for writing: %w", prefix, n, err)
	}
	return &writer{f: f, prefix: prefix, n: n}, nil
}

// OpenWriterAt opens the existing file or device at path for writing slot
// n's image from byte offset off, without creating, truncating or
// shrinking it: the bytes before off stay as they are. It fails if path
// holds fewer than off bytes. prefix names the backend in errors.
func OpenWriterAt(prefix string, n slot.Name, path string, off int64) (slot.Writer, error) {
	if off < 0 {
		return nil, fmt.Errorf("%s: open slot %s for writing at offset %d: negative offset", prefix, n, off)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: open slot %s for writing: %w", prefix, n, err)
	}
	// Seeking to the end gives the size of a regular file and of a block
	// device alike.
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil && size < off {
		err = fmt.Errorf("it holds %d bytes, fewer than the %d to resume after", size, off)
	}
	if err == nil {
		_, err = f.Seek(off, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: open slot %s for writing at offset %d: %w", prefix, n, off, err)
	}
	return &writer{f: f, prefix: prefix, n: n}, nil
}

// OpenReader opens slot n's image at path for reading. The reader is also
// an io.Seeker.
func OpenReader(prefix string, n slot.Name, path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: open slot %s for reading: %w", prefix, n, err)
	}
	return &reader{f: f, prefix: prefix, n: n}, nil
}

type writer struct {
	f      *os.File
	prefix string
	n      slot.Name
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = fmt.Errorf("%s: slot %s: %w", w.prefix, w.n, err)
	}
	return n, err
}

func (w *writer) Sync() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("%s: slot %s: fsync: %w", w.prefix, w.n, err)
	}
	return nil
}

func (w *writer) Close() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("%s: slot %s: %w", w.prefix, w.n, err)
	}
	return nil
}

type reader struct {
	f      *os.File
	prefix string
	n      slot.Name
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: slot %s: %w", r.prefix, r.n, err)
	}
	return n, err
}

// ReadAt reads at an offset (io.ReaderAt), so that a delta can read its
// source from the active slot with random access.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: slot %s: %w", r.prefix, r.n, err)
	}
	return n, err
}

// Seek moves the read position (io.Seeker), so that a reader can start in
// the middle of a slot.
func (r *reader) Seek(off int64, whence int) (int64, error) {
	n, err := r.f.Seek(off, whence)
	if err != nil {
		err = fmt.Errorf("%s: slot %s: %w", r.prefix, r.n, err)
	}
	return n, err
}

func (r *reader) Close() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("%s: slot %s: %w", r.prefix, r.n, err)
	}
	return nil
}

// Fd returns the slot's file descriptor, so that payload.Writeback can start
// writeback early and keep the page cache bounded while an image streams in.
func (w *writer) Fd() uintptr { return w.f.Fd() }
