// Package files owns the file operations the engine performs on a
// container's root filesystem from the host: `docker cp` both ways (Stat,
// Archive, Extract), `docker export` (Export) and `docker diff` (Changes).
//
// The root filesystem is a host directory (the container's mounted
// overlay) that the container itself may be changing while we work, so
// every path inside it is resolved by the kernel as the container would
// resolve it (openat2 RESOLVE_IN_ROOT: ".." stops at the root, absolute
// symlinks restart there), and trees are walked through directory file
// descriptors opened with O_NOFOLLOW: a symlink planted mid-walk is read as
// a symlink, never followed to the host.
package files

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// root is an open container root filesystem.
type root struct {
	path string
	fd   int
}

func openRoot(rootfs string) (*root, error) {
	fd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open container root filesystem %q: %w", rootfs, err)
	}
	return &root{path: rootfs, fd: fd}, nil
}

func (r *root) close() { unix.Close(r.fd) }

// openDir opens the directory rel (relative to the root, "" for the root
// itself) for reading, following symlinks inside the root.
func (r *root) openDir(rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EAGAIN || err == unix.EINTR {
			continue // a concurrent rename in the container: retry
		}
		return fd, err
	}
}

// fdPath returns the host path of an open file descriptor (for
// computing where a resolved path landed inside the root).
func fdPath(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd), buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// containerPath turns what fd (opened inside the root) points at
// into its absolute path in the container ("/etc").
func (r *root) containerPath(fd int) (string, error) {
	p, err := fdPath(fd)
	if err != nil {
		return "", fmt.Errorf("locate resolved path: %w", err)
	}
	rootPath, err := fdPath(r.fd)
	if err != nil {
		return "", fmt.Errorf("locate root: %w", err)
	}
	if p == rootPath {
		return "/", nil
	}
	rel, ok := strings.CutPrefix(p, strings.TrimSuffix(rootPath, "/")+"/")
	if !ok {
		return "", fmt.Errorf("resolved path %q is outside the root %q: %w", p, rootPath, errdefs.ErrInvalidArgument)
	}
	return "/" + rel, nil
}

// absPath is the path the user gave, taken as absolute in the container
// and cleaned, but keeping a trailing "/" or "/." (they change what docker
// cp does: "dir/." means the directory's contents).
func absPath(p string) string {
	clean := path.Join("/", p)
	switch {
	case clean == "/":
		return "/"
	case strings.HasSuffix(p, "/."), p == ".":
		return clean + "/."
	case strings.HasSuffix(p, "/"):
		return clean + "/"
	}
	return clean
}

// target is a resolved path: the open parent directory and the final
// component in it ("." when the path names a directory itself: "/",
// "dir/", "dir/.").
type target struct {
	dirfd int
	base  string
	st    unix.Stat_t
}

func (t *target) close() { unix.Close(t.dirfd) }

// resolve resolves abs (an absPath) the way dockerd does for docker cp:
// every component but the last follows symlinks inside the root; the last
// is not followed, unless the path ends in "/" or "/.", which names the
// directory it resolves to. Missing paths are errdefs.ErrNotFound.
func (r *root) resolve(abs string) (*target, error) {
	dir, base := path.Split(abs)
	if base == "" || base == "." {
		dir, base = abs, "."
	}
	dirfd, err := r.openDir(strings.TrimPrefix(dir, "/"))
	if err != nil {
		return nil, statError(abs, err)
	}
	t := &target{dirfd: dirfd, base: base}
	if err := unix.Fstatat(dirfd, base, &t.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Close(dirfd)
		return nil, statError(abs, err)
	}
	return t, nil
}

// statError names the container path (never the host's) and puts a
// missing file in the not-found category.
func statError(abs string, err error) error {
	if err == unix.ENOENT {
		return fmt.Errorf("no such file or directory in the container: %s: %w", abs, errdefs.ErrNotFound)
	}
	return fmt.Errorf("lstat %s: %w", abs, err)
}
