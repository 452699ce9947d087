package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime/mountinfo"
	"github.com/berth-dev/berth/volume"
)

// errNoVolumes is the answer to a volume request when the service runs
// without a volume store.
var errNoVolumes = fmt.Errorf("volumes: no volume store configured: %w", errdefs.ErrNotImplemented)

// resolveMounts turns a create request's --volumes-from, -v, --mount,
// --tmpfs and the image's VOLUMEs into the container's mount points, in
// dockerd's order of precedence: -v and --mount win over --volumes-from,
// and image volumes only fill the destinations nothing else mounts.
// Volumes are created when missing and referenced for id; on error the
// references taken (and anonymous volumes made) are undone.
func (s *Service) resolveMounts(id string, cfg *container.Config, hc *container.HostConfig) (mps []volume.MountPoint, err error) {
	byDest := map[string]int{}
	add := func(mp volume.MountPoint) {
		if i, ok := byDest[mp.Destination]; ok {
			mps[i] = mp
			return
		}
		byDest[mp.Destination] = len(mps)
		mps = append(mps, mp)
	}
	for _, spec := range hc.VolumesFrom {
		name, mode, err := volume.ParseVolumesFrom(spec)
		if err != nil {
			return nil, err
		}
		src, err := s.store.Get(name)
		if err != nil {
			return nil, err
		}
		rw := !slices.Contains(strings.Split(mode, ","), "ro")
		for _, m := range src.MountPoints {
			m.RW = m.RW && rw
			m.Anonymous, m.CopyData, m.VolumeOptions = false, false, nil
			m.FromContainer = src.ID
			add(m)
		}
	}
	fromUser := map[string]bool{}
	for _, b := range hc.Binds {
		mp, err := volume.ParseBind(b)
		if err != nil {
			return nil, err
		}
		if fromUser[mp.Destination] {
			return nil, volume.ConflictError(mp.Destination)
		}
		fromUser[mp.Destination] = true
		// The mode as given (a -v volume's reads "z" by default).
		if parts := strings.Split(b, ":"); len(parts) == 3 && labelMode(parts[2]) != "" && !selinuxEnabled() {
			s.opts.Logf("container %s: -v %s: SELinux label mode %s ignored: SELinux is not enabled on this host", id, b, labelMode(parts[2]))
		}
		if mp.Type == mount.TypeVolume && hc.VolumeDriver != "" {
			mp.Driver = hc.VolumeDriver // refused at create unless local
		}
		add(mp)
	}
	for _, m := range hc.Mounts {
		mp, err := volume.ParseMount(m)
		if err != nil {
			return nil, err
		}
		if fromUser[mp.Destination] {
			return nil, volume.ConflictError(mp.Destination)
		}
		fromUser[mp.Destination] = true
		add(mp)
	}
	for dest := range hc.Tmpfs {
		if err := volume.ValidateTmpfsDestination(dest); err != nil {
			return nil, err
		}
		if _, ok := byDest[path.Clean(dest)]; ok {
			return nil, volume.ConflictError(path.Clean(dest))
		}
	}
	var imgVols []string
	for dest := range cfg.Volumes {
		imgVols = append(imgVols, dest)
	}
	sort.Strings(imgVols)
	for _, dest := range imgVols {
		d := path.Clean(dest)
		if !path.IsAbs(d) || d == "/" {
			return nil, fmt.Errorf("invalid volume specification: '%s': invalid mount path: '%s' mount path must be absolute: %w", dest, dest, errdefs.ErrInvalidArgument)
		}
		if _, ok := byDest[d]; ok {
			continue
		}
		if _, ok := hc.Tmpfs[dest]; ok {
			continue
		}
		if _, ok := hc.Tmpfs[d]; ok {
			continue
		}
		add(volume.MountPoint{Type: mount.TypeVolume, Destination: d, Driver: volume.DefaultDriver, RW: true, Anonymous: true, CopyData: true})
	}

	// Create the volumes (named ones on demand) and reference them.
	var made, refd []string
	defer func() {
		if err == nil {
			return
		}
		for _, n := range refd {
			s.opts.Volumes.Unref(n, id)
		}
		for _, n := range made {
			s.opts.Volumes.Remove(n, true)
		}
	}()
	for i := range mps {
		mp := &mps[i]
		if mp.Type != mount.TypeVolume {
			continue
		}
		if s.opts.Volumes == nil {
			return nil, errNoVolumes
		}
		o := volume.CreateOptions{Name: mp.Name, Driver: mp.Driver}
		if mp.Anonymous {
			o.Labels = map[string]string{volume.AnonymousLabel: ""}
		}
		if vo := mp.VolumeOptions; vo != nil {
			if o.Labels == nil && len(vo.Labels) > 0 {
				o.Labels = map[string]string{}
			}
			for k, v := range vo.Labels {
				o.Labels[k] = v
			}
			if vo.DriverConfig != nil {
				o.Options = vo.DriverConfig.Options
			}
		}
		existed := false
		if mp.Name != "" {
			_, gerr := s.opts.Volumes.Get(mp.Name)
			existed = gerr == nil
		}
		v, err := s.opts.Volumes.Create(o, id)
		if errdefs.IsNotFound(err) {
			// A missing driver, not a missing image: a 404 would make
			// the docker CLI try to pull the image.
			return nil, fmt.Errorf("create %s: %s: %w", mp.Name, strings.TrimSuffix(err.Error(), ": "+errdefs.ErrNotFound.Error()), errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return nil, err
		}
		refd = append(refd, v.Name)
		if !existed {
			made = append(made, v.Name)
			s.publishVolume(events.ActionCreate, v.Name, nil)
		}
		mp.Name, mp.Driver, mp.Source = v.Name, v.Driver, s.opts.Volumes.Path(v.Name)
		mp.VolumeOptions = nil
	}
	return mps, nil
}

// releaseVolumes drops container rec's volume references; with
// removeAnonymous (rm -v) its anonymous volumes go too (those still used
// elsewhere, through --volumes-from, stay, as with dockerd).
func (s *Service) releaseVolumes(rec *store.Container, removeAnonymous bool) {
	if s.opts.Volumes == nil {
		return
	}
	for _, m := range rec.MountPoints {
		if m.Type != mount.TypeVolume || m.Name == "" {
			continue
		}
		s.opts.Volumes.Unmount(m.Name, rec.ID)
		s.opts.Volumes.Unref(m.Name, rec.ID)
		if removeAnonymous && m.Anonymous {
			if err := s.opts.Volumes.Remove(m.Name, false); err == nil {
				s.publishVolume(events.ActionDestroy, m.Name, nil)
			} else if !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
				s.opts.Logf("container %s: remove volume %s: %v", rec.ID, m.Name, err)
			}
		}
	}
}

