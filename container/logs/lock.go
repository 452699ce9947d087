package logs

import (
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes a flock on the log's directory: shared by a reader while it
// lists and opens the log's files, exclusive by the writer while it renames
// them. The writer is the shim and the readers are berthd, so no mutex can
// do this; without it a listing that straddled a rotation skipped a file
// or opened one twice. A directory that cannot be locked is not locked:
// the listing may then be off by a file, as before, but never fails.
func lockDir(logPath string, how int) (unlock func()) {
	d, err := os.Open(filepath.Dir(logPath))
	if err != nil {
		return func() {}
	}
	for {
		err = syscall.Flock(int(d.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		d.Close()
		return func() {}
	}
	// Closing the only descriptor of the open file releases the lock.
	return func() { d.Close() }
}
