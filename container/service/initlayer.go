package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/snapshot"
)

// The init layer is the read-only layer every container's rootfs gets
// right above its image's, as dockerd's "-init" layer: the mount points
// the runtime binds over, /etc/mtab, and /.dockerenv, by which programs
// tell that they run in a container. Below the writable layer, none of
// it shows in diff or commit (the runtime no longer has to create mount
// points there); export shows it, as dockerd's does. Its content is the
// same for every container, so one directory serves all those of one
// owner (root, or a remapping's root).

// initLayerEntries are dockerd's (daemon/initlayer), with its modes: what
// is not a directory or a link is an empty file of mode 0755.
var initLayerEntries = []struct{ path, kind string }{
	{"dev/pts", "dir"},
	{"dev/shm", "dir"},
	{"proc", "dir"},
	{"sys", "dir"},
	{".dockerenv", "file"},
	{"etc/resolv.conf", "file"},
	{"etc/hosts", "file"},
	{"etc/hostname", "file"},
	{"dev/console", "file"},
	{"etc/mtab", "link"},
}

// initLayerDir is where the init layer of rec lives: under the exec
// root, made again after a reboot, never changed once made (running
// containers' overlays have it as a lower layer). A remapped container
// gets one owned by its mapping's root, as dockerd's, which it shows as
// is (idmap.Layers leaves alone a layer its root owns).
func (s *Service) initLayerDir(hc *container.HostConfig) (dir string, uid, gid int) {
	dir = filepath.Join(s.opts.ExecRoot, "init-layer")
	if m, ok := s.mapping(hc); ok {
		uid, gid = m.Root()
		dir += "." + strconv.Itoa(uid) + "." + strconv.Itoa(gid)
	}
	return dir, uid, gid
}

// makeInitLayer makes the init layer at dir, owned by uid:gid, unless it
// is there. It is built aside and renamed into place, so that a crash
// never leaves half of one to be used.
func makeInitLayer(dir string, uid, gid int) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".init-layer-")
	if err != nil {
		return fmt.Errorf("init layer: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("init layer: %w", err)
	}
	for _, e := range initLayerEntries {
		p := filepath.Join(tmp, e.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("init layer: %w", err)
		}
		switch e.kind {
		case "dir":
			err = os.Mkdir(p, 0o755)
		case "file":
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755); err == nil {
				err = errors.Join(f.Chmod(0o755), f.Close()) // past the umask
			}
		case "link":
			err = os.Symlink("/proc/mounts", p)
		}
		if err != nil {
			return fmt.Errorf("init layer: %w", err)
		}
	}
	if uid != 0 || gid != 0 {
		err := filepath.WalkDir(tmp, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return fmt.Errorf("init layer: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Lstat(dir); serr == nil {
			return nil // another start made it meanwhile
		}
		return fmt.Errorf("init layer: %w", err)
	}
	return nil
}

// withInitLayer returns rec's mounts with its init layer (made if need
// be) as the topmost lower layer of its overlay. A rootfs without lower
// layers (an image of no layer) is a plain bind and stays as it is.
func (s *Service) withInitLayer(rec *store.Container, mounts []snapshot.Mount) ([]snapshot.Mount, error) {
	dir, uid, gid := s.initLayerDir(rec.HostConfig)
	out := slices.Clone(mounts)
	for i, m := range out {
		lowers, ok := m.Option("lowerdir")
		if m.Type != "overlay" || !ok {
			continue
		}
		if err := makeInitLayer(dir, uid, gid); err != nil {
			return nil, err
		}
		opts := slices.Clone(m.Options)
		for j, o := range opts {
			if strings.HasPrefix(o, "lowerdir=") {
				opts[j] = "lowerdir=" + dir + ":" + lowers
			}
		}
		out[i].Options = opts
	}
	return out, nil
}