// restoreVolumeRefs references the volumes of every container on record
// (the references live in memory only).
func (s *Service) restoreVolumeRefs() {
	if s.opts.Volumes == nil {
		return
	}
	all, err := s.store.List(store.ListOptions{All: true})
	if err != nil {
		return
	}
	for _, rec := range all {
		for _, m := range rec.MountPoints {
			if m.Type != mount.TypeVolume || m.Name == "" {
				continue
			}
			if err := s.opts.Volumes.Ref(m.Name, rec.ID); err != nil {
				s.opts.Logf("container %s: volume %s: %v", rec.ID, m.Name, err)
				continue
			}
			// A container that outlived the daemon still uses its
			// volume's device: count it, so that another one's exit
			// does not unmount it under a later start.
			if rec.State.Running {
				if _, err := s.opts.Volumes.Mount(m.Name, rec.ID); err != nil {
					s.opts.Logf("container %s: volume %s: %v", rec.ID, m.Name, err)
				}
			}
		}
	}
}

// VolumeUsers are the containers that use volume name (for system df).
func (s *Service) VolumeUsers(name string) []string {
	if s.opts.Volumes == nil {
		return nil
	}
	return s.opts.Volumes.Users(name)
}

// mountSpecs prepares rec's mount points for a start on rootfs (already
// mounted): bind sources created where -v asks, volume devices mounted,
// volumes populated from the image on their first use. It returns the
// OCI mounts and the root propagation shared or slave binds need.
func (s *Service) mountSpecs(rec *store.Container, rootfs string) ([]specs.Mount, string, error) {
	var out []specs.Mount
	rootProp := ""
	copied := false
	for i := range rec.MountPoints {
		m := &rec.MountPoints[i]
		switch m.Type {
		case mount.TypeTmpfs:
			out = append(out, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: tmpfsOptions(m.Tmpfs)})
			continue
		case mount.TypeVolume:
			if s.opts.Volumes == nil {
				return nil, "", errNoVolumes
			}
			src, err := s.opts.Volumes.Mount(m.Name, rec.ID)
			if err != nil {
				return nil, "", err
			}
			if m.CopyData {
				if _, err := volume.Populate(rootfs, m.Destination, src); err != nil {
					return nil, "", err
				}
				m.CopyData, copied = false, true
			}
			m.Source = src
			s.publishVolume(events.ActionMount, m.Name, map[string]string{
				"container": rec.ID, "destination": m.Destination,
				"read/write": strconv.FormatBool(m.RW), "propagation": string(m.Propagation),
			})
		case mount.TypeBind:
			if _, err := os.Stat(m.Source); errors.Is(err, fs.ErrNotExist) {
				if !m.CreateSource {
					return nil, "", fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s: %w", m.Source, errdefs.ErrInvalidArgument)
				}
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return nil, "", fmt.Errorf("create bind source %s: %w", m.Source, err)
				}
			} else if err != nil {
				return nil, "", fmt.Errorf("bind source %s: %w", m.Source, err)
			}
		default:
			return nil, "", fmt.Errorf("mount %s: type %q: %w", m.Destination, m.Type, errdefs.ErrNotImplemented)
		}
		opts := []string{"rbind"}
		if m.NonRecursive {
			opts[0] = "bind"
		}
		if !m.RW {
			opts = append(opts, "ro")
		}
		prop := m.Propagation
		if prop == "" {
			prop = volume.DefaultPropagation
		}
		opts = append(opts, string(prop))
		switch prop {
		case mount.PropagationShared, mount.PropagationRShared:
			if err := ensurePropagation(m.Source, true); err != nil {
				return nil, "", err
			}
			rootProp = "rshared"
		case mount.PropagationSlave, mount.PropagationRSlave:
			if err := ensurePropagation(m.Source, false); err != nil {
				return nil, "", err
			}
			if rootProp == "" {
				rootProp = "rslave"
			}
		}
		out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	if copied {
		if _, err := s.store.Update(rec.ID, func(r *store.Container) error {
			r.MountPoints = rec.MountPoints
			return nil
		}); err != nil {
			return nil, "", err
		}
	}
	return out, rootProp, nil
}

