package files

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/snapshot"
)

const (
	opaqueXattr     = "trusted.overlay.opaque"
	capabilityXattr = "security.capability"
)

// MountChanges is Changes for a container snapshot's mounts (as
// image/service ContainerMounts returns them): the upper and lower
// directories of its overlay mount, or, for a bind mount (a snapshot
// without parent), the whole tree as additions.
func MountChanges(mounts []snapshot.Mount) ([]container.FilesystemChange, error) {
	if len(mounts) != 1 {
		return nil, fmt.Errorf("diff of %d mounts: only one overlay or bind mount is supported", len(mounts))
	}
	m := mounts[0]
	switch m.Type {
	case "overlay":
		upper, ok := m.Option("upperdir")
		if !ok {
			return nil, errors.New("diff: the overlay mount has no upper directory")
		}
		var lowers []string
		if l, ok := m.Option("lowerdir"); ok {
			lowers = filepath.SplitList(l)
		}
		return Changes(upper, lowers)
	case "bind":
		return Changes(m.Source, nil)
	}
	return nil, fmt.Errorf("diff of a %s mount: only overlay and bind mounts are supported", m.Type)
}

// Changes is `docker diff`: how the container's filesystem differs from
// its image, from the container's overlay upper directory upperDir and
// the image's layers lowerDirs (top first, as in overlay's lowerdir).
//
// The result is what dockerd 20.10 reports, which compares the two
// merged trees: an entry that the image lacks is added (A), and so is
// everything under an added directory; an entry whose type, mode, owner,
// device number or capability xattr differ, or for a non-directory whose
// size or mtime differ (to the second, if either side lacks nanoseconds),
// is changed (C); an entry of the image that is gone (an overlay whiteout,
// or hidden by an opaque directory) is deleted (D), but not what was
// under it. A directory with any change below it is changed itself; the
// root never appears. Entries come in path order, a directory before what
// is below it, deletions of a directory after its other entries.
func Changes(upperDir string, lowerDirs []string) ([]container.FilesystemChange, error) {
	fd, err := unix.Open(upperDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("diff: open upper directory %q: %w", upperDir, err)
	}
	defer unix.Close(fd)
	c := &changer{}
	if err := c.dir(fd, "", lowerDirs, false); err != nil {
		return nil, fmt.Errorf("diff of %q: %w", upperDir, err)
	}
	return c.out, nil
}

type changer struct {
	out []container.FilesystemChange
}

func (c *changer) add(kind container.ChangeType, p string) {
	c.out = append(c.out, container.FilesystemChange{Kind: kind, Path: p})
}

// lowerEntry is a name as the image shows it: its lstat in the topmost
// layer that has it, and the layer directories that make it up when it is
// a directory.
type lowerEntry struct {
	st     unix.Stat_t
	path   string   // host path in the topmost layer
	layers []string // for a directory: the layers whose copies merge
}

// lookupLower finds name in the directory rel that the layers (top first)
// make up, honouring whiteouts and opaque directories of higher layers.
func lookupLower(layers []string, rel, name string) *lowerEntry {
	var found *lowerEntry
	for _, l := range layers {
		p := filepath.Join(l, rel, name)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			continue
		}
		if isWhiteout(&st) {
			break // deleted in this layer: nothing below counts
		}
		if found == nil {
			found = &lowerEntry{st: st, path: p}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || found.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			break // a non-directory hides whatever is below it
		}
		found.layers = append(found.layers, l)
		if v, _ := getxattr(p, opaqueXattr); string(v) == "y" {
			break
		}
	}
	return found
}

