package volume

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/errdefs"
)

// MountPoint is one mount of a container, as its record keeps it: what
// inspect shows (container.MountPoint's fields) and what start needs.
type MountPoint struct {
	Type mount.Type
	// Name is the volume's name (volumes only).
	Name string `json:",omitempty"`
	// Source is the host path: a bind's, a volume's data directory.
	Source      string `json:",omitempty"`
	Destination string
	Driver      string `json:",omitempty"`
	// Mode is the -v mode string as given ("ro,z"), "z" for a -v volume.
	Mode        string `json:",omitempty"`
	RW          bool
	Propagation mount.Propagation `json:",omitempty"`
	// Anonymous volumes were made for this container: rm -v removes
	// them.
	Anonymous bool `json:",omitempty"`
	// CopyData: the volume gets the image's content at Destination at
	// the first start (cleared once done or when nocopy).
	CopyData bool `json:",omitempty"`
	// CreateSource: a -v bind whose missing host path is created (a
	// --mount bind must exist, or ask with create-mountpoint).
	CreateSource bool `json:",omitempty"`
	// NonRecursive binds leave the submounts of Source out.
	NonRecursive bool `json:",omitempty"`
	// Tmpfs is a tmpfs mount's data ("size=64m,mode=1770").
	Tmpfs string `json:",omitempty"`
	// Options are the volume options of a --mount that creates its
	// volume (driver options and labels).
	VolumeOptions *mount.VolumeOptions `json:",omitempty"`
	// FromContainer names the container a --volumes-from mount came from.
	FromContainer string `json:",omitempty"`
}

// API is m as inspect and ps show it.
func (m *MountPoint) API() container.MountPoint {
	return container.MountPoint{
		Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination,
		Driver: m.Driver, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation,
	}
}

// errors in dockerd's words.

func errInvalidSpec(raw string) error {
	return fmt.Errorf("invalid volume specification: '%s'", raw)
}

func errMountConfig(m *mount.Mount, err error) error {
	return fmt.Errorf("invalid mount config for type %q: %v", m.Type, err)
}

func invalid(err error) error { return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument) }

var propagations = map[mount.Propagation]bool{
	mount.PropagationPrivate: true, mount.PropagationRPrivate: true,
	mount.PropagationSlave: true, mount.PropagationRSlave: true,
	mount.PropagationShared: true, mount.PropagationRShared: true,
}

// DefaultPropagation is a bind's when none is asked.
const DefaultPropagation = mount.PropagationRPrivate

// validMode is dockerd's check of a -v mode: comma-separated words, at
// most one of each kind (rw/ro, z/Z, a propagation, nocopy, a
// consistency).
func validMode(mode string) bool {
	if mode == "" {
		return true
	}
	var rw, label, prop, cp, cons int
	for _, o := range strings.Split(mode, ",") {
		switch {
		case o == "rw" || o == "ro":
			rw++
		case o == "z" || o == "Z":
			label++
		case propagations[mount.Propagation(o)]:
			prop++
		case o == "nocopy":
			cp++
		case o == "consistent" || o == "cached" || o == "delegated" || o == "default":
			cons++
		default:
			return false
		}
	}
	return rw <= 1 && label <= 1 && prop <= 1 && cp <= 1 && cons <= 1
}

func modeHas(mode, word string) bool {
	for _, o := range strings.Split(mode, ",") {
		if o == word {
			return true
		}
	}
	return false
}

func modePropagation(mode string) mount.Propagation {
	for _, o := range strings.Split(mode, ",") {
		if propagations[mount.Propagation(o)] {
			return mount.Propagation(o)
		}
	}
	return ""
}

func validateTarget(m *mount.Mount) error {
	if m.Target == "" {
		return errMountConfig(m, errors.New("field Target must not be empty"))
	}
	if path.Clean(m.Target) == "/" {
		return errMountConfig(m, errors.New("invalid specification: destination can't be '/'"))
	}
	if !path.IsAbs(m.Target) {
		return errMountConfig(m, fmt.Errorf("invalid mount path: '%s' mount path must be absolute", m.Target))
	}
	return nil
}

