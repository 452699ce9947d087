package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime/mountinfo"
)

// validateOptions checks the local driver's options as dockerd does:
// type, device and o, where type and device go together. size needs
// project quotas, which berth does not set up: it is refused by name.
func validateOptions(opts map[string]string) error {
	if len(opts) == 0 {
		return nil
	}
	for k := range opts {
		switch k {
		case "type", "device", "o":
		case "size":
			return fmt.Errorf("quota size requested but no quota support: %w", errdefs.ErrInvalidArgument)
		default:
			return fmt.Errorf("invalid option: %q: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if opts["type"] == "" && opts["device"] == "" && opts["o"] == "" {
		return nil
	}
	if opts["type"] == "" {
		return fmt.Errorf("missing required option: \"type\": %w", errdefs.ErrInvalidArgument)
	}
	if opts["device"] == "" {
		return fmt.Errorf("missing required option: \"device\": %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// hasDevice reports whether v is mounted from a device (type/device/o)
// rather than kept in its own directory.
func hasDevice(v *Volume) bool { return v.Options["type"] != "" || v.Options["device"] != "" }

// Mount makes volume name's data available to container id and returns
// its host path: a volume with a device gets it mounted on its _data
// directory at its first user's mount (dockerd's local driver does the
// same). Mount and Unmount are idempotent per container.
func (s *Store) Mount(name, id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return "", notFound(name)
	}
	data := filepath.Join(s.root, name, DataDir)
	if hasDevice(v) && len(s.mounted[name]) == 0 && !isMountPoint(data) {
		if err := mountDevice(v.Options, data); err != nil {
			return "", fmt.Errorf("error while mounting volume '%s': %w", data, err)
		}
	}
	if s.mounted[name] == nil {
		s.mounted[name] = map[string]bool{}
	}
	s.mounted[name][id] = true
	return data, nil
}

// Unmount undoes container id's Mount, reporting whether there was one:
// a device goes with its last user. Containers that run keep their own
// bind of it.
func (s *Store) Unmount(name, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mounted[name][id] {
		return false, nil
	}
	delete(s.mounted[name], id)
	if len(s.mounted[name]) > 0 {
		return true, nil
	}
	delete(s.mounted, name)
	v, ok := s.vols[name]
	data := filepath.Join(s.root, name, DataDir)
	if !ok || !hasDevice(v) || !isMountPoint(data) {
		return true, nil
	}
	if err := unix.Unmount(data, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return true, fmt.Errorf("unmount volume %s: %w", name, err)
	}
	return true, nil
}

// UnmountAll unmounts every volume device (daemon shutdown is not the
// place for it: running containers keep theirs; tests use it).
func (s *Store) UnmountAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name := range s.vols {
		data := filepath.Join(s.root, name, DataDir)
		if isMountPoint(data) {
			if err := unix.Unmount(data, unix.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount volume %s: %w", name, err))
			}
		}
		delete(s.mounted, name)
	}
	return errors.Join(errs...)
}

// mountFlags are the o= words that are mount flags, not filesystem data.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"nodiratime": {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "sync": {false, unix.MS_SYNCHRONOUS},
	"async": {true, unix.MS_SYNCHRONOUS}, "dirsync": {false, unix.MS_DIRSYNC},
	"remount": {false, unix.MS_REMOUNT}, "mand": {false, unix.MS_MANDLOCK}, "nomand": {true, unix.MS_MANDLOCK},
	"defaults": {false, 0},
}

// mountDevice mounts opts' device of opts' type on target with opts' o.
func mountDevice(opts map[string]string, target string) error {
	var flags uintptr
	var data []string
	for _, o := range strings.Split(opts["o"], ",") {
		if o == "" {
			continue
		}
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	typ, dev := opts["type"], opts["device"]
	if flags&unix.MS_BIND != 0 {
		// A bind's device is a host path; like dockerd, it must exist.
		if _, err := os.Stat(dev); err != nil {
			return fmt.Errorf("bind device %s: %w", dev, err)
		}
		if err := unix.Mount(dev, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return fmt.Errorf("bind %s: %w", dev, err)
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|rest, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("remount %s: %w", dev, err)
			}
		}
		return nil
	}
	if err := unix.Mount(dev, target, typ, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s (type %s, o=%s): %w", dev, typ, opts["o"], err)
	}
	return nil
}

func isMountPoint(p string) bool {
	ms, err := mountinfo.Read()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Mountpoint == p {
			return true
		}
	}
	return false
}
