package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/store"
)

// withContainerFS is withRootfs as docker cp sees a container: with its
// volumes, binds and tmpfs mounts. A running container's filesystem is
// its own view (/proc/<pid>/root, every lookup still resolved inside
// it); a stopped one's volumes and binds are bound into the temporary
// rootfs mount for the time of the copy.
func (s *Service) withContainerFS(ctx context.Context, name string, fn func(rootfs string) (keep bool, err error)) (func(), error) {
	rec, err := s.store.Get(name)
	if err != nil {
		return nil, err
	}
	if len(rec.MountPoints) == 0 && len(rec.HostConfig.Tmpfs) == 0 {
		return s.withRootfs(ctx, name, fn)
	}
	var undo func()
	release, err := s.withRootfs(ctx, name, func(root string) (bool, error) {
		if root == filepath.Join(s.bundleDir(rec.ID), "rootfs") {
			cur, err := s.store.Get(rec.ID)
			if err != nil {
				return false, err
			}
			if cur.State.Running && cur.State.Pid > 0 {
				return fn(fmt.Sprintf("/proc/%d/root", cur.State.Pid))
			}
			return fn(root)
		}
		u, err := s.bindMountsInto(rec, root)
		if err != nil {
			return false, err
		}
		keep, err := fn(root)
		if !keep || err != nil {
			u()
			return false, err
		}
		undo = u
		return true, nil
	})
	if err != nil || undo == nil {
		return release, err
	}
	return func() { undo(); release() }, nil
}

// bindMountsInto binds rec's volumes and binds at their destinations in
// root (a stopped container's temporary rootfs), parents first, each
// destination resolved inside root. The returned func unmounts them.
func (s *Service) bindMountsInto(rec *store.Container, root string) (func(), error) {
	var done []string
	var vols []string
	undo := func() {
		for i := len(done) - 1; i >= 0; i-- {
			if err := unix.Unmount(done[i], unix.MNT_DETACH); err != nil {
				s.opts.Logf("container %s: unmount %s: %v", rec.ID, done[i], err)
			}
		}
		for _, v := range vols {
			s.opts.Volumes.Unmount(v, "cp-"+rec.ID)
		}
	}
	mps := slices.Clone(rec.MountPoints)
	sort.SliceStable(mps, func(i, j int) bool {
		return strings.Count(mps[i].Destination, "/") < strings.Count(mps[j].Destination, "/")
	})
	rootDir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer rootDir.Close()
	for _, m := range mps {
		src := m.Source
		switch m.Type {
		case mount.TypeVolume:
			if s.opts.Volumes == nil {
				undo()
				return nil, errNoVolumes
			}
			p, err := s.opts.Volumes.Mount(m.Name, "cp-"+rec.ID)
			if err != nil {
				undo()
				return nil, err
			}
			vols, src = append(vols, m.Name), p
		case mount.TypeBind:
		default:
			continue // a tmpfs of a stopped container holds nothing
		}
		if err := bindInto(rootDir, src, m.Destination, m.RW, !m.NonRecursive); err != nil {
			undo()
			return nil, fmt.Errorf("container %s: mount %s for a copy: %w", rec.ID, m.Destination, err)
		}
		// Where it landed (the resolved path) is what to unmount.
		p, err := landedAt(rootDir, m.Destination)
		if err != nil {
			undo()
			return nil, err
		}
		done = append(done, p)
	}
	return undo, nil
}

// bindInto binds src onto dest inside the directory rootDir, dest
// resolved (symlinks included) as if rootDir were /.
func bindInto(rootDir *os.File, src, dest string, rw, recursive bool) error {
	s, err := os.OpenFile(src, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	fi, err := s.Stat()
	if err != nil {
		return err
	}
	var target *os.File
	if fi.IsDir() {
		target, err = pathrs.MkdirAllHandle(rootDir, dest, 0o755)
	} else {
		target, err = pathrs.OpenatInRoot(rootDir, dest)
	}
	if err != nil {
		return err
	}
	defer target.Close()
	flags := uintptr(unix.MS_BIND)
	if recursive {
		flags |= unix.MS_REC
	}
	tp := "/proc/self/fd/" + strconv.Itoa(int(target.Fd()))
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(int(s.Fd())), tp, "", flags, ""); err != nil {
		return err
	}
	if !rw {
		// The handle names the directory under the fresh mount: reopen
		// dest to reach the mount itself.
		h, err := pathrs.OpenatInRoot(rootDir, dest)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := unix.Mount("", "/proc/self/fd/"+strconv.Itoa(int(h.Fd())), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return err
		}
	}
	return nil
}

// landedAt is the host path of dest resolved inside rootDir.
func landedAt(rootDir *os.File, dest string) (string, error) {
	h, err := pathrs.OpenatInRoot(rootDir, dest)
	if err != nil {
		return "", err
	}
	defer h.Close()
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(int(h.Fd())))
}