// ParseBind reads one -v (HostConfig.Binds) entry:
// [source:]destination[:mode]. An absolute source is a bind mount (its
// host path created at start when missing), a name a named volume, no
// source an anonymous volume.
func ParseBind(raw string) (MountPoint, error) {
	arr := strings.SplitN(raw, ":", 4)
	if arr[0] == "" {
		return MountPoint{}, invalid(errInvalidSpec(raw))
	}
	var m mount.Mount
	mode := ""
	switch len(arr) {
	case 1:
		m.Target = arr[0]
	case 2:
		if validMode(arr[1]) {
			// A destination with a mode is not a volume: "/foo:rw".
			return MountPoint{}, invalid(errInvalidSpec(raw))
		}
		m.Source, m.Target = arr[0], arr[1]
	case 3:
		m.Source, m.Target, mode = arr[0], arr[1], arr[2]
	default:
		return MountPoint{}, invalid(errInvalidSpec(raw))
	}
	if !validMode(mode) {
		return MountPoint{}, invalid(fmt.Errorf("invalid mode: %s", mode))
	}
	m.Type = mount.TypeVolume
	if path.IsAbs(m.Source) {
		m.Type = mount.TypeBind
	}
	m.ReadOnly = modeHas(mode, "ro")
	if err := validateTarget(&m); err != nil {
		return MountPoint{}, invalid(fmt.Errorf("%v: %v", errInvalidSpec(raw), err))
	}
	mp := MountPoint{Type: m.Type, Destination: path.Clean(m.Target), RW: !m.ReadOnly, Mode: mode}
	switch m.Type {
	case mount.TypeBind:
		if p := modePropagation(mode); p != "" {
			mp.Propagation = p
		} else {
			mp.Propagation = DefaultPropagation
		}
		mp.Source = path.Clean(m.Source)
		mp.CreateSource = true
	case mount.TypeVolume:
		if modePropagation(mode) != "" {
			return MountPoint{}, invalid(fmt.Errorf("%v: invalid mount config for type \"volume\": propagation is not supported for volumes", errInvalidSpec(raw)))
		}
		if m.Source != "" {
			if err := ValidName(m.Source); err != nil {
				return MountPoint{}, err
			}
		}
		mp.Name, mp.Driver = m.Source, DefaultDriver
		mp.Anonymous = m.Source == ""
		mp.CopyData = !modeHas(mode, "nocopy")
		if mp.Mode == "" {
			// dockerd's default label mode for a local volume from -v.
			mp.Mode = "z"
		}
	}
	return mp, nil
}

// ParseMount reads one --mount (HostConfig.Mounts) entry, validated as
// dockerd does (every API version berth serves knows NonRecursive and
// CreateMountpoint).
func ParseMount(m mount.Mount) (MountPoint, error) {
	if err := validateTarget(&m); err != nil {
		return MountPoint{}, invalid(err)
	}
	mp := MountPoint{Type: m.Type, Destination: path.Clean(m.Target), RW: !m.ReadOnly}
	switch m.Type {
	case mount.TypeBind:
		if m.Source == "" {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field Source must not be empty")))
		}
		if m.VolumeOptions != nil {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field VolumeOptions must not be specified")))
		}
		if m.TmpfsOptions != nil {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field TmpfsOptions must not be specified")))
		}
		if !path.IsAbs(m.Source) {
			return MountPoint{}, invalid(errMountConfig(&m, fmt.Errorf("invalid mount path: '%s' mount path must be absolute", m.Source)))
		}
		mp.Source = path.Clean(m.Source)
		mp.Propagation = DefaultPropagation
		if o := m.BindOptions; o != nil {
			if o.Propagation != "" {
				if !propagations[o.Propagation] {
					return MountPoint{}, invalid(errMountConfig(&m, fmt.Errorf("invalid propagation mode: %s", o.Propagation)))
				}
				mp.Propagation = o.Propagation
			}
			if o.NonRecursive {
				mp.NonRecursive = true
			}
			if o.CreateMountpoint {
				mp.CreateSource = true
			}
			if o.ReadOnlyNonRecursive || o.ReadOnlyForceRecursive {
				return MountPoint{}, fmt.Errorf("bind-recursive=readonly/writable: read-only recursion options are not supported by berth: %w", errdefs.ErrNotImplemented)
			}
		}
		if !mp.CreateSource {
			if _, err := os.Stat(mp.Source); err != nil {
				return MountPoint{}, invalid(errMountConfig(&m, fmt.Errorf("bind source path does not exist: %s", mp.Source)))
			}
		}
	case mount.TypeVolume:
		if m.BindOptions != nil {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field BindOptions must not be specified")))
		}
		if m.TmpfsOptions != nil {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field TmpfsOptions must not be specified")))
		}
		if m.ReadOnly && m.Source == "" {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("must not set ReadOnly mode when using anonymous volumes")))
		}
		if m.Source != "" {
			if err := ValidName(m.Source); err != nil {
				return MountPoint{}, err
			}
		}
		// dockerd's label mode for a local volume, as for -v.
		mp.Name, mp.Driver, mp.Anonymous, mp.CopyData, mp.Mode = m.Source, DefaultDriver, m.Source == "", true, "z"
		if o := m.VolumeOptions; o != nil {
			if o.Subpath != "" {
				return MountPoint{}, fmt.Errorf("volume-subpath: volume subpaths are not supported by berth: %w", errdefs.ErrNotImplemented)
			}
			if o.NoCopy {
				mp.CopyData = false
			}
			if o.DriverConfig != nil && o.DriverConfig.Name != "" {
				mp.Driver = o.DriverConfig.Name
			}
			mp.VolumeOptions = o
		}
	case mount.TypeTmpfs:
		if m.BindOptions != nil {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field BindOptions must not be specified")))
		}
		if m.VolumeOptions != nil {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field VolumeOptions must not be specified")))
		}
		if m.Source != "" {
			return MountPoint{}, invalid(errMountConfig(&m, errors.New("field Source must not be specified")))
		}
		data, err := tmpfsData(m.TmpfsOptions, m.ReadOnly)
		if err != nil {
			return MountPoint{}, invalid(errMountConfig(&m, err))
		}
		mp.Tmpfs = data
	case mount.TypeImage, mount.TypeCluster:
		return MountPoint{}, fmt.Errorf("mount type %q: not supported by berth: %w", m.Type, errdefs.ErrNotImplemented)
	default:
		return MountPoint{}, invalid(errMountConfig(&m, errors.New("mount type unknown")))
	}
	return mp, nil
}

