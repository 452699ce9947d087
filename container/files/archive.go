package files

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Archive is `GET /containers/{id}/archive` (docker cp ctr:path -): a tar
// of path in the container whose root filesystem is rootfs, and its stat,
// named as dockerd names it: the top entry is the last element of path
// ("etc/", "passwd"), "./" for "dir/." (the directory's contents), "/" for
// the root. Symlinks are archived as symlinks (a symlink at path itself
// too, unless path ends in "/"), hardlinked files as hardlinks, owners
// numerically, modes with their file type bits, times in seconds, and the
// security.capability xattr, as dockerd 20.10 writes them. Sockets are
// left out.
//
// The tar is produced while the returned reader is read; close it to stop
// early. A missing path is errdefs.ErrNotFound.
func Archive(rootfs, p string) (io.ReadCloser, container.PathStat, error) {
	r, err := openRoot(rootfs)
	if err != nil {
		return nil, container.PathStat{}, err
	}
	defer r.close()
	abs := absPath(p)
	t, err := r.resolve(abs)
	if err != nil {
		return nil, container.PathStat{}, err
	}
	stat, err := pathStat(rootfs, abs, &t.st)
	if err != nil {
		t.close()
		return nil, container.PathStat{}, err
	}
	name := stat.Name
	if abs == "/" {
		name = "" // children are "/bin", the root itself "/"
	}
	pr, pw := io.Pipe()
	go func() {
		defer t.close()
		w := newTarWalker(pw)
		err := w.entry(t.dirfd, t.base, name, &t.st)
		if err == nil {
			err = w.tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, stat, nil
}

// Export is `docker export`: the whole root filesystem rootfs (the merged
// view of the container's overlay, so no whiteouts) as a tar written to
// w, entries named relative to the root ("bin/", "bin/sh") as dockerd
// writes them.
func Export(rootfs string, w io.Writer) error {
	r, err := openRoot(rootfs)
	if err != nil {
		return err
	}
	defer r.close()
	fd, err := r.openDir("")
	if err != nil {
		return fmt.Errorf("export: open root filesystem %q: %w", rootfs, err)
	}
	defer unix.Close(fd)
	tw := newTarWalker(w)
	if err := tw.children(fd, ""); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

type inode struct{ dev, ino uint64 }

// tarWalker writes a tree to a tar, reading it only through file
// descriptors opened relative to their parent without following symlinks.
type tarWalker struct {
	tw    *tar.Writer
	links map[inode]string // first name of each multiply-linked file
	buf   []byte
}

func newTarWalker(w io.Writer) *tarWalker {
	return &tarWalker{tw: tar.NewWriter(w), links: map[inode]string{}, buf: make([]byte, 128<<10)}
}

// Go's tar type bits, which dockerd adds to the header mode.
const (
	modeISDIR  = 0o40000
	modeISFIFO = 0o10000
	modeISREG  = 0o100000
	modeISLNK  = 0o120000
	modeISBLK  = 0o60000
	modeISCHR  = 0o20000
)

// entry writes the entry base of the directory dirfd, whose lstat is st,
// under the tar name name; a directory is followed by its contents.
func (w *tarWalker) entry(dirfd int, base, name string, st *unix.Stat_t) error {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return w.vanished(name, err)
		}
		defer unix.Close(fd)
		if err := unix.Fstat(fd, st); err != nil {
			return fmt.Errorf("stat %q: %w", name, err)
		}
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", int64(st.Mode&0o7777)|modeISDIR
		hdr.ModTime = time.Unix(st.Mtim.Sec, 0)
		w.capability(hdr, fd)
		if err := w.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		return w.children(fd, name+"/")
	case unix.S_IFREG:
		return w.file(dirfd, base, hdr, st)
	case unix.S_IFLNK:
		target, err := readlinkat(dirfd, base)
		if err != nil {
			return w.vanished(name, err)
		}
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, hdr.Mode|modeISLNK
	case unix.S_IFCHR:
		hdr.Typeflag, hdr.Mode = tar.TypeChar, hdr.Mode|modeISCHR
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		hdr.Typeflag, hdr.Mode = tar.TypeBlock, hdr.Mode|modeISBLK
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag, hdr.Mode = tar.TypeFifo, hdr.Mode|modeISFIFO
	default:
		return nil // sockets cannot be archived (dockerd skips them too)
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	return nil
}

// file writes a regular file (or a hardlink to one written before).
func (w *tarWalker) file(dirfd int, base string, hdr *tar.Header, st *unix.Stat_t) error {
	// O_NONBLOCK: if a fifo took the file's place meanwhile, opening it
	// must not hang; the fstat below then sees it is no regular file.
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return w.vanished(hdr.Name, err)
	}
	f := os.NewFile(uintptr(fd), hdr.Name)
	defer f.Close()
	if err := unix.Fstat(fd, st); err != nil {
		return fmt.Errorf("stat %q: %w", hdr.Name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // replaced by something else while we walked
	}
	hdr.Typeflag, hdr.Mode = tar.TypeReg, int64(st.Mode&0o7777)|modeISREG
	hdr.Uid, hdr.Gid, hdr.ModTime = int(st.Uid), int(st.Gid), time.Unix(st.Mtim.Sec, 0)
	if st.Nlink > 1 {
		id := inode{uint64(st.Dev), st.Ino}
		if first, ok := w.links[id]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return w.tw.WriteHeader(hdr)
		}
		w.links[id] = hdr.Name
	}
	hdr.Size = st.Size
	w.capability(hdr, fd)
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%q: %w", hdr.Name, err)
	}
	n, err := io.CopyBuffer(w.tw, io.LimitReader(f, hdr.Size), w.buf)
	if err != nil {
		return fmt.Errorf("read %q: %w", hdr.Name, err)
	}
	// A file the container truncated while we read it: pad, so the
	// archive stays well formed.
	for ; n < hdr.Size; n++ {
		if _, err := w.tw.Write([]byte{0}); err != nil {
			return err
		}
	}
	return nil
}

// children writes the entries of the open directory fd, in name order,
// named prefix+name.
func (w *tarWalker) children(fd int, prefix string) error {
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("read directory %q: %w", prefix, err)
	}
	sort.Strings(names)
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed by the container meanwhile
			}
			return fmt.Errorf("lstat %q: %w", prefix+n, err)
		}
		if err := w.entry(fd, n, prefix+n, &st); err != nil {
			return err
		}
	}
	return nil
}

// vanished ignores an entry the container removed or replaced between
// listing and opening it; other errors fail the walk.
func (w *tarWalker) vanished(name string, err error) error {
	if err == unix.ENOENT || err == unix.ELOOP || err == unix.ENOTDIR {
		return nil
	}
	return fmt.Errorf("open %q: %w", name, err)
}

// capability copies the security.capability xattr, the one dockerd
// archives.
func (w *tarWalker) capability(hdr *tar.Header, fd int) {
	buf := make([]byte, 256)
	n, err := unix.Fgetxattr(fd, "security.capability", buf)
	if err != nil || n <= 0 {
		return
	}
	hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(buf[:n])}
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// readDirNames lists the directory fd through a private descriptor, so
// fd's offset is left alone.
func readDirNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return names, err
}
