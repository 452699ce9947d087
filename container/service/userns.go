package service

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/idmap"
	"github.com/berth-dev/berth/network/netns"
	"github.com/berth-dev/berth/snapshot"
)

// mapping is the id mapping of rec's user namespace: the daemon's under
// --userns-remap, none with --userns=host or without remapping.
func (s *Service) mapping(hc *container.HostConfig) (idmap.Mapping, bool) {
	if s.opts.Userns == nil || hc.UsernsMode.IsHost() {
		return idmap.Mapping{}, false
	}
	return s.opts.Userns.Mapping, true
}

// validateUserns refuses what cannot work with remapping on: a
// privileged container must opt out with --userns=host (dockerd's rule
// and message), and so must one sharing the host's PID namespace, whose
// /proc a user namespace may not mount.
func (s *Service) validateUserns(hc *container.HostConfig) error {
	if _, ok := s.mapping(hc); !ok {
		return nil
	}
	if hc.Privileged {
		return fmt.Errorf("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode: %w", errdefs.ErrInvalidArgument)
	}
	if hc.PidMode.IsHost() {
		return fmt.Errorf("cannot share the host PID namespace when user namespaces are enabled (add --userns=host): %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// mountRootfs mounts the container's snapshot on rootfs: as is, or for a
// remapped container with its layers shown through the mapping (see
// idmap.Layers; scratch is a directory it may use meanwhile).
func (s *Service) mountRootfs(rec *store.Container, mounts []snapshot.Mount, rootfs, scratch string) error {
	if _, ok := s.mapping(rec.HostConfig); !ok {
		return snapshot.MountAll(mounts, rootfs)
	}
	return s.opts.Userns.MountRootfs(mounts, rootfs, scratch)
}

// openDirsToRemapped opens the directories the runtime crosses from
// inside a remapped container's user namespace (its bundle, its record
// dir with hosts and resolv.conf) to the mapping's root group.
func (s *Service) openDirsToRemapped(rec *store.Container) error {
	m, ok := s.mapping(rec.HostConfig)
	if !ok {
		return nil
	}
	_, gid := m.Root()
	for _, dir := range []string{s.bundleDir(rec.ID), s.store.Dir(rec.ID)} {
		if err := os.Chown(dir, 0, gid); err != nil {
			return fmt.Errorf("open %s to the remapped root: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o710); err != nil {
			return fmt.Errorf("open %s to the remapped root: %w", dir, err)
		}
	}
	return nil
}

// specMappings are the OCI spec's uid and gid mappings for rec (none
// without a user namespace of its own).
func (s *Service) specMappings(rec *store.Container) (uids, gids []specs.LinuxIDMapping) {
	m, ok := s.mapping(rec.HostConfig)
	if !ok {
		return nil, nil
	}
	return []specs.LinuxIDMapping{{ContainerID: m.UID.ContainerID, HostID: m.UID.HostID, Size: m.UID.Size}},
		[]specs.LinuxIDMapping{{ContainerID: m.GID.ContainerID, HostID: m.GID.HostID, Size: m.GID.Size}}
}

// openToRemappedRoot lets a remapped container's runtime cross the
// directories holding every container's bundle and record (each container's
// own is opened to its group only, at start), as dockerd opens its root.
func openToRemappedRoot(opts Options) error {
	if opts.Userns == nil {
		return nil
	}
	for _, dir := range []string{opts.Root, filepath.Join(opts.ExecRoot, "containers")} {
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
	}
	return nil
}

// imageOwner translates the owners of a remapped container's files back
// to the image's (nil for a container with the host's ids), so that what
// its root made is uid 0 in a layer, not the range's root.
func (s *Service) imageOwner(rec *store.Container) func(uid, gid int) (int, int) {
	m, ok := s.mapping(rec.HostConfig)
	if !ok {
		return nil
	}
	return m.ContainerIDs
}

// remapNetSysctls writes the net.* sysctls of a remapped container whose
// network namespace berthd made (so the init user namespace owns it and
// the container's root may not write them) from berthd, into that
// namespace, and takes them out of the spec. dockerd avoids the problem
// by letting runc make the namespace; ours exists before the container.
func (s *Service) remapNetSysctls(rec *store.Container, sp *specs.Spec, netnsPath string) error {
	if _, ok := s.mapping(rec.HostConfig); !ok || netnsPath == "" || sp.Linux == nil {
		return nil
	}
	net := map[string]string{}
	for k, v := range sp.Linux.Sysctl {
		if strings.HasPrefix(k, "net.") {
			net[k] = v
			delete(sp.Linux.Sysctl, k)
		}
	}
	if len(net) == 0 {
		return nil
	}
	return netns.Do(netnsPath, func() error {
		for k, v := range net {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
		}
		return nil
	})
}

// toImageOwners passes a tar of a remapped container's files through
// imageOwner (docker cp out of the container).
func (s *Service) toImageOwners(rec *store.Container, rc io.ReadCloser) io.ReadCloser {
	owner := s.imageOwner(rec)
	if owner == nil {
		return rc
	}
	pr, pw := io.Pipe()
	go func() {
		_, _, err := idmap.ShiftTar(pw, rc, owner)
		pw.CloseWithError(err)
	}()
	return &shiftedTar{PipeReader: pr, src: rc}
}

// shiftedTar closes the source tar with the shifted stream.
type shiftedTar struct {
	*io.PipeReader
	src io.Closer
}

func (t *shiftedTar) Close() error {
	t.PipeReader.Close()
	return t.src.Close()
}

// joinedUserns is the user namespace a remapped container joins: that of
// the remapped container whose PID or IPC namespace it joins (those
// namespaces belong to it), as dockerd does; "" for a user namespace of
// its own.
func (s *Service) joinedUserns(rec *store.Container, paths map[specs.LinuxNamespaceType]string) string {
	if _, ok := s.mapping(rec.HostConfig); !ok {
		return ""
	}
	hc := rec.HostConfig
	for _, ref := range []string{hc.PidMode.Container(), hc.IpcMode.Container()} {
		if ref == "" {
			continue
		}
		donor, err := s.store.Get(ref)
		if err != nil || !donor.State.Running || donor.State.Pid == 0 {
			continue // joinedNamespaces said why already
		}
		if _, ok := s.mapping(donor.HostConfig); ok {
			return fmt.Sprintf("/proc/%d/ns/user", donor.State.Pid)
		}
	}
	return ""
}

// Mounts berthd makes under a remapped container's bundle for it.
const (
	remapSysfs  = "sysfs"
	remapMqueue = "mqueue"
	remapInit   = "init"
)

// remapHostMounts makes, from berthd, what a remapped container's runtime
// cannot mount from inside its user namespace, under its bundle, and
// points the spec at them: a sysfs of the network namespace berthd made
// for it (or the host's, with --network host: a user namespace may mount
// sysfs only for a network namespace it owns; dockerd lets runc make the
// namespace instead), an mqueue of the host's IPC namespace with --ipc
// host, and the --init binary, whose directory may be closed to the
// range's root. teardown unmounts them (unmountRemapped). The container's
// hosts, hostname and resolv.conf are given to its root.
func (s *Service) remapHostMounts(rec *store.Container, sp *specs.Spec, netnsPath string) error {
	if _, ok := s.mapping(rec.HostConfig); !ok {
		return nil
	}
	bundle := s.bundleDir(rec.ID)
	m, _ := s.mapping(rec.HostConfig)
	ruid, rgid := m.Root()
	for i, m := range sp.Mounts {
		var src string
		switch {
		case filepath.Dir(m.Source) == s.store.Dir(rec.ID):
			// hosts, hostname, resolv.conf: the container's root may edit
			// them, as with dockerd, which keeps them under the remapped
			// root.
			if err := os.Lchown(m.Source, ruid, rgid); err != nil {
				return err
			}
			continue
		case m.Destination == "/sys" && m.Type == "sysfs" && (netnsPath != "" || rec.HostConfig.NetworkMode.IsHost()):
			src = filepath.Join(bundle, remapSysfs)
			mnt := func() error { return mountFS("sysfs", src, m.Options) }
			var err error
			if netnsPath != "" {
				err = netns.Do(netnsPath, mnt)
			} else {
				err = mnt()
			}
			if err != nil {
				return err
			}
		case m.Destination == "/dev/mqueue" && m.Type == "mqueue" && rec.HostConfig.IpcMode.IsHost():
			src = filepath.Join(bundle, remapMqueue)
			if err := mountFS("mqueue", src, m.Options); err != nil {
				return err
			}
		case m.Destination == spec.InitPath && m.Source == s.opts.Init:
			src = filepath.Join(bundle, remapInit)
			if err := os.WriteFile(src, nil, 0o755); err != nil {
				return err
			}
			if err := unix.Mount(m.Source, src, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind %s at %s: %w", m.Source, src, err)
			}
		default:
			continue
		}
		opts := []string{"rbind"}
		for _, o := range m.Options {
			if o != "bind" && o != "rbind" {
				opts = append(opts, o)
			}
		}
		sp.Mounts[i] = specs.Mount{Destination: m.Destination, Type: "bind", Source: src, Options: opts}
	}
	return nil
}

// mountFS mounts a fresh fstype at dir (created), read-only if the spec's
// options say so, never with devices, set-id or executables.
func mountFS(fstype, dir string, options []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	for _, o := range options {
		if o == "ro" {
			flags |= unix.MS_RDONLY
		}
	}
	if err := unix.Mount(fstype, dir, fstype, flags, ""); err != nil {
		return fmt.Errorf("mount %s at %s: %w", fstype, dir, err)
	}
	return nil
}

// unmountRemapped undoes remapHostMounts.
func (s *Service) unmountRemapped(id string) error {
	for _, name := range []string{remapSysfs, remapMqueue, remapInit} {
		p := filepath.Join(s.bundleDir(id), name)
		if err := snapshot.UnmountAll(p); err != nil {
			return err
		}
	}
	return nil
}
