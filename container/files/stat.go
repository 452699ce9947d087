package files

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Stat is `HEAD /containers/{id}/archive`: the stat of path in the
// container whose root filesystem is rootfs, as dockerd reports it. The
// final component is not followed (a symlink reports itself, with
// LinkTarget the path it fully resolves to in the container) unless path
// ends in "/" or "/.". A missing path is errdefs.ErrNotFound; the caller
// formats dockerd's "Could not find the file %s in container %s".
func Stat(rootfs, p string) (container.PathStat, error) {
	r, err := openRoot(rootfs)
	if err != nil {
		return container.PathStat{}, err
	}
	defer r.close()
	abs := absPath(p)
	t, err := r.resolve(abs)
	if err != nil {
		return container.PathStat{}, err
	}
	defer t.close()
	return pathStat(rootfs, abs, &t.st)
}

// pathStat builds dockerd's ContainerPathStat for the resolved abs.
func pathStat(rootfs, abs string, st *unix.Stat_t) (container.PathStat, error) {
	ps := container.PathStat{
		Name:  baseName(abs),
		Size:  st.Size,
		Mode:  fileMode(st.Mode),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		// The symlink resolved as the container would: a lexical walk
		// that never leaves rootfs (the target need not exist).
		host, err := securejoin.SecureJoin(rootfs, strings.TrimSuffix(abs, "/"))
		if err != nil {
			return container.PathStat{}, fmt.Errorf("resolve symlink %s: %w", abs, err)
		}
		rel, err := filepath.Rel(filepath.Clean(rootfs), host)
		if err != nil {
			return container.PathStat{}, fmt.Errorf("resolve symlink %s: %w", abs, err)
		}
		ps.LinkTarget = path.Join("/", filepath.ToSlash(rel))
	}
	return ps, nil
}

// baseName is dockerd's name of a path: its last element, "/" for the
// root and "." for "dir/.".
func baseName(abs string) string {
	if abs == "/" {
		return "/"
	}
	return path.Base(abs)
}

// fileMode converts a stat mode into Go's fs.FileMode bits, which is how
// dockerd encodes PathStat.Mode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
