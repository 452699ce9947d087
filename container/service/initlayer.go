package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/snapshot"
)

// The init layer is the read-only layer every container's rootfs gets
// right above its image's, as dockerd's "-init" layer: the mount points
// the runtime binds over, /etc/mtab, and /.dockerenv, by which programs
// tell that they run in a container. Below the writable layer, none of
// it shows in diff or commit (the runtime no longer has to create mount
// points there); export shows it, as dockerd's does. Its content is the
// same for every container, so one directory serves them all.

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

// initLayerDir is where the init layer lives: under the exec root, made
// again after a reboot, never changed once made (running containers'
// overlays have it as a lower layer).
func (s *Service) initLayerDir() string { return filepath.Join(s.opts.ExecRoot, "init-layer") }

// makeInitLayer makes the init layer at dir unless it is there. It is
// built aside and renamed into place, so that a crash never leaves half
// of one to be used.
func makeInitLayer(dir string) error {
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
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("init layer: %w", err)
	}
	return nil
}

// withInitLayer returns a container's mounts with the init layer as the
// topmost lower layer of its overlay. A rootfs without lower layers (an
// image of no layer) is a plain bind and stays as it is.
func (s *Service) withInitLayer(mounts []snapshot.Mount) []snapshot.Mount {
	out := slices.Clone(mounts)
	for i, m := range out {
		lowers, ok := m.Option("lowerdir")
		if m.Type != "overlay" || !ok {
			continue
		}
		opts := slices.Clone(m.Options)
		for j, o := range opts {
			if strings.HasPrefix(o, "lowerdir=") {
				opts[j] = "lowerdir=" + s.initLayerDir() + ":" + lowers
			}
		}
		out[i].Options = opts
	}
	return out
}
