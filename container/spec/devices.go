package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

var errNotDevice = errors.New("not a device node")

// validateDevice checks one --device mapping as dockerd does at create.
func validateDevice(d container.DeviceMapping) error {
	if d.PathOnHost == "" {
		return invalid("invalid device mapping %+v: no host path", d)
	}
	if d.PathInContainer != "" && !path.IsAbs(d.PathInContainer) {
		return invalid("%s is not an absolute path", d.PathInContainer)
	}
	if p := d.CgroupPermissions; p != "" && strings.Trim(p, "rwm") != "" || len(d.CgroupPermissions) > 3 {
		return invalid("invalid device mode: %s", d.CgroupPermissions)
	}
	return nil
}

// deviceFromPath describes the device node at p (symlinks followed).
func deviceFromPath(p string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return specs.LinuxDevice{}, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, errNotDevice
	}
	mode := os.FileMode(st.Mode & 0o7777)
	return specs.LinuxDevice{
		Path: p, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: uint32Ptr(st.Uid), GID: uint32Ptr(st.Gid),
	}, nil
}

// devicesFromMapping is one --device: a device node, or a directory whose
// device nodes all appear under the container path, each with a device
// cgroup rule granting the mapping's permissions (rwm by default), as
// dockerd does.
func devicesFromMapping(d container.DeviceMapping) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	perms := d.CgroupPermissions
	if perms == "" {
		perms = "rwm"
	}
	dst := d.PathInContainer
	if dst == "" {
		dst = d.PathOnHost
	}
	src := d.PathOnHost
	if r, err := filepath.EvalSymlinks(src); err == nil {
		src = r
	}
	rule := func(dev specs.LinuxDevice) specs.LinuxDeviceCgroup {
		major, minor := dev.Major, dev.Minor
		return specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms}
	}
	dev, err := deviceFromPath(src)
	if err == nil {
		dev.Path = dst
		return []specs.LinuxDevice{dev}, []specs.LinuxDeviceCgroup{rule(dev)}, nil
	}
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	if st, serr := os.Stat(src); errors.Is(err, errNotDevice) && serr == nil && st.IsDir() {
		filepath.WalkDir(src, func(p string, _ fs.DirEntry, werr error) error {
			if werr != nil {
				return nil
			}
			child, cerr := deviceFromPath(p)
			if cerr != nil {
				return nil // not a device: skipped, as dockerd does
			}
			rel, _ := filepath.Rel(src, p)
			child.Path = path.Join(dst, filepath.ToSlash(rel))
			devs = append(devs, child)
			rules = append(rules, rule(child))
			return nil
		})
	}
	if len(devs) > 0 {
		return devs, rules, nil
	}
	return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: %v: %w", d.PathOnHost, err, errdefs.ErrInvalidArgument)
}

// Devices returns the device nodes and the device cgroup list of hc, as
// dockerd builds them: a privileged container gets every host device
// and access to all; otherwise the default list, then --device and
// --device-cgroup-rule.
func Devices(hc *container.HostConfig) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	if hc.Privileged {
		devs, err := hostDevices()
		return devs, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}, err
	}
	var devs []specs.LinuxDevice
	rules := defaultDeviceRules()
	for _, m := range hc.Devices {
		ds, rs, err := devicesFromMapping(m)
		if err != nil {
			return nil, nil, err
		}
		devs = append(devs, ds...)
		rules = append(rules, rs...)
	}
	for _, r := range hc.DeviceCgroupRules {
		d, err := deviceRule(r)
		if err != nil {
			return nil, nil, err
		}
		rules = append(rules, d)
	}
	return devs, rules, nil
}

// Resources is the spec's resources for hc (what `update` applies to a
// running container): limits, block I/O throttles and device rules.
func Resources(hc *container.HostConfig) (*specs.LinuxResources, error) {
	_, rules, err := Devices(hc)
	if err != nil {
		return nil, err
	}
	r := linuxResources(&hc.Resources, rules)
	if err := blockIO(&hc.Resources, r.BlockIO); err != nil {
		return nil, err
	}
	if l := hc.PidsLimit; l != nil && *l <= 0 {
		// update --pids-limit 0 or -1 lifts the limit (at create, no
		// limit is simply no pids resource).
		r.Pids = &specs.LinuxPids{Limit: int64Ptr(-1)}
	}
	return r, nil
}
