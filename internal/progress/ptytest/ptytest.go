//go:build linux

// Package ptytest opens pseudo-terminals for tests of terminal output,
// with golang.org/x/sys/unix and no other dependency.
package ptytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal: what is written to Slave (a terminal, as
// term.IsTerminal sees it) is read from the master.
type PTY struct {
	Slave  *os.File
	master *os.File
	out    chan []byte
}

// Open opens a pseudo-terminal and starts reading its master.
func Open() (*PTY, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("ptytest: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, fmt.Errorf("ptytest: unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("ptytest: ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("ptytest: %w", err)
	}
	p := &PTY{Slave: s, master: m, out: make(chan []byte, 1)}
	go func() {
		var buf bytes.Buffer
		_, err := io.Copy(&buf, m)
		// Reading the master of a closed slave fails with EIO: the end.
		if err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
			fmt.Fprintf(&buf, "\n[ptytest: %v]", err)
		}
		p.out <- buf.Bytes()
	}()
	return p, nil
}

// Output closes the slave and returns everything written to it.
func (p *PTY) Output() string {
	p.Slave.Close()
	out := <-p.out
	p.master.Close()
	return string(out)
}
