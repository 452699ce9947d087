package apply

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// copyBufferSize is the chunk in which file content moves from the tar
// stream to disk; one buffer serves the whole layer.
const copyBufferSize = 256 << 10

// maxCachedDirs bounds the cache of open parent directories.
const maxCachedDirs = 64

// applier is the state of one Apply call.
type applier struct {
	ctx  context.Context
	opts Options
	root int // O_RDONLY|O_DIRECTORY fd of root

	maxEntries, maxFileSize, maxTotalSize int64
	total                                 int64 // sum of header sizes so far

	// dirs caches open parent directories by relative path. Every cached
	// fd was obtained by resolution inside root. When an entry that could be
	// a path component (a directory or a symlink) is removed, stale is set
	// and the cache is emptied before the next entry, so a cached path never
	// outlives what it resolved through, and a handle stays open for the
	// whole entry that asked for it.
	dirs  map[string]dirHandle
	stale bool
	// created holds every path this layer created, so whiteouts and opaque
	// markers spare them (they only hide lower layers).
	created map[string]struct{}
	// dirTimes holds the times of the directories of this layer, applied
	// once all entries are in.
	dirTimes map[string][2]unix.Timespec

	buf        []byte
	umask      uint32 // process umask, or 0o777 when unknown (always chmod)
	euid, egid int
	rootUID    int // owner of implicit directories (mapped root)
	rootGID    int
	rootSetgid bool
	stats      Stats
}

// dirHandle is an open directory inside root.
type dirHandle struct {
	fd     int
	setgid bool // new entries inherit the directory's group
}

func capOr(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

func newApplier(ctx context.Context, root string, opts Options) (*applier, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("apply layer: open root %q: %w", root, err)
	}
	a := &applier{
		ctx:          ctx,
		opts:         opts,
		root:         fd,
		maxEntries:   capOr(opts.MaxEntries, DefaultMaxEntries),
		maxFileSize:  capOr(opts.MaxFileSize, DefaultMaxFileSize),
		maxTotalSize: capOr(opts.MaxTotalSize, DefaultMaxTotalSize),
		dirs:         make(map[string]dirHandle),
		created:      make(map[string]struct{}),
		dirTimes:     make(map[string][2]unix.Timespec),
		buf:          make([]byte, copyBufferSize),
		umask:        readUmask(),
		euid:         unix.Geteuid(),
		egid:         unix.Getegid(),
	}
	if a.rootUID, a.rootGID, err = a.mapIDs(0, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("apply layer: map root ids: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("apply layer: stat root %q: %w", root, err)
	}
	a.rootSetgid = st.Mode&unix.S_ISGID != 0
	return a, nil
}

func (a *applier) close() {
	a.invalidate()
	unix.Close(a.root)
}

// readUmask reads the process umask without changing it (umask(2) can only
// read by writing). Unknown means every mode gets an explicit chmod.
func readUmask() uint32 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0o777
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
}

func (a *applier) mapIDs(uid, gid int) (int, int, error) {
	if a.opts.IDMap != nil {
		var err error
		if uid, gid, err = a.opts.IDMap(uid, gid); err != nil {
			return 0, 0, err
		}
	}
	// -1 would mean "leave unchanged" to chown; 2^32-1 is the same value.
	if uid < 0 || gid < 0 || uid > 0xfffffffe || gid > 0xfffffffe {
		return 0, 0, fmt.Errorf("uid %d gid %d out of range: %w", uid, gid, ErrUnsafe)
	}
	return uid, gid, nil
}

// flush empties the directory cache if it is stale or full. It is called
// between entries, never while an entry holds a handle.
func (a *applier) flush() {
	if a.stale || len(a.dirs) >= maxCachedDirs {
		a.invalidate()
		a.stale = false
	}
}

// invalidate closes every cached directory.
func (a *applier) invalidate() {
	for k, h := range a.dirs {
		unix.Close(h.fd)
		delete(a.dirs, k)
	}
}

// openInRoot opens rel (a clean relative path) as a directory, resolving
// every component inside root: ".." stops at root and absolute symlinks
// restart at root. The kernel does the resolution, so no sequence of entries
// can make it leave root.
func (a *applier) openInRoot(rel string) (int, error) {
	for {
		fd, err := unix.Openat2(a.root, rel, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EAGAIN || err == unix.EINTR {
			continue // a rename raced the lookup (not ours: retry)
		}
		return fd, err
	}
}

// dir returns the directory rel inside root, creating missing directories
// (mode 0755, owned by the mapped root) when create is set.
func (a *applier) openDir(rel string, create bool) (dirHandle, error) {
	if rel == "" {
		return dirHandle{fd: a.root, setgid: a.rootSetgid}, nil
	}
	if h, ok := a.dirs[rel]; ok {
		return h, nil
	}
	fd, err := a.openInRoot(rel)
	if err == unix.ENOENT && create {
		parent, base := split(rel)
		var ph dirHandle
		if ph, err = a.openDir(parent, true); err != nil {
			return dirHandle{}, err
		}
		err = unix.Mkdirat(ph.fd, base, 0o755)
		if err == unix.EEXIST {
			// Something that resolves to nothing: a dangling symlink.
			return dirHandle{}, fmt.Errorf("parent %q: %w", rel, errNotDir)
		}
		if err != nil {
			return dirHandle{}, fmt.Errorf("create parent %q: %w", rel, err)
		}
		if err := a.ownImplicit(ph, base); err != nil {
			return dirHandle{}, err
		}
		fd, err = a.openInRoot(rel)
	}
	if err == unix.ENOTDIR {
		return dirHandle{}, fmt.Errorf("parent %q: %w", rel, errNotDir)
	}
	if err != nil {
		return dirHandle{}, fmt.Errorf("open parent %q: %w", rel, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return dirHandle{}, fmt.Errorf("stat parent %q: %w", rel, err)
	}
	h := dirHandle{fd: fd, setgid: st.Mode&unix.S_ISGID != 0}
	a.dirs[rel] = h
	return h, nil
}

// ownImplicit gives an implicitly created directory the owner Docker gives
// it: the (mapped) root user, even inside a setgid directory.
func (a *applier) ownImplicit(ph dirHandle, base string) error {
	if a.rootUID == a.euid && a.rootGID == a.egid && !ph.setgid {
		return nil
	}
	if err := unix.Fchownat(ph.fd, base, a.rootUID, a.rootGID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown implicit directory %q: %w", base, err)
	}
	return nil
}

// removeExisting removes the entry base of h so a new entry can take its
// name: recursively for a directory. It empties the directory cache when the
// removed entry could have been a path component.
func (a *applier) removeExisting(h dirHandle, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(h.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return fmt.Errorf("stat existing entry: %w", err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		a.stale = true
		return removeAllAt(h.fd, base)
	case unix.S_IFLNK:
		a.stale = true
	}
	if err := unix.Unlinkat(h.fd, base, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove existing entry: %w", err)
	}
	return nil
}

// removeAllAt removes name in dirfd and, for a directory, all it contains.
// It never follows a symlink: each level is opened with O_NOFOLLOW relative
// to the one above.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q to remove it: %w", name, err)
	}
	names, err := readDirNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove directory %q: %w", name, err)
	}
	return nil
}

// readDirNames lists a directory through a private fd (the caller's fd and
// its offset are left alone).
func readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}
