package apply

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// create runs mk to make base in the directory parent. If base exists, the
// existing entry is removed (recursively for a directory) and mk runs once
// more: a later entry replaces an earlier one.
func (a *applier) create(parent, base string, mk func(h dirHandle) error) (dirHandle, error) {
	h, err := a.openDir(parent, true)
	if err != nil {
		return h, err
	}
	err = mk(h)
	if err == unix.EEXIST {
		if err := a.removeExisting(h, base); err != nil {
			return h, err
		}
		err = mk(h)
	}
	return h, err
}

// owner returns the mapped owner of hdr and whether a new entry in h needs
// an explicit chown to get it.
func (a *applier) owner(h dirHandle, hdr *tar.Header) (uid, gid int, chown bool, err error) {
	uid, gid, err = a.mapIDs(hdr.Uid, hdr.Gid)
	return uid, gid, uid != a.euid || gid != a.egid || h.setgid, err
}

// needChmod reports whether a node created with perm needs an explicit chmod:
// the umask took bits away, or chown cleared setuid/setgid, or we lack the
// privilege for the creating call to have kept them.
func (a *applier) needChmod(perm uint32, chowned bool) bool {
	return perm&a.umask != 0 || (chowned && perm&(unix.S_ISUID|unix.S_ISGID) != 0) || a.euid != 0
}

func times(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{
		{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())},
		{Sec: hdr.ModTime.Unix(), Nsec: int64(hdr.ModTime.Nanosecond())},
	}
}

// futimens sets the times of an open file (utimensat with a NULL path).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

const paxXattr = "SCHILY.xattr."

// xattrs sets the PAX xattrs of hdr with set. Xattrs overlayfs would act on
// are dropped; those the filesystem does not support or refuses (EPERM, for
// instance user.* on a symlink) are logged and skipped, as Docker does.
func (a *applier) xattrs(hdr *tar.Header, rel string, set func(name string, val []byte) error) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			a.logf("apply layer: %q: dropping xattr %q: overlayfs would act on it", rel, name)
			continue
		}
		err := set(name, []byte(v))
		if err == unix.ENOTSUP || err == unix.EPERM {
			a.logf("apply layer: %q: skipping xattr %q: %v", rel, name, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("set xattr %q: %w", name, err)
		}
	}
	return nil
}

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			return true
		}
	}
	return false
}

// procPath names base in the open directory dirfd for the calls that have no
// *at form (lsetxattr). Only base is looked up, without following it.
func procPath(dirfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + base
}

