package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/mountinfo"
)

// procFd names an open file for mount(2): mounting onto the resolved
// handle, not onto a path, closes the window in which a container could
// swap a directory for a symlink to the host.
func procFd(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// prepareRoot makes the rootfs a private mount point we can pivot into.
// mounts is the host's mount table.
func prepareRoot(root string, propagation string, mounts []mountinfo.Entry) error {
	flag := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if propagation != "" {
		p, ok := propagationFlags[propagation]
		if !ok {
			return fmt.Errorf("rootfsPropagation %q: unknown", propagation)
		}
		flag = p
	}
	if err := unix.Mount("", "/", "", flag, ""); err != nil {
		return fmt.Errorf("set propagation of / to %s: %w", propagation, err)
	}
	// pivot_root refuses a new root whose parent mount is shared.
	if err := makeParentMountPrivate(root, mounts); err != nil {
		return err
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s onto itself: %w", root, err)
	}
	return nil
}

func makeParentMountPrivate(path string, mounts []mountinfo.Entry) error {
	mp := mountinfo.MountPointOf(mounts, path)
	if err := unix.Mount("", mp, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mount %s private: %w", mp, err)
	}
	return nil
}

// rootfs carries what mounting needs: the rootfs and an open handle to it
// that every in-root lookup is resolved against.
type rootfs struct {
	path        string
	dir         *os.File
	cgroupPaths map[string]string
	cgroupNS    bool
	hostMounts  []mountinfo.Entry // the host's mount table, read once
}

func openRootfs(path string, cgroupPaths map[string]string, cgroupNS bool, hostMounts []mountinfo.Entry) (*rootfs, error) {
	dir, err := os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	return &rootfs{path: path, dir: dir, cgroupPaths: cgroupPaths, cgroupNS: cgroupNS, hostMounts: hostMounts}, nil
}

func (r *rootfs) close() { r.dir.Close() }

// mkdirIn creates dest and its parents inside the rootfs, resolving every
// component (symlinks included) as if the rootfs were /, and returns a
// handle on the directory.
func (r *rootfs) mkdirIn(dest string, mode os.FileMode) (*os.File, error) {
	if f, err := r.mkdirFast(dest, mode); err == nil {
		return f, nil
	}
	f, err := pathrs.MkdirAllHandle(r.dir, dest, mode)
	if err != nil {
		return nil, fmt.Errorf("create mount point %s in rootfs: %w", dest, err)
	}
	return f, nil
}

// mkdirFast is mkdirIn for the usual case, through openat2 alone: the
// directory exists, or only plain directories are missing under an
// existing one. Anything unusual on the way (a symlink where a directory
// is to be made, a race, no openat2) is an error here and left to
// pathrs.MkdirAllHandle, whose every lookup also reads the handle's path
// back from a private procfs: a third of a container's mount work.
func (r *rootfs) mkdirFast(dest string, mode os.FileMode) (*os.File, error) {
	dir := filepath.Clean("/" + dest)
	var missing []string
	var fd int
	for {
		var err error
		fd, err = r.openat2(dir, unix.O_DIRECTORY)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ENOENT) || dir == "/" {
			return nil, err
		}
		missing = append(missing, filepath.Base(dir))
		dir = filepath.Dir(dir)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		// The name did not exist a moment ago: it is made here, and opened
		// without following anything, or this path gives up.
		err := unix.Mkdirat(fd, missing[i], uint32(mode.Perm()))
		if err == nil {
			var next int
			next, err = openat2Retry(fd, missing[i], &unix.OpenHow{
				Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
			})
			unix.Close(fd)
			fd = next
		} else {
			unix.Close(fd)
		}
		if err != nil {
			return nil, err
		}
	}
	return os.NewFile(uintptr(fd), dest), nil
}

// openat2 opens path (O_PATH) inside the rootfs, resolved as if the rootfs
// were /: the kernel keeps every step, ".." and symlinks included, under
// it.
func (r *rootfs) openat2(path string, flags uint64) (int, error) {
	return openat2Retry(int(r.dir.Fd()), path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | flags,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// openat2Retry is openat2(2), tried again when the kernel reports that a
// concurrent rename or mount may have disturbed a scoped lookup.
func openat2Retry(dirfd int, path string, how *unix.OpenHow) (int, error) {
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, path, how)
		if err == nil || !errors.Is(err, unix.EAGAIN) || i == 32 {
			return fd, err
		}
	}
}

