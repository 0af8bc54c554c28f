package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data durable, and its metadata only where reading the
// data back needs it (fdatasync): cheaper than f.Sync for a file rewritten
// in place, whose modification time need not reach the disk.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
