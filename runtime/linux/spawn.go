package linux

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/nsenter"
	"github.com/berth-dev/berth/runtime/rawio"
	"github.com/berth-dev/berth/runtime/seccomp"
	"github.com/berth-dev/berth/runtime/wire"
)

// initConfig is what the Go half of a container process is told to do,
// sent in runtime/wire's binary form (json tags name the fields for
// humans; `json:"-"` keeps one out of the message).
type initConfig struct {
	ID           string            `json:"id"`
	Exec         bool              `json:"exec"` // join a running container instead of creating one
	Spec         *initSpec         `json:"spec"`
	Process      *specs.Process    `json:"process"`
	Rootfs       string            `json:"rootfs"`
	Bundle       string            `json:"bundle"`
	NoPivot      bool              `json:"no_pivot"`
	Seccomp      *seccomp.Filter   `json:"-"`           // compiled by the runtime, loaded by init; sent as msgSeccomp
	HasSeccomp   bool              `json:"has_seccomp"` // a msgSeccomp follows the config
	NoNewKeyring bool              `json:"no_new_keyring"`
	FifoFd       int               `json:"fifo_fd"`    // -1: exec at once
	ConsoleFd    int               `json:"console_fd"` // -1: no terminal socket
	PreserveFds  int               `json:"preserve_fds"`
	SyncHooks    bool              `json:"sync_hooks"` // ask the runtime to run prestart/createRuntime hooks
	CgroupPaths  map[string]string `json:"cgroup_paths"`
	CgroupNS     bool              `json:"cgroup_ns"`
	NewUserNS    bool              `json:"new_user_ns"`
}

// stdio is what a container process gets as fds 0-2.
type stdio struct{ in, out, err *os.File }

func (s stdio) orDefault() stdio {
	if s.in == nil {
		s.in = os.Stdin
	}
	if s.out == nil {
		s.out = os.Stdout
	}
	if s.err == nil {
		s.err = os.Stderr
	}
	return s
}

// spawnRequest describes one container process to start.
type spawnRequest struct {
	cloneFlags  uint32
	joins       []nsPath
	timeOffsets string
	uidMaps     []specs.LinuxIDMapping
	gidMaps     []specs.LinuxIDMapping
	cgroup      cgroups.Manager // joined before any namespace is made
	resources   *specs.LinuxResources
	preserve    int // fds 3..3+preserve-1 are passed through
	fifo        *os.File
	console     *os.File
	stdio       stdio
	config      *initConfig
	oomScoreAdj *int
	onHooks     func(pid int) error // runs the runtime-side hooks when asked
}

type nsPath struct {
	flag uint32
	path string
}

// spawned is a container process that finished its setup.
type spawned struct {
	pid  int
	sock *os.File // still open: for exec, EOF means execve succeeded
}

