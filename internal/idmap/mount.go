package idmap

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// usernsCache keeps one user namespace per mapping for the life of the
// process: making one costs a fork and an exec.
var usernsCache = struct {
	sync.Mutex
	m map[Mapping]*os.File
}{m: map[Mapping]*os.File{}}

// UsernsFile returns an open /proc/<pid>/ns/user of a user namespace with
// mapping m, the handle mount_setattr(MOUNT_ATTR_IDMAP) takes. The file
// is shared and cached: callers must not close it.
func UsernsFile(m Mapping) (*os.File, error) {
	usernsCache.Lock()
	defer usernsCache.Unlock()
	if f := usernsCache.m[m]; f != nil {
		return f, nil
	}
	f, err := newUserns(m)
	if err != nil {
		return nil, err
	}
	usernsCache.m[m] = f
	return f, nil
}

// newUserns makes a user namespace with mapping m: a child is started in
// a new user namespace (the maps written by the parent before it execs),
// stopped at its exec by PTRACE_TRACEME so that it runs no code of its
// own, and killed once its namespace is open.
func newUserns(m Mapping) (*os.File, error) {
	// ptrace ties the tracee to this thread: start, kill and reap it here.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	p, err := os.StartProcess(exe, []string{"berth-userns-holder"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			Ptrace:      true,
			Pdeathsig:   syscall.SIGKILL,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: int(m.UID.ContainerID), HostID: int(m.UID.HostID), Size: int(m.UID.Size)}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: int(m.GID.ContainerID), HostID: int(m.GID.HostID), Size: int(m.GID.Size)}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("user namespace for %s: %w", m, err)
	}
	f, openErr := os.Open("/proc/" + strconv.Itoa(p.Pid) + "/ns/user")
	_ = p.Kill()
	_, _ = p.Wait()
	if openErr != nil {
		return nil, fmt.Errorf("user namespace for %s: %w", m, openErr)
	}
	return f, nil
}

// BindIDMapped attaches at target (an existing directory) a bind mount of
// the directory source whose ownership reads through mapping m: a file
// that source's filesystem says uid 0 shows as m's root. The mount is
// read-only when ro.
func BindIDMapped(source, target string, m Mapping, ro bool) error {
	ns, err := UsernsFile(m)
	if err != nil {
		return err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %q: %w", source, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if ro {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("idmap %q with %s: %w", source, m, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach idmapped %q at %q: %w", source, target, err)
	}
	return nil
}

// supported caches, per filesystem (st_dev), whether idmapped mounts work.
var supported sync.Map

// Supported reports whether dir's filesystem accepts idmapped mounts with
// mapping m (kernel 5.12+, and a filesystem that allows them). Where it
// does not, layers are shown through a chown'd copy.
func Supported(dir string, m Mapping) bool {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return false
	}
	if v, ok := supported.Load(st.Dev); ok {
		return v.(bool)
	}
	ok := probe(dir, m) == nil
	supported.Store(st.Dev, ok)
	return ok
}

func probe(dir string, m Mapping) error {
	ns, err := UsernsFile(m)
	if err != nil {
		return err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	// The detached clone goes away with its fd.
	return unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr)
}
