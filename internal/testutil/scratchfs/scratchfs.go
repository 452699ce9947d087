// Package scratchfs makes throwaway ext4 filesystems on loop devices, for
// tests and benchmarks that must not depend on how the host's own
// filesystem is set up.
package scratchfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/mountinfo"
)

// Make is New under t's temporary directory, closed by t's cleanup.
func Make(t testing.TB, size int64) *FS {
	t.Helper()
	fs, err := New(t.TempDir(), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fs.Close(); err != nil {
			t.Error(err)
		}
	})
	return fs
}

// DelallocBlocks is how many blocks of written data ext4 has not yet
// allocated on disk: data only in the page cache, lost on a power cut.
func (fs *FS) DelallocBlocks() (int64, error) {
	name := fmt.Sprintf("/sys/fs/ext4/%s/delayed_allocation_blocks", fs.device)
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// FS is a fresh ext4 filesystem with a journal (mkfs.ext4's default,
// what Debian installs) on a sparse loop-mounted file.
//
// The pull bench keeps its stores on one because, on the host's: on an ext4 without a journal
// (this VM's root), creating an inode first scans every inode of the group
// deleted in the last 30 s (fs/ext4/ialloc.c recently_deleted), so a pull
// right after the previous iteration's cleanup spends most of its time in
// that scan and the bench measures the delete rather than the pull.
type FS struct {
	Dir    string // mount point
	image  string
	device string // loopN
}

// New makes and mounts a size-byte filesystem under parent.
func New(parent string, size int64) (*FS, error) {
	img := filepath.Join(parent, "scratch.ext4")
	f, err := os.Create(img)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("scratch filesystem: %w", err)
	}
	fs := &FS{Dir: filepath.Join(parent, "scratch"), image: img}
	if err := os.Mkdir(fs.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, c := range [][]string{{"mkfs.ext4", "-q", "-F", img}, {"mount", "-o", "loop", img, fs.Dir}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			os.Remove(img)
			return nil, fmt.Errorf("scratch filesystem: %s: %v: %s", c[0], err, out)
		}
	}
	entries, err := mountinfo.Read()
	if err != nil {
		fs.Close()
		return nil, err
	}
	for _, e := range entries {
		if e.Mountpoint == fs.Dir {
			fs.device = filepath.Base(e.Source)
		}
	}
	return fs, nil
}

// Close unmounts the filesystem with whatever a puller left mounted
// inside (its loop device goes with it: mount set it up with autoclear)
// and removes its file.
func (fs *FS) Close() error {
	if err := unix.Unmount(fs.Dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", fs.Dir, err)
	}
	os.Remove(fs.Dir)
	return os.Remove(fs.image)
}