// file writes a regular file: created anew (O_EXCL, never through an
// existing name), content streamed through the shared buffer, then owner,
// mode, xattrs and times on the open fd.
func (a *applier) file(tr *tar.Reader, hdr *tar.Header, rel, parent, base string) error {
	perm := uint32(hdr.Mode) & 0o7777
	fd := -1
	h, err := a.create(parent, base, func(h dirHandle) error {
		var err error
		fd, err = unix.Openat(h.fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	var n int64
	for n < hdr.Size {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		m, rerr := tr.Read(a.buf)
		if m > 0 {
			if err := writeAll(fd, a.buf[:m]); err != nil {
				return fmt.Errorf("write file: %w", err)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read file content: %w", rerr)
		}
	}
	if n != hdr.Size {
		return fmt.Errorf("read file content: %w", io.ErrUnexpectedEOF)
	}
	uid, gid, chown, err := a.owner(h, hdr)
	if err != nil {
		return err
	}
	if chown {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if a.needChmod(perm, chown) {
		if err := unix.Fchmod(fd, perm); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := a.xattrs(hdr, rel, func(name string, val []byte) error {
		return unix.Fsetxattr(fd, name, val, 0)
	}); err != nil {
		return err
	}
	ts := times(hdr)
	if err := futimens(fd, &ts); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	err = unix.Close(fd)
	fd = -1
	if err != nil {
		return fmt.Errorf("close file: %w", err)
	}
	a.stats.Files++
	a.stats.Bytes += n
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// directory creates or updates a directory. An existing directory is kept
// (its content merges) and takes the entry's metadata; anything else of the
// name is replaced. Times are set in finishDirs.
func (a *applier) directory(hdr *tar.Header, rel, parent, base string) error {
	perm := uint32(hdr.Mode) & 0o7777
	h, err := a.openDir(parent, true)
	if err != nil {
		return err
	}
	existed := false
	err = unix.Mkdirat(h.fd, base, perm&0o1777)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err = unix.Fstatat(h.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				existed = true
			} else if err = a.removeExisting(h, base); err == nil {
				err = unix.Mkdirat(h.fd, base, perm&0o1777)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	uid, gid, chown, err := a.owner(h, hdr)
	if err != nil {
		return err
	}
	chown = chown || existed
	// mkdir ignores setuid/setgid and inherits setgid from a setgid parent.
	chmod := existed || h.setgid || perm&(unix.S_ISUID|unix.S_ISGID) != 0 || a.needChmod(perm, chown)
	if chown || chmod || hasXattrs(hdr) {
		fd, err := unix.Openat(h.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory: %w", err)
		}
		err = a.setFdMeta(fd, hdr, rel, uid, gid, perm, chown, chmod)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	if c, ok := a.dirs[rel]; ok {
		c.setgid = perm&unix.S_ISGID != 0
		a.dirs[rel] = c
	}
	a.dirTimes[rel] = times(hdr)
	a.stats.Dirs++
	return nil
}

// rootDir applies a "." (or "/") directory entry's metadata to root itself.
func (a *applier) rootDir(hdr *tar.Header) error {
	uid, gid, err := a.mapIDs(hdr.Uid, hdr.Gid)
	if err != nil {
		return err
	}
	perm := uint32(hdr.Mode) & 0o7777
	if err := a.setFdMeta(a.root, hdr, ".", uid, gid, perm, true, true); err != nil {
		return err
	}
	a.rootSetgid = perm&unix.S_ISGID != 0
	a.dirTimes[""] = times(hdr)
	a.stats.Dirs++
	return nil
}

func (a *applier) setFdMeta(fd int, hdr *tar.Header, rel string, uid, gid int, perm uint32, chown, chmod bool) error {
	if chown {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if chmod {
		if err := unix.Fchmod(fd, perm); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	return a.xattrs(hdr, rel, func(name string, val []byte) error {
		return unix.Fsetxattr(fd, name, val, 0)
	})
}

// symlink creates a symlink with the target verbatim: it is only ever
// resolved inside root (by this package) or inside the container.
func (a *applier) symlink(hdr *tar.Header, rel, parent, base string) error {
	target := hdr.Linkname
	switch {
	case target == "":
		return fmt.Errorf("symlink with an empty target: %w", ErrUnsafe)
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("symlink target contains a NUL byte: %w", ErrUnsafe)
	case len(target) >= pathMax:
		return fmt.Errorf("symlink target of %d bytes is longer than PATH_MAX: %w", len(target), ErrUnsafe)
	}
	h, err := a.create(parent, base, func(h dirHandle) error {
		return unix.Symlinkat(target, h.fd, base)
	})
	if err != nil {
		return fmt.Errorf("create symlink: %w", err)
	}
	if err := a.pathMeta(h, hdr, rel, base, false); err != nil {
		return err
	}
	a.stats.Symlinks++
	return nil
}

// pathMeta sets owner, mode (unless symlink), xattrs and times of base in h
// without following it, for entries that cannot be opened (symlinks,
// devices, fifos).
func (a *applier) pathMeta(h dirHandle, hdr *tar.Header, rel, base string, chmodOK bool) error {
	uid, gid, chown, err := a.owner(h, hdr)
	if err != nil {
		return err
	}
	if chown {
		if err := unix.Fchownat(h.fd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	perm := uint32(hdr.Mode) & 0o7777
	if chmodOK && a.needChmod(perm, chown) {
		// fchmodat2 with AT_SYMLINK_NOFOLLOW (Linux 6.6): never follows.
		if err := unix.Fchmodat(h.fd, base, perm, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if hasXattrs(hdr) {
		p := procPath(h.fd, base)
		if err := a.xattrs(hdr, rel, func(name string, val []byte) error {
			return unix.Lsetxattr(p, name, val, 0)
		}); err != nil {
			return err
		}
	}
	ts := times(hdr)
	if err := unix.UtimesNanoAt(h.fd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// hardlink links base to an existing entry under root. The target is
// resolved inside root like any path; it is linked itself, never followed
// (a hardlink to a symlink links the symlink). Hardlinks carry no metadata
// of their own: they share their target's inode.
func (a *applier) hardlink(hdr *tar.Header, rel, parent, base string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "" {
		return fmt.Errorf("hardlink to the root directory: %w", ErrUnsafe)
	}
	if target == rel {
		return fmt.Errorf("hardlink to itself: %w", ErrUnsafe)
	}
	tparent, tbase := split(target)
	_, err = a.create(parent, base, func(h dirHandle) error {
		th, err := a.openDir(tparent, false)
		if err != nil {
			return err
		}
		return unix.Linkat(th.fd, tbase, h.fd, base, 0)
	})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, errNotDir) {
		return fmt.Errorf("hardlink target %q does not exist under root: %w", target, ErrUnsafe)
	}
	if err != nil {
		return fmt.Errorf("create hardlink to %q: %w", target, err)
	}
	a.stats.Hardlinks++
	return nil
}

// node creates a character or block device or a fifo.
func (a *applier) node(hdr *tar.Header, rel, parent, base string) error {
	mode := uint32(hdr.Mode) & 0o7777
	dev := 0
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	if hdr.Typeflag != tar.TypeFifo {
		if hdr.Devmajor < 0 || hdr.Devmajor > 0xfff || hdr.Devminor < 0 || hdr.Devminor > 0xfffff {
			return fmt.Errorf("device %d:%d out of range: %w", hdr.Devmajor, hdr.Devminor, ErrUnsafe)
		}
		dev = int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	}
	h, err := a.create(parent, base, func(h dirHandle) error {
		return unix.Mknodat(h.fd, base, mode, dev)
	})
	if err == unix.EPERM && hdr.Typeflag != tar.TypeFifo {
		a.logf("apply layer: skipping device node %q: mknod not permitted (no CAP_MKNOD)", rel)
		a.stats.Skipped++
		delete(a.created, rel)
		return nil
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := a.pathMeta(h, hdr, rel, base, true); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeFifo {
		a.stats.Fifos++
	} else {
		a.stats.Devices++
	}
	return nil
}

// whiteout handles a .wh.* entry in directory parent.
func (a *applier) whiteout(parent, base string) error {
	if base == opaqueMarker {
		return a.opaque(parent)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		// AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
		a.stats.Skipped++
		return nil
	}
	name := base[len(whiteoutPrefix):]
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("whiteout of %q: %w", name, ErrUnsafe)
	}
	target := join(parent, name)
	if _, ok := a.created[target]; ok {
		// OCI: a whiteout only hides lower layers.
		a.logf("apply layer: whiteout %q: keeping %q created by this layer", join(parent, base), target)
		a.stats.Skipped++
		return nil
	}
	if a.opts.Overlay {
		_, err := a.create(parent, name, func(h dirHandle) error {
			return unix.Mknodat(h.fd, name, unix.S_IFCHR, 0)
		})
		if err != nil {
			return fmt.Errorf("create overlay whiteout: %w", err)
		}
	} else {
		h, err := a.openDir(parent, false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, errNotDir) {
			a.stats.Whiteouts++ // nothing below to delete
			return nil
		}
		if err != nil {
			return err
		}
		a.stale = true
		if err := removeAllAt(h.fd, name); err != nil {
			return fmt.Errorf("whiteout: %w", err)
		}
	}
	a.stats.Whiteouts++
	return nil
}

// opaque handles .wh..wh..opq: the directory parent hides everything of the
// layers below.
func (a *applier) opaque(parent string) error {
	h, err := a.openDir(parent, true)
	if err != nil {
		return err
	}
	if a.opts.Overlay {
		if err := unix.Fsetxattr(h.fd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("mark opaque directory: %w", err)
		}
		a.stats.Opaques++
		return nil
	}
	names, err := readDirNames(h.fd)
	if err != nil {
		return fmt.Errorf("list opaque directory: %w", err)
	}
	for _, n := range names {
		if _, ok := a.created[join(parent, n)]; ok {
			continue
		}
		a.stale = true
		if err := removeAllAt(h.fd, n); err != nil {
			return fmt.Errorf("opaque directory: %w", err)
		}
	}
	a.stats.Opaques++
	return nil
}

// finishDirs sets the times of this layer's directories, now that nothing
// will be added to them. Paths are resolved afresh inside root; a directory
// replaced or deleted by a later entry is skipped.
func (a *applier) finishDirs() error {
	rels := make([]string, 0, len(a.dirTimes))
	for rel := range a.dirTimes {
		rels = append(rels, rel)
	}
	sort.Strings(rels) // siblings together: the directory cache hits
	a.stale = true
	for _, rel := range rels {
		a.flush()
		ts := a.dirTimes[rel]
		if rel == "" {
			if err := futimens(a.root, &ts); err != nil {
				return fmt.Errorf("set times of root: %w", err)
			}
			continue
		}
		parent, base := split(rel)
		h, err := a.openDir(parent, false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, errNotDir) {
			continue
		}
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(h.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if err := unix.UtimesNanoAt(h.fd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set times of %q: %w", rel, err)
		}
	}
	return nil
}
