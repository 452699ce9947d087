package linux

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/nsenter"
	"github.com/berth-dev/berth/runtime/seccomp"
)

// Run creates and starts a container; unless detached it waits for the
// first process, forwarding signals, removes the container and returns the
// process's exit code.
func Run(o CreateOptions, detach bool) (int, error) {
	spec, raw, err := loadSpec(o.Bundle)
	if err != nil {
		return -1, err
	}
	var tty *consoleProxy
	if spec.Process != nil && spec.Process.Terminal && o.ConsoleSocket == "" && !detach {
		if tty, err = newConsoleProxy(); err != nil {
			return -1, err
		}
		defer tty.close()
		o.console = tty.child
	}
	o.spec, o.rawSpec = spec, raw
	var sigs chan os.Signal
	if !detach {
		sigs = forwardSignals()
		defer signal.Stop(sigs)
	}
	s, err := create(o, false)
	if err != nil {
		return -1, err
	}
	if h := s.Config.Hooks; h != nil && len(h.Poststart) > 0 {
		if err := runHooks("poststart", h.Poststart, s.OCIState()); err != nil {
			killAll(s, unix.SIGKILL)
			s.destroy()
			return -1, err
		}
	}
	if detach {
		return 0, nil
	}
	if tty != nil {
		if err := tty.start(); err != nil {
			killAll(s, unix.SIGKILL)
			s.destroy()
			return -1, err
		}
	}
	code := waitForward(s.InitPid, sigs, tty)
	if tty != nil {
		tty.wait()
	}
	err = s.destroy()
	return code, err
}

// forwardSignals catches what a user would send to the container; the
// runtime relays them to the container's process.
// Registering takes a millisecond or more (the runtime starts its signal
// loop), so it runs alongside the container's setup instead of before it.
func forwardSignals() chan os.Signal {
	c := make(chan os.Signal, 32)
	go signal.Notify(c)
	return c
}

// waitForward waits for pid (a child of ours), relaying signals to it.
func waitForward(pid int, sigs chan os.Signal, tty *consoleProxy) int {
	done := make(chan unix.WaitStatus, 1)
	go func() { done <- waitPid(pid) }()
	for {
		select {
		case ws := <-done:
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		case sig := <-sigs:
			s := sig.(unix.Signal)
			switch s {
			case unix.SIGCHLD, unix.SIGURG, unix.SIGPIPE:
				// ours, not the container's (SIGURG is the Go scheduler's)
			case unix.SIGWINCH:
				if tty != nil {
					tty.resize()
				}
			default:
				unix.Kill(pid, s)
			}
		}
	}
}

// ExecOptions are the knobs of `exec`.
type ExecOptions struct {
	Root          string
	ID            string
	Process       *specs.Process
	PidFile       string
	ConsoleSocket string
	Detach        bool
	PreserveFds   int
}

// nsProcName maps OCI namespace types to /proc/<pid>/ns/ entries.
var nsProcName = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.MountNamespace: "mnt",
	specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.UserNamespace: "user",
	specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
}

// Exec runs another process in every namespace and the cgroup of a
// running container. Unless detached it waits and returns the exit code.
func Exec(o ExecOptions) (int, error) {
	s, err := Load(o.Root, o.ID)
	if err != nil {
		return -1, err
	}
	if st := s.Status(); st != Running && st != Created {
		return -1, fmt.Errorf("cannot exec in container %q: it is %s", o.ID, st)
	}
	if err := validateProcess(o.Process); err != nil {
		return -1, err
	}
	req := &spawnRequest{preserve: o.PreserveFds, oomScoreAdj: o.Process.OOMScoreAdj}
	linux, err := s.execConfig()
	if err != nil {
		return -1, err
	}
	for _, ns := range linux.Namespaces {
		req.joins = append(req.joins, nsPath{flag: nsFlags[ns.Type], path: "/proc/" + strconv.Itoa(s.InitPid) + "/ns/" + nsProcName[ns.Type]})
	}
	if req.cgroup, err = cgroups.Load(s.CgroupPaths); err != nil {
		return -1, err
	}
	var tty *consoleProxy
	if o.Process.Terminal {
		switch {
		case o.ConsoleSocket != "":
			if req.console, err = dialConsole(o.ConsoleSocket); err != nil {
				return -1, err
			}
			defer req.console.Close()
		case o.Detach:
			return -1, errors.New("exec --tty --detach needs --console-socket")
		default:
			if tty, err = newConsoleProxy(); err != nil {
				return -1, err
			}
			defer tty.close()
			req.console = tty.child
		}
	}
	filter, err := seccomp.CompileCached(linux.Seccomp, seccompCache(o.Root), Version)
	if err != nil {
		return -1, fmt.Errorf("container %q: seccomp: %w", o.ID, err)
	}
	req.config = &initConfig{ID: o.ID, Exec: true, Process: o.Process, Bundle: s.Bundle, Seccomp: filter}
	var sigs chan os.Signal
	if !o.Detach {
		sigs = forwardSignals()
		defer signal.Stop(sigs)
	}
	sp, err := spawn(req)
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", o.ID, err)
	}
	// EOF: the close-on-exec socket went away with a successful execve.
	typ, payload, err := readMsg(sp.sock)
	sp.sock.Close()
	if err == nil {
		if typ == nsenter.MsgError {
			var ws unix.WaitStatus
			unix.Wait4(sp.pid, &ws, 0, nil)
			return -1, fmt.Errorf("exec in container %s: %s", o.ID, payload)
		}
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, sp.pid); err != nil {
			return -1, err
		}
	}
	if o.Detach {
		return 0, nil
	}
	if tty != nil {
		if err := tty.start(); err != nil {
			unix.Kill(sp.pid, unix.SIGKILL)
			return -1, err
		}
	}
	code := waitForward(sp.pid, sigs, tty)
	if tty != nil {
		tty.wait()
	}
	return code, nil
}

// waitPid reaps pid, a child of ours. It waits on a pidfd through the
// netpoller, not in a blocking wait4: a thread blocked in a system call
// keeps the Go runtime's sysmon thread waking every 20-40µs to watch it
// (dear on a virtualised host), while a parked goroutine lets it sleep.
func waitPid(pid int) unix.WaitStatus {
	var ws unix.WaitStatus
	if pfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK); err == nil {
		f := os.NewFile(uintptr(pfd), "pidfd")
		defer f.Close()
		if rc, err := f.SyscallConn(); err == nil {
			var werr error
			err = rc.Read(func(uintptr) bool {
				for {
					wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
					if err == unix.EINTR {
						continue
					}
					werr = err
					// 0: still running; wait for the pidfd to turn readable.
					return err != nil || wpid != 0
				}
			})
			if err == nil && werr == nil {
				return ws
			}
		}
	}
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			return ws
		}
	}
}