// openIn opens dest inside the rootfs (as pathrs.OpenatInRoot does, minus
// its read-back of the handle's name from procfs).
func (r *rootfs) openIn(dest string) (*os.File, error) {
	fd, err := r.openat2(dest, 0)
	if errors.Is(err, unix.ENOSYS) {
		return pathrs.OpenatInRoot(r.dir, dest)
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: dest, Err: err}
	}
	return os.NewFile(uintptr(fd), dest), nil
}

// fileIn creates an empty file dest inside the rootfs (for binding files).
func (r *rootfs) fileIn(dest string) (*os.File, error) {
	if f, err := r.openIn(dest); err == nil {
		return f, nil
	}
	parent, err := r.mkdirIn(filepath.Dir(filepath.Clean("/"+dest)), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	name := filepath.Base(dest)
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create mount point %s in rootfs: %w", dest, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return r.openIn(dest)
}

// reopen returns a fresh handle on dest: after a mount, the old handle
// still names the directory underneath it.
func (r *rootfs) reopen(dest string) (*os.File, error) {
	f, err := r.openIn(dest)
	if err != nil {
		return nil, fmt.Errorf("reopen mount point %s: %w", dest, err)
	}
	return f, nil
}

func (r *rootfs) mountAll(mounts []specs.Mount) error {
	for _, m := range mounts {
		if err := r.mountOne(m); err != nil {
			return fmt.Errorf("mount %q to rootfs at %q: %w", m.Source, m.Destination, err)
		}
	}
	return nil
}

func (r *rootfs) mountOne(m specs.Mount) error {
	o := parseMountOptions(m.Options)
	if m.Type == "bind" {
		o.flags |= unix.MS_BIND
	}
	if o.flags&unix.MS_BIND != 0 {
		return r.bindMount(m, o)
	}
	if m.Type == "cgroup" || m.Type == "cgroup2" {
		return r.mountCgroup(m, o)
	}
	target, err := r.mkdirIn(m.Destination, 0o755)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Mount(m.Source, procFd(target), m.Type, o.flags, o.dataString()); err != nil {
		if host, ok := hostFallback[m.Type]; ok && errors.Is(err, unix.EPERM) {
			// As runc: from a user namespace that does not own the network
			// (or IPC) namespace, sysfs (mqueue) cannot be mounted; the
			// host's is bound instead, with the same flags.
			m.Source, m.Type = host, "bind"
			o.flags |= unix.MS_BIND | unix.MS_REC
			return r.bindMount(m, o)
		}
		return fmt.Errorf("mount %s: %w", m.Type, err)
	}
	return r.finishMount(m.Destination, o)
}

// hostFallback names, per filesystem type, the host directory bound in its
// place when a user namespace may not mount it.
var hostFallback = map[string]string{"sysfs": "/sys", "mqueue": "/dev/mqueue"}

func (r *rootfs) bindMount(m specs.Mount, o mountOptions) error {
	// A plain fd: an *os.File would cost an fstat, fcntls and a netpoller
	// registration attempt, for each of the dozen cgroup binds as well.
	src, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open bind source: %w", &os.PathError{Op: "open", Path: m.Source, Err: err})
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return &os.PathError{Op: "stat", Path: m.Source, Err: err}
	}
	var target *os.File
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		target, err = r.mkdirIn(m.Destination, 0o755)
	} else {
		target, err = r.fileIn(m.Destination)
	}
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(src), procFd(target), "", o.flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	// A bind mount ignores every flag but MS_BIND|MS_REC: apply the rest
	// with a remount, keeping the flags the source's mount locks for us.
	if rest := o.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
		if err := r.remountBind(m.Destination, rest, src); err != nil {
			return err
		}
	}
	return r.finishMount(m.Destination, o)
}

