package service

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// joinedNamespaces resolves --pid and --ipc container:<id> at start, with
// dockerd's rules and messages: the other container must be running (and
// not restarting), and its IPC must be shareable (or the host's) to be
// joined. It returns the namespace paths to join and, for IPC, the /dev/shm
// to bind-mount.
func (s *Service) joinedNamespaces(rec *store.Container) (map[specs.LinuxNamespaceType]string, string, error) {
	hc := rec.HostConfig
	paths := map[specs.LinuxNamespaceType]string{}
	shm := ""
	if name := hc.PidMode.Container(); hc.PidMode.IsContainer() {
		donor, err := s.donor(name, "PID")
		if err != nil {
			return nil, "", err
		}
		paths[specs.PIDNamespace] = fmt.Sprintf("/proc/%d/ns/pid", donor.State.Pid)
	}
	if name := hc.IpcMode.Container(); hc.IpcMode.IsContainer() {
		donor, err := s.donor(name, "IPC")
		if err != nil {
			return nil, "", err
		}
		switch donor.HostConfig.IpcMode {
		case container.IPCModeShareable:
			shm = s.shmDir(donor.ID)
		case container.IPCModeHost:
			shm = "/dev/shm"
		default:
			return nil, "", fmt.Errorf("can't join IPC of container %s: non-shareable IPC (hint: use IpcMode:shareable for the donor container): %w", donor.ID, errdefs.ErrInvalidArgument)
		}
		paths[specs.IPCNamespace] = fmt.Sprintf("/proc/%d/ns/ipc", donor.State.Pid)
	}
	if hc.IpcMode.IsShareable() {
		var err error
		if shm, err = s.mountShm(rec); err != nil {
			return nil, "", err
		}
	}
	return paths, shm, nil
}

// shmDir is where a shareable IPC container's /dev/shm tmpfs is mounted
// on the host, for the containers that join it to bind-mount too.
func (s *Service) shmDir(id string) string { return filepath.Join(s.bundleDir(id), "shm") }

// mountShm mounts the tmpfs of a shareable IPC container (--ipc
// shareable) on the host, sized by --shm-size, as dockerd does.
func (s *Service) mountShm(rec *store.Container) (string, error) {
	dir := s.shmDir(rec.ID)
	unmountShm(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	size := rec.HostConfig.ShmSize
	if size <= 0 {
		size = spec.DefaultShmSize
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", size)); err != nil {
		return "", fmt.Errorf("container %s: mount its shareable /dev/shm at %s: %w", rec.ID, dir, err)
	}
	return dir, nil
}

// unmountShm undoes mountShm (nothing when it is not mounted).
func unmountShm(dir string) {
	for unix.Unmount(dir, unix.MNT_DETACH) == nil {
	}
}

// donor is the running container name whose namespace of kind is joined.
func (s *Service) donor(name, kind string) (*store.Container, error) {
	d, err := s.store.Get(name)
	if err != nil {
		if kind == "PID" {
			return nil, err // dockerd's plain "No such container"
		}
		return nil, fmt.Errorf("can't join %s of container %s: %w", kind, name, err)
	}
	switch {
	case d.State.Restarting:
		return nil, fmt.Errorf("cannot join %s of container %s: Container %s is restarting, wait until the container is running: %w", kind, name, d.ID, errdefs.ErrConflict)
	case !d.State.Running || d.State.Pid <= 0:
		return nil, fmt.Errorf("cannot join %s of a non running container: %s: %w", kind, name, errdefs.ErrConflict)
	}
	return d, nil
}
