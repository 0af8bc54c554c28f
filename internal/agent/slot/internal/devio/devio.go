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

// OpenReader opens slot n's image at path for reading.
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

func (r *reader) Close() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("%s: slot %s: %w", r.prefix, r.n, err)
	}
	return nil
}

// Fd returns the slot's file descriptor, so that payload.Writeback can start
// writeback early and keep the page cache bounded while an image streams in.
func (w *writer) Fd() uintptr { return w.f.Fd() }