// remountBind applies flags to the bind mount at dest; src is an fd on the
// bind's source.
func (r *rootfs) remountBind(dest string, flags uintptr, src int) error {
	f, err := r.reopen(dest)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.Mount("", procFd(f), "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
	if errors.Is(err, unix.EPERM) {
		var sfs unix.Statfs_t
		if unix.Fstatfs(src, &sfs) == nil {
			locked := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
			err = unix.Mount("", procFd(f), "", unix.MS_BIND|unix.MS_REMOUNT|flags|locked, "")
		}
	}
	if err != nil {
		return fmt.Errorf("remount with flags %#x: %w", flags, err)
	}
	return nil
}

// finishMount applies propagation and recursive attributes to a mount.
func (r *rootfs) finishMount(dest string, o mountOptions) error {
	if len(o.propagation) == 0 && o.recAttrSet == 0 && o.recAttrClr == 0 {
		return nil
	}
	f, err := r.reopen(dest)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range o.propagation {
		if err := unix.Mount("", procFd(f), "", p, ""); err != nil {
			return fmt.Errorf("set propagation %#x: %w", p, err)
		}
	}
	if o.recAttrSet != 0 || o.recAttrClr != 0 {
		attr := &unix.MountAttr{Attr_set: o.recAttrSet, Attr_clr: o.recAttrClr}
		if err := unix.MountSetattr(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("set recursive mount attributes: %w", err)
		}
	}
	return nil
}

// mountCgroup shows the container its own cgroups at m.Destination. With a
// cgroup namespace a fresh cgroup2 mount is already scoped; otherwise each
// hierarchy's directory of this container is bound in.
func (r *rootfs) mountCgroup(m specs.Mount, o mountOptions) error {
	target, err := r.mkdirIn(m.Destination, 0o755)
	if err != nil {
		return err
	}
	defer target.Close()
	hier := cgroupMounts(r.hostMounts)
	flags := o.flags | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if len(hier) == 1 && hier[0].fstype == "cgroup2" && hier[0].mountpoint == "/sys/fs/cgroup" {
		if r.cgroupNS {
			if err := unix.Mount("cgroup2", procFd(target), "cgroup2", flags, ""); err != nil {
				return fmt.Errorf("mount cgroup2: %w", err)
			}
			return nil
		}
		dir := r.cgroupPaths[""]
		if dir == "" {
			return errors.New("no cgroup v2 path for this container")
		}
		return r.bindCgroupDir(dir, m.Destination, flags)
	}
	// cgroup v1 (or hybrid): a tmpfs holding one directory per hierarchy.
	if err := unix.Mount("tmpfs", procFd(target), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs for cgroups: %w", err)
	}
	for _, h := range hier {
		dir := r.containerCgroupDir(h.mountpoint)
		if dir == "" {
			continue
		}
		name := filepath.Base(h.mountpoint)
		if err := r.bindCgroupDir(dir, filepath.Join(m.Destination, name), flags); err != nil {
			return err
		}
		// cpu,cpuacct is reached by either name, as on the host.
		if parts := strings.Split(name, ","); len(parts) > 1 {
			d, err := r.reopen(m.Destination)
			if err != nil {
				return err
			}
			for _, p := range parts {
				unix.Symlinkat(name, int(d.Fd()), p)
			}
			d.Close()
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		f, err := r.reopen(m.Destination)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.Mount("", procFd(f), "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
			return fmt.Errorf("remount cgroup tmpfs read-only: %w", err)
		}
	}
	return nil
}

func (r *rootfs) containerCgroupDir(mountpoint string) string {
	for _, p := range r.cgroupPaths {
		if strings.HasPrefix(p, mountpoint+"/") || p == mountpoint {
			return p
		}
	}
	return ""
}

func (r *rootfs) bindCgroupDir(dir, dest string, flags uintptr) error {
	return r.bindMount(specs.Mount{Source: dir, Destination: dest, Type: "bind"}, mountOptions{flags: flags | unix.MS_BIND})
}

type cgroupMount struct{ mountpoint, fstype string }

// cgroupMounts lists the host's cgroup hierarchies.
func cgroupMounts(mounts []mountinfo.Entry) []cgroupMount {
	var out []cgroupMount
	for _, m := range mounts {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, cgroupMount{mountpoint: m.Mountpoint, fstype: m.FSType})
		}
	}
	return out
}

// pivotRoot makes the rootfs the process's / and detaches the host's
// mounts from its view. The fchdir dance pivots without a put_old
// directory inside the image.
func pivotRoot(root string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	// Keep the unmount of the old root from propagating back to the host.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// moveRoot is --no-pivot: for roots pivot_root cannot leave (an initramfs).
func moveRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.Mount(root, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs %s to /: %w", root, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

// maskPaths hides host information: files get /dev/null bound over them,
// directories an empty read-only tmpfs.
func maskPaths(paths []string) error {
	for _, p := range paths {
		err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		if errors.Is(err, unix.ENOTDIR) {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0k")
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mask path %s: %w", p, err)
		}
	}
	return nil
}

func readonlyPaths(paths []string) error {
	for _, p := range paths {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("bind read-only path %s: %w", p, err)
		}
		if err := remountReadonly(p); err != nil {
			return fmt.Errorf("read-only path %s: %w", p, err)
		}
	}
	return nil
}

// remountReadonly makes the mount at path read-only, keeping the flags
// that an unprivileged user namespace may not clear.
func remountReadonly(path string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return err
	}
	locked := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC|locked, "")
}
