package volume

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Populate copies what the image has at dest (a path inside rootfs) into
// an empty volume directory data, as dockerd does the first time a volume
// is mounted: contents, ownership, modes and times, and the directory's
// own owner and mode. dest is resolved inside rootfs (a symlink in the
// image cannot point the copy at the host), symlinks are copied as links,
// never followed. Nothing is copied when dest is missing or not a
// directory, or data is not empty. It reports whether it copied.
func Populate(rootfs, dest, data string) (bool, error) {
	if ents, err := os.ReadDir(data); err != nil {
		return false, fmt.Errorf("populate volume %s: %w", data, err)
	} else if len(ents) > 0 {
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
	// The handle is an O_PATH one resolved inside the rootfs; walking
	// through /proc/self/fd keeps every lookup below it.
	src := "/proc/self/fd/" + strconv.Itoa(int(h.Fd()))
	c := &copier{links: map[uint64]string{}}
	if err := c.tree(src, data); err != nil {
		return false, fmt.Errorf("populate volume %s from %s: %w", data, dest, err)
	}
	if err := os.Lchown(data, int(st.Uid), int(st.Gid)); err != nil {
		return true, err
	}
	// After chown, which clears setuid/setgid.
	return true, unix.Chmod(data, st.Mode&0o7777)
}

// copier copies a tree, keeping hard links linked (busybox's /bin is
// hundreds of links to one file).
type copier struct {
	links map[uint64]string // inode of a multiply-linked file -> its copy
}

// tree copies the entries of directory src into directory dst.
func (c *copier) tree(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if err := c.entry(s, d); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) entry(s, d string) error {
	var st unix.Stat_t
	if err := unix.Lstat(s, &st); err != nil {
		return err
	}
	perm := uint32(st.Mode & 0o7777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if err := c.tree(s, d); err != nil {
			return err
		}
	case unix.S_IFREG:
		if st.Nlink > 1 {
			if first, ok := c.links[st.Ino]; ok {
				return os.Link(first, d)
			}
			c.links[st.Ino] = d
		}
		if err := copyFile(s, d); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(s)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, d); err != nil {
			return err
		}
		if err := os.Lchown(d, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		return unix.UtimesNanoAt(unix.AT_FDCWD, d, ts, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if err := unix.Mknod(d, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return nil // sockets are not copied
	}
	if err := os.Lchown(d, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	// After chown, which clears setuid/setgid.
	if err := unix.Chmod(d, perm); err != nil {
		return err
	}
	if err := copyXattrs(s, d); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, d, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyFile(s, d string) error {
	in, err := os.OpenFile(s, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(d, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyXattrs copies the extended attributes of s to d (file
// capabilities, ACLs), without following links.
func copyXattrs(s, d string) error {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(s, buf)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ERANGE) {
		return nil // none, or more names than a copy-up needs to care for
	}
	if err != nil || n == 0 {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		val := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(s, name, val)
		if err != nil {
			continue // vanished or not readable: nothing to copy
		}
		if err := unix.Lsetxattr(d, name, val[:m], 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("copy xattr %s of %s: %w", name, s, err)
		}
	}
	return nil
}