// containerPath is the container's absolute path of name in the
// directory rel (relative to the root, "" for the root).
func containerPath(rel, name string) string {
	if rel == "" {
		return "/" + name
	}
	return "/" + rel + "/" + name
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// dir reports the changes below the upper directory fd (the container
// path rel, "" for the root). oldLayers are the layers that make up the
// image's directory at rel (nil when the image has none); hidden means
// the container's directory shows only what the upper directory holds (an
// opaque directory, or one below it).
func (c *changer) dir(fd int, rel string, oldLayers []string, hidden bool) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	sort.Strings(names)
	if v, _ := fgetxattr(fd, opaqueXattr); string(v) == "y" {
		hidden = true
	}
	present := map[string]bool{}
	var deleted []string
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return err
		}
		p := containerPath(rel, name)
		old := lookupLower(oldLayers, rel, name)
		if isWhiteout(&st) {
			if old != nil {
				deleted = append(deleted, p)
			}
			continue
		}
		present[name] = true
		if err := c.entry(fd, name, p, &st, old, hidden); err != nil {
			return err
		}
	}
	if hidden {
		// The image's entries the upper directory does not hold are gone.
		seen := map[string]bool{}
		for _, l := range oldLayers {
			ents, _ := readNames(filepath.Join(l, rel))
			for _, n := range ents {
				if present[n] || seen[n] {
					continue
				}
				seen[n] = true
				if lookupLower(oldLayers, rel, n) != nil {
					deleted = append(deleted, containerPath(rel, n))
				}
			}
		}
	}
	sort.Strings(deleted)
	for _, p := range deleted {
		c.add(container.ChangeDelete, p)
	}
	return nil
}

// entry reports the upper entry name of dirfd (container path p, lstat
// st), whose image counterpart is old (nil when the image lacks it).
func (c *changer) entry(dirfd int, name, p string, st *unix.Stat_t, old *lowerEntry, hidden bool) error {
	mark := len(c.out)
	switch {
	case old == nil:
		c.add(container.ChangeAdd, p)
	case changed(dirfd, name, st, old):
		c.add(container.ChangeModify, p)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT || err == unix.ELOOP || err == unix.ENOTDIR {
			return nil // replaced while we walked
		}
		return err
	}
	defer unix.Close(fd)
	var oldLayers []string
	if old != nil && old.st.Mode&unix.S_IFMT == unix.S_IFDIR {
		oldLayers = old.layers
	}
	if err := c.dir(fd, p[1:], oldLayers, hidden); err != nil {
		return err
	}
	// Changes below a directory not itself reported make it changed,
	// listed before them.
	if len(c.out) > mark && c.out[mark].Path != p {
		c.out = append(c.out, container.FilesystemChange{})
		copy(c.out[mark+1:], c.out[mark:])
		c.out[mark] = container.FilesystemChange{Kind: container.ChangeModify, Path: p}
	}
	return nil
}

// changed is dockerd's test of whether an entry present on both sides
// changed.
func changed(dirfd int, name string, st *unix.Stat_t, lower *lowerEntry) bool {
	o := &lower.st
	if st.Mode != o.Mode || st.Uid != o.Uid || st.Gid != o.Gid || st.Rdev != o.Rdev {
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if !sameTime(st.Mtim, o.Mtim) || st.Size != o.Size {
			return true
		}
	}
	newCap, _ := lgetxattrAt(dirfd, name, capabilityXattr)
	oldCap, _ := getxattr(lower.path, capabilityXattr)
	return !bytes.Equal(newCap, oldCap)
}

// sameTime compares times the way dockerd does: tar drops nanoseconds, so
// equal seconds with either side lacking nanoseconds is the same time.
func sameTime(a, b unix.Timespec) bool {
	return a.Sec == b.Sec && (a.Nsec == b.Nsec || a.Nsec == 0 || b.Nsec == 0)
}

func readNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readDirNames(fd)
}

// getxattr reads one xattr of a path without following a final symlink
// (nil when absent).
func getxattr(p, name string) ([]byte, error) {
	return readXattr(func(buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
}

func fgetxattr(fd int, name string) ([]byte, error) {
	return readXattr(func(buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
}

// lgetxattrAt reads an xattr of name in dirfd without following it, by
// its /proc/self/fd path (there is no getxattrat before Linux 6.13).
func lgetxattrAt(dirfd int, name, attr string) ([]byte, error) {
	return getxattr(fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name), attr)
}

func readXattr(get func([]byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := get(buf)
		switch {
		case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case errors.Is(err, unix.ERANGE):
			size, err := get(nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size)
			continue
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}