// spawn starts a container process and drives it through its setup. On
// error the process is gone.
func spawn(req *spawnRequest) (_ *spawned, retErr error) {
	exe, err := sealedSelf()
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("init socket: %w", err)
	}
	// Non-blocking, so that os.File reads it through the netpoller: while
	// the container process sets up (most of a create), the runtime's
	// goroutine is parked instead of blocked in read(2), which would keep
	// the Go runtime's sysmon thread polling it every 20-40µs.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("init socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "init-parent")
	child := os.NewFile(uintptr(fds[1]), "init-child")
	defer child.Close()

	// fds 3.. in the child: the preserved ones, then ours.
	var extra []*os.File
	for i := 0; i < req.preserve; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved"))
	}
	next := func(f *os.File) int {
		if f == nil {
			return -1
		}
		extra = append(extra, f)
		return 2 + len(extra)
	}
	sockFd := next(child)
	req.config.FifoFd = next(req.fifo)
	req.config.ConsoleFd = next(req.console)
	req.config.PreserveFds = req.preserve

	// Only the fds listed above may reach the container process. One the
	// runtime inherited from its caller (not marked close-on-exec, beyond
	// --preserve-fds) would otherwise stay open in the init until its
	// final execve, and /proc/self/fd/N would lead out of the root, e.g.
	// as process.args[0] (CVE-2024-21626 class).
	if err := closeExtraFds(3 + req.preserve); err != nil {
		return nil, err
	}

	// The fork itself makes the new pid namespace when nothing has to be
	// joined or made before it (a user namespace, or a pid or time one
	// joined or made by nsenter): nsenter then needs no second fork, and
	// the container process is the one started here, an intermediate
	// process (and the copy of an address space) less.
	var forkFlags uint32
	if req.cloneFlags&unix.CLONE_NEWPID != 0 && req.cloneFlags&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) == 0 &&
		!slices.ContainsFunc(req.joins, func(j nsPath) bool { return j.flag&(unix.CLONE_NEWUSER|unix.CLONE_NEWPID) != 0 }) {
		forkFlags = unix.CLONE_NEWPID
	}

	io := req.stdio.orDefault()
	files := []uintptr{io.in.Fd(), io.out.Fd(), io.err.Fd()}
	for _, f := range extra {
		files = append(files, f.Fd())
	}
	// syscall.ForkExec rather than os/exec: os.StartProcess first checks,
	// once per process, that pidfds work, by starting and reaping an extra
	// child (a process creation more per runtime call, dear here).
	first, err := syscall.ForkExec(
		// Executing a sealed copy: the container can never write the
		// runtime binary through /proc/<pid>/exe (CVE-2019-5736).
		"/proc/"+strconv.Itoa(os.Getpid())+"/fd/"+strconv.Itoa(int(exe.Fd())),
		[]string{"berth-runtime", "init"},
		&syscall.ProcAttr{
			// The container process runs one goroutine: a second P would
			// only start threads to spin and park (a clone and context
			// switches each, dear on a virtualised host) before its execve.
			Env:   []string{nsenter.EnvInitPipe + "=" + strconv.Itoa(sockFd), "GOGC=off", "GOMAXPROCS=1"},
			Files: files,
			Sys:   &syscall.SysProcAttr{Cloneflags: uintptr(forkFlags)},
		})
	// files holds bare numbers: keep their *os.Files (and finalizers) off
	// until the child has its copies.
	runtime.KeepAlive(extra)
	runtime.KeepAlive(io)
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container process: %w", err)
	}
	child.Close()
	pid := 0
	defer func() {
		if retErr != nil {
			parent.Close()
			if pid > 0 && pid != first {
				unix.Kill(pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, 0, nil)
			}
			unix.Kill(first, unix.SIGKILL)
			reap(first)
		}
	}()

	if req.cgroup != nil {
		if err := req.cgroup.Apply(first); err != nil {
			return nil, err
		}
		// Limits hold before any namespace, hook or user code exists.
		if req.resources != nil {
			if err := req.cgroup.Set(req.resources); err != nil {
				return nil, err
			}
		}
	}
	var bs bootstrap
	bs.u32(nsenter.AttrCloneFlags, req.cloneFlags&^forkFlags)
	for _, j := range req.joins {
		bs.join(j.flag, j.path)
	}
	if req.timeOffsets != "" {
		bs.str(nsenter.AttrTimeOffsets, req.timeOffsets)
	}
	if err := writeMsg(parent, nsenter.MsgBootstrap, bs.buf); err != nil {
		return nil, fmt.Errorf("send bootstrap: %w", err)
	}
	for pid == 0 {
		typ, payload, err := readMsg(parent)
		if err != nil {
			return nil, fmt.Errorf("container process exited during namespace setup: %s", reap(first))
		}
		switch typ {
		case nsenter.MsgMapReq:
			if err := writeIDMaps(first, req.uidMaps, req.gidMaps); err != nil {
				return nil, err
			}
			if err := writeMsg(parent, nsenter.MsgMapAck, nil); err != nil {
				return nil, err
			}
		case nsenter.MsgPid:
			if len(payload) != 4 {
				return nil, fmt.Errorf("bad pid message")
			}
			pid = int(int32(binary.NativeEndian.Uint32(payload)))
			if forkFlags != 0 {
				pid = first // it said 1: its pid in its own namespace
			}
		case nsenter.MsgError:
			return nil, fmt.Errorf("%s", payload)
		default:
			return nil, fmt.Errorf("unexpected message %d during namespace setup", typ)
		}
	}
	if pid != first {
		// The intermediate exits right after reporting; reap it.
		if st := reap(first); st != "exit status 0" {
			return nil, fmt.Errorf("namespace setup: %s", st)
		}
	}
	if req.oomScoreAdj != nil {
		if err := rawio.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte(strconv.Itoa(*req.oomScoreAdj))); err != nil {
			return nil, fmt.Errorf("set oom_score_adj %d: %w", *req.oomScoreAdj, err)
		}
	}
	req.config.HasSeccomp = req.config.Seccomp != nil
	cfg, err := wire.Marshal(req.config)
	if err == nil {
		err = writeMsg(parent, msgConfig, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("send config: %w", err)
	}
	if f := req.config.Seccomp; f != nil {
		b, err := f.MarshalBinary()
		if err == nil {
			err = writeMsg(parent, msgSeccomp, b)
		}
		if err != nil {
			return nil, fmt.Errorf("send seccomp filter: %w", err)
		}
	}
	for {
		typ, payload, err := readMsg(parent)
		if err != nil {
			return nil, fmt.Errorf("container process exited during setup")
		}
		switch typ {
		case msgHooks:
			if req.onHooks != nil {
				if err := req.onHooks(pid); err != nil {
					return nil, err
				}
			}
			if err := writeMsg(parent, msgHooksDone, nil); err != nil {
				return nil, err
			}
		case msgReady:
			return &spawned{pid: pid, sock: parent}, nil
		case nsenter.MsgError:
			return nil, fmt.Errorf("%s", payload)
		default:
			return nil, fmt.Errorf("unexpected message %d during setup", typ)
		}
	}
}