// tmpfsData is dockerd's rendering of --mount type=tmpfs options: ro,
// mode in octal, size with the largest unit that divides it, exec/noexec.
func tmpfsData(o *mount.TmpfsOptions, ro bool) (string, error) {
	var out []string
	if ro {
		out = append(out, "ro")
	}
	if o != nil && o.Mode != 0 {
		out = append(out, fmt.Sprintf("mode=%o", uint32(o.Mode)))
	}
	if o != nil && o.SizeBytes < 0 {
		return "", errors.New("tmpfs size must not be negative")
	}
	if o != nil && o.SizeBytes != 0 {
		size, suffix := o.SizeBytes, ""
		for _, u := range []struct {
			s string
			d int64
		}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
			if size%u.d == 0 {
				size, suffix = size/u.d, u.s
				break
			}
		}
		out = append(out, fmt.Sprintf("size=%d%s", size, suffix))
	}
	if o != nil {
		for _, opt := range o.Options {
			if len(opt) < 1 || len(opt) > 2 {
				return "", errors.New("invalid option array length")
			}
			if opt[0] != "exec" && opt[0] != "noexec" {
				return "", errors.New("invalid option: " + opt[0])
			}
			out = append(out, strings.Join(opt, "="))
		}
	}
	return strings.Join(out, ","), nil
}

// ParseVolumesFrom reads one --volumes-from entry: container[:ro|rw].
func ParseVolumesFrom(spec string) (name, mode string, err error) {
	if spec == "" {
		return "", "", invalid(errors.New("volumes-from specification cannot be an empty string"))
	}
	name, mode, _ = strings.Cut(spec, ":")
	if mode == "" {
		return name, "rw", nil
	}
	if !validMode(mode) || modePropagation(mode) != "" || modeHas(mode, "nocopy") {
		return "", "", invalid(fmt.Errorf("invalid mode: %s", mode))
	}
	return name, mode, nil
}

// ValidateTmpfsDestination checks a --tmpfs destination as dockerd does.
func ValidateTmpfsDestination(dest string) error {
	if path.Clean(dest) == "/" {
		return invalid(errors.New("invalid specification: destination can't be '/'"))
	}
	if !path.IsAbs(dest) {
		return invalid(fmt.Errorf("invalid mount path: '%s' mount path must be absolute", dest))
	}
	return nil
}

// ConflictError is dockerd's duplicate mount point error.
func ConflictError(dest string) error {
	return fmt.Errorf("Duplicate mount point: %s: %w", dest, errdefs.ErrInvalidArgument)
}
