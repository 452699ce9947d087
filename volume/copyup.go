package volume

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Populate copies what the image has at dest (a path inside rootfs) into
// an empty volume directory data, as dockerd does the first time a volume
// is mounted: contents, ownership, modes, times, extended attributes and
// hard links, and the directory's own owner and mode. dest is resolved
// inside rootfs (a symlink in the image cannot point the copy at the
// host), symlinks are copied as links, never followed. Every step works
// on directory handles (openat and friends, O_NOFOLLOW): a container that
// shares the volume and swaps a fresh directory for a symlink while the
// copy runs cannot redirect it out of the volume. Nothing is copied when
// dest is missing or not a directory, or data is not empty. It reports
// whether it copied.
func Populate(rootfs, dest, data string) (bool, error) {
	dst, err := os.OpenFile(data, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("populate volume %s: %w", data, err)
	}
	defer dst.Close()
	if names, err := dst.Readdirnames(1); err != nil && err != io.EOF {
		return false, fmt.Errorf("populate volume %s: %w", data, err)
	} else if len(names) > 0 {
		return false, nil
	}
	h, err := pathrs.OpenInRoot(rootfs, dest)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, fmt.Errorf("populate volume %s from %s: %w", data, dest, err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, nil
	}
	// h is an O_PATH handle: reopen it for reading its entries.
	src, err := unix.Openat(int(h.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("populate volume %s from %s: %w", data, dest, err)
	}
	defer unix.Close(src)
	c := &copier{links: map[uint64]*os.File{}}
	defer c.close()
	if err := c.tree(src, int(dst.Fd())); err != nil {
		return false, fmt.Errorf("populate volume %s from %s: %w", data, dest, err)
	}
	if err := unix.Fchown(int(dst.Fd()), int(st.Uid), int(st.Gid)); err != nil {
		return true, err
	}
	// After chown, which clears setuid/setgid.
	return true, unix.Fchmod(int(dst.Fd()), st.Mode&0o7777)
}

// copier copies a tree between directory handles, keeping hard links
// linked (one file under many names is copied once).
type copier struct {
	links map[uint64]*os.File // inode of a multiply-linked source -> O_PATH handle on its copy
}

func (c *copier) close() {
	for _, f := range c.links {
		f.Close()
	}
}

// tree copies the entries of directory src into directory dst.
func (c *copier) tree(src, dst int) error {
	// Readdirnames on a dup: closing d must not close src.
	dup, err := unix.Dup(src)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), "src")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := c.entry(src, dst, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (c *copier) entry(src, dst int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dst, name, 0o700); err != nil {
			return err
		}
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		d, err := unix.Openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(d)
		if err := c.tree(s, d); err != nil {
			return err
		}
		if err := setMeta(s, d, &st); err != nil {
			return err
		}
	case unix.S_IFREG:
		if st.Nlink > 1 {
			if first, ok := c.links[st.Ino]; ok {
				return unix.Linkat(int(first.Fd()), "", dst, name, unix.AT_EMPTY_PATH)
			}
		}
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		in := os.NewFile(uintptr(s), name)
		defer in.Close()
		d, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		out := os.NewFile(uintptr(d), name)
		defer out.Close()
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		if err := setMeta(s, d, &st); err != nil {
			return err
		}
		if st.Nlink > 1 {
			p, err := unix.Openat(dst, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			c.links[st.Ino] = os.NewFile(uintptr(p), name)
		}
	case unix.S_IFLNK:
		target, err := readlinkat(src, name)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dst, name); err != nil {
			return err
		}
		if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if err := unix.Mknodat(dst, name, st.Mode&^0o7777|0o600, int(st.Rdev)); err != nil {
			return err
		}
		// A node cannot be opened for fchown without side effects: an
		// O_PATH handle through /proc/self/fd reaches it and nothing
		// else.
		p, err := unix.Openat(dst, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(p)
		fdPath := "/proc/self/fd/" + strconv.Itoa(p)
		if err := unix.Fchownat(p, "", int(st.Uid), int(st.Gid), unix.AT_EMPTY_PATH); err != nil {
			return err
		}
		if err := unix.Chmod(fdPath, st.Mode&0o7777); err != nil {
			return err
		}
	default:
		return nil // sockets are not copied
	}
	return unix.UtimesNanoAt(dst, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// setMeta gives the open copy d the owner, mode and extended attributes
// of the open source s.
func setMeta(s, d int, st *unix.Stat_t) error {
	if err := unix.Fchown(d, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	// After chown, which clears setuid/setgid.
	if err := unix.Fchmod(d, st.Mode&0o7777); err != nil {
		return err
	}
	return copyXattrs(s, d)
}

// copyXattrs copies the extended attributes of the open file s to d
// (file capabilities, ACLs).
func copyXattrs(s, d int) error {
	buf := make([]byte, 4096)
	n, err := unix.Flistxattr(s, buf)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ERANGE) {
		return nil // none, or more names than a copy-up needs to care for
	}
	if err != nil || n == 0 {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		val := make([]byte, 64<<10)
		m, err := unix.Fgetxattr(s, name, val)
		if err != nil {
			continue // vanished or not readable: nothing to copy
		}
		if err := unix.Fsetxattr(d, name, val[:m], 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("copy xattr %s: %w", name, err)
		}
	}
	return nil
}

func readlinkat(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