// reap waits for child pid and describes how it ended, as os/exec does
// ("exit status 1", "signal: killed").
func reap(pid int) string {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Sprintf("wait for process %d: %v", pid, err)
		}
		break
	}
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	format := func(ms []specs.LinuxIDMapping) []byte {
		var b strings.Builder
		for _, m := range ms {
			fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
		}
		return []byte(b.String())
	}
	base := "/proc/" + strconv.Itoa(pid) + "/"
	if len(uids) > 0 {
		if err := rawio.WriteFile(base+"uid_map", format(uids)); err != nil {
			return fmt.Errorf("write uid_map: %w", err)
		}
	}
	if len(gids) > 0 {
		if err := rawio.WriteFile(base+"gid_map", format(gids)); err != nil {
			return fmt.Errorf("write gid_map: %w", err)
		}
	}
	return nil
}

// sealedSelf returns an executable handle on the runtime binary that no
// one can write through. The container process runs from it, so its
// /proc/<pid>/exe never names a writable host binary (CVE-2019-5736).
// The cheap way is a read-only, detached clone of the binary's mount: it
// is in no mount namespace, so nobody can remount it writable. Where
// open_tree is refused (no CAP_SYS_ADMIN), a sealed memfd copy does it.
func sealedSelf() (*os.File, error) {
	if f, err := roSelf(); err == nil {
		return f, nil
	}
	return cloneSelf()
}

func roSelf() (*os.File, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return nil, err
	}
	path, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, filepath.Dir(path), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(tree)
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(tree, filepath.Base(path), unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "berth-runtime")
	// The path may name a newer binary than the one running: use it only
	// if it is the same file.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != self.Dev || st.Ino != self.Ino {
		f.Close()
		return nil, fmt.Errorf("%s changed while running", path)
	}
	return f, nil
}

// cloneSelf copies the runtime binary into a sealed memfd.
func cloneSelf() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("open own binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth-runtime", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "berth-runtime")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copy own binary: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return nil, fmt.Errorf("seal own binary: %w", err)
	}
	return dst, nil
}
