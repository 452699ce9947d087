package idmap

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/snapshot"
)

// Layers shows image layers to the containers of one mapping.
type Layers struct {
	Mapping Mapping
	// CacheDir holds the chown'd copies of layers made where idmapped
	// mounts are unavailable (<data-root>/userns/<uid>.<gid>).
	CacheDir string
	// NoIDMap forces the chown'd copies even where idmapped mounts work.
	NoIDMap bool

	mu     sync.Mutex
	copies map[string]*sync.Mutex // per layer: one copy at a time
}

// MountRootfs mounts a container snapshot's mounts on target (as
// snapshot.MountAll does) so that the container's root owns what the
// image's root owns: each lower layer is an idmapped bind of the shared
// layer, attached under scratch only until the overlay holds it (overlayfs
// keeps private clones of its layers), or else a chown'd copy cached in
// CacheDir (a layer the mapping's root owns already, as a remapped
// container's init layer, is shown as it is); the writable upper dir
// belongs to the mapping's root.
func (l *Layers) MountRootfs(mounts []snapshot.Mount, target, scratch string) error {
	ruid, rgid := l.Mapping.Root()
	var attached []string
	defer func() {
		for _, p := range attached {
			_ = unix.Unmount(p, unix.MNT_DETACH)
			_ = os.Remove(p)
		}
		_ = os.Remove(scratch)
	}()
	shifted := make([]snapshot.Mount, len(mounts))
	for i, m := range mounts {
		m.Options = append([]string(nil), m.Options...)
		switch {
		case m.Type == "overlay":
			for j, o := range m.Options {
				k, v, _ := strings.Cut(o, "=")
				switch k {
				case "upperdir":
					if err := os.Lchown(v, ruid, rgid); err != nil {
						return fmt.Errorf("give the upper dir to the remapped root: %w", err)
					}
				case "lowerdir":
					lowers := strings.Split(v, ":")
					for n, lower := range lowers {
						if ownedBy(lower, ruid, rgid) {
							continue // made for this mapping (the init layer)
						}
						p, err := l.lower(lower, scratch, len(attached), &attached)
						if err != nil {
							return err
						}
						lowers[n] = p
					}
					m.Options[j] = "lowerdir=" + strings.Join(lowers, ":")
				}
			}
		case !m.ReadOnly():
			// A writable bind: the container's own tree (an image with no
			// layers).
			if err := os.Lchown(m.Source, ruid, rgid); err != nil {
				return fmt.Errorf("give the rootfs to the remapped root: %w", err)
			}
		default:
			return fmt.Errorf("read-only %s rootfs mount of %q: not supported with user namespace remapping", m.Type, m.Source)
		}
		shifted[i] = m
	}
	return snapshot.MountAll(shifted, target)
}

// ownedBy reports whether dir belongs to uid:gid.
func ownedBy(dir string, uid, gid int) bool {
	var st unix.Stat_t
	return unix.Stat(dir, &st) == nil && int(st.Uid) == uid && int(st.Gid) == gid
}

// lower returns the directory that shows the layer dir to the remapped
// container.
func (l *Layers) lower(dir, scratch string, n int, attached *[]string) (string, error) {
	if !l.NoIDMap && Supported(dir, l.Mapping) {
		if err := os.MkdirAll(scratch, 0o700); err != nil {
			return "", err
		}
		p := filepath.Join(scratch, strconv.Itoa(n))
		if err := os.Mkdir(p, 0o700); err != nil && !os.IsExist(err) {
			return "", err
		}
		if err := BindIDMapped(dir, p, l.Mapping, true); err != nil {
			os.Remove(p)
			return "", err
		}
		*attached = append(*attached, p)
		return p, nil
	}
	return l.copyOf(dir)
}

// copyOf returns the cached chown'd copy of the layer dir, making it the
// first time. Layers never change once committed, so a copy stays valid
// for as long as the layer's snapshot id names it.
func (l *Layers) copyOf(dir string) (string, error) {
	// Snapshot layers are <root>/snapshots/<id>/fs: the id names the copy,
	// with the layer directory's inode and change time, since a removed
	// snapshot's id can be given again to another layer.
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	id := filepath.Base(filepath.Dir(dir))
	if filepath.Base(dir) != "fs" || id == "." || id == "/" {
		id = strings.ReplaceAll(strings.Trim(dir, "/"), "/", "_")
	}
	key := fmt.Sprintf("%s.%d.%d", id, st.Ino, st.Ctim.Nano())
	dst := filepath.Join(l.CacheDir, key)
	l.mu.Lock()
	if l.copies == nil {
		l.copies = map[string]*sync.Mutex{}
	}
	mu := l.copies[key]
	if mu == nil {
		mu = &sync.Mutex{}
		l.copies[key] = mu
	}
	l.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Lstat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(l.CacheDir, 0o711); err != nil {
		return "", err
	}
	if err := ShiftedCopy(dir, dst, l.Mapping); err != nil {
		return "", err
	}
	return dst, nil
}

// Prune removes the cached copies of layers that are gone: those whose
// <id> directory under snapshots no longer holds the same fs directory
// (by inode and change time). berthd calls it at start.
func (l *Layers) Prune(snapshots string) error {
	ents, err := os.ReadDir(l.CacheDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".tmp")
		id, _, _ := strings.Cut(name, ".")
		var st unix.Stat_t
		if name == e.Name() && unix.Stat(filepath.Join(snapshots, id, "fs"), &st) == nil &&
			name == fmt.Sprintf("%s.%d.%d", id, st.Ino, st.Ctim.Nano()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(l.CacheDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