// unmountVolumes releases the volume devices container id mounted.
func (s *Service) unmountVolumes(id string) {
	if s.opts.Volumes == nil {
		return
	}
	rec, err := s.store.Get(id)
	if err != nil {
		return
	}
	for _, m := range rec.MountPoints {
		if m.Type == mount.TypeVolume && m.Name != "" {
			was, err := s.opts.Volumes.Unmount(m.Name, id)
			if err != nil {
				s.opts.Logf("container %s: %v", id, err)
			}
			if was {
				s.publishVolume(events.ActionUnmount, m.Name, map[string]string{"container": id})
			}
		}
	}
}

// labelMode is the z or Z of a -v mode ("" without).
func labelMode(mode string) string {
	for _, o := range strings.Split(mode, ",") {
		if o == "z" || o == "Z" {
			return o
		}
	}
	return ""
}

// selinuxEnabled reports whether the host runs SELinux (its filesystem
// is mounted), as the label modes need.
func selinuxEnabled() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &st) == nil && st.Type == unix.SELINUX_MAGIC
}

// publishVolume sends a volume event as dockerd's (driver local).
func (s *Service) publishVolume(action events.Action, name string, attrs map[string]string) {
	if s.opts.Events == nil {
		return
	}
	a := map[string]string{"driver": volume.DefaultDriver}
	for k, v := range attrs {
		a[k] = v
	}
	s.opts.Events.Publish(events.VolumeEventType, action, events.Actor{ID: name, Attributes: a})
}

// ensurePropagation checks, as dockerd, that a shared bind's source is on
// a shared mount (a slave one's on a shared or slave mount): the host
// side must propagate for the container's side to see anything.
func ensurePropagation(src string, shared bool) error {
	ms, err := mountinfo.Read()
	if err != nil {
		return err
	}
	mp := mountinfo.MountPointOf(ms, src)
	opts, err := optionalFields(mp)
	if err != nil {
		return err
	}
	isShared := strings.Contains(opts, "shared:")
	if shared && !isShared {
		return fmt.Errorf("path %s is mounted on %s but it is not a shared mount: %w", src, mp, errdefs.ErrInvalidArgument)
	}
	if !shared && !isShared && !strings.Contains(opts, "master:") {
		return fmt.Errorf("path %s is mounted on %s but it is not a shared or slave mount: %w", src, mp, errdefs.ErrInvalidArgument)
	}
	return nil
}

// optionalFields are mountinfo's optional fields (shared:N, master:N) of
// the last mount on mountpoint.
func optionalFields(mountpoint string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	out := ""
	for _, line := range strings.Split(string(b), "\n") {
		pre, _, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 6 || mountinfo.Unescape(f[4]) != mountpoint {
			continue
		}
		out = strings.Join(f[6:], " ")
	}
	return out, nil
}

// tmpfsOptions are dockerd's options of a tmpfs mount: noexec, nosuid,
// nodev and rprivate, then the user's data.
func tmpfsOptions(data string) []string {
	opts := []string{"noexec", "nosuid", "nodev", "rprivate"}
	if data != "" {
		opts = append(opts, strings.Split(data, ",")...)
	}
	return spec.MergeTmpfsOptions(opts)
}
