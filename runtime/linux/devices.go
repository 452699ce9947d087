package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are the nodes every container gets, as the OCI spec lists.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// devicesFor merges the default devices with the spec's own.
func devicesFor(spec *specs.Spec) []specs.LinuxDevice {
	var out []specs.LinuxDevice
	seen := map[string]bool{}
	if spec.Linux != nil {
		for _, d := range spec.Linux.Devices {
			out = append(out, d)
			seen[filepath.Clean(d.Path)] = true
		}
	}
	for _, d := range defaultDevices {
		if !seen[d.Path] {
			mode := os.FileMode(0o666)
			d.FileMode = &mode
			out = append(out, d)
		}
	}
	return out
}

// createDevices makes device nodes in the rootfs. In a user namespace
// mknod is refused, so the host's node is bound instead, as runc does.
func (r *rootfs) createDevices(devs []specs.LinuxDevice, inUserNS bool) error {
	for _, d := range devs {
		if err := r.createDevice(d, inUserNS); err != nil {
			return fmt.Errorf("create device %s: %w", d.Path, err)
		}
	}
	return nil
}

func (r *rootfs) createDevice(d specs.LinuxDevice, inUserNS bool) error {
	dir, err := r.mkdirIn(filepath.Dir(filepath.Clean("/"+d.Path)), 0o755)
	if err != nil {
		return err
	}
	defer dir.Close()
	name := filepath.Base(d.Path)
	if inUserNS {
		return r.bindDevice(d)
	}
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	unix.Unlinkat(int(dir.Fd()), name, 0)
	if err := unix.Mknodat(int(dir.Fd()), name, typ|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		if errors.Is(err, unix.EPERM) {
			return r.bindDevice(d)
		}
		return err
	}
	// mknod applies the umask; the spec's mode is the mode.
	if err := unix.Fchmodat(int(dir.Fd()), name, perm, 0); err != nil {
		return err
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	return unix.Fchownat(int(dir.Fd()), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

func (r *rootfs) bindDevice(d specs.LinuxDevice) error {
	return r.bindMount(specs.Mount{Source: d.Path, Destination: d.Path, Type: "bind"}, mountOptions{flags: unix.MS_BIND})
}

// devSymlinks are the links a Linux /dev is expected to have.
func (r *rootfs) devSymlinks() error {
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	dev, err := r.mkdirIn("/dev", 0o755)
	if err != nil {
		return err
	}
	defer dev.Close()
	for _, l := range links {
		err := unix.Symlinkat(l[0], int(dev.Fd()), filepath.Base(l[1]))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s -> %s: %w", l[1], l[0], err)
		}
	}
	return nil
}

// setupPtmx points /dev/ptmx at the container's own devpts instance.
func (r *rootfs) setupPtmx() error {
	dev, err := r.mkdirIn("/dev", 0o755)
	if err != nil {
		return err
	}
	defer dev.Close()
	if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove /dev/ptmx: %w", err)
	}
	if err := unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx"); err != nil {
		return fmt.Errorf("symlink /dev/ptmx: %w", err)
	}
	return nil
}
