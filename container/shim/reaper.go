package shim

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper collects every child's exit (the shim is a subreaper: runtime
// invocations, the container's init, exec'd processes and orphans all end
// up as its children) and hands each status to whoever watches that pid.
// One wait4(-1) loop owns all reaping, so nothing else may wait.
type reaper struct {
	mu        sync.Mutex
	watchers  map[int]chan unix.WaitStatus
	unclaimed map[int]unix.WaitStatus // exited before anyone watched
}

const maxUnclaimed = 1024

func newReaper() *reaper {
	r := &reaper{watchers: map[int]chan unix.WaitStatus{}, unclaimed: map[int]unix.WaitStatus{}}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD)
	go func() {
		for range sigs {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		if c, ok := r.watchers[pid]; ok {
			delete(r.watchers, pid)
			c <- ws
		} else if len(r.unclaimed) < maxUnclaimed {
			r.unclaimed[pid] = ws
		}
		r.mu.Unlock()
	}
}

// watch returns a channel that receives pid's exit status. A status reaped
// before the call is delivered too.
func (r *reaper) watch(pid int) <-chan unix.WaitStatus {
	c := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ws, ok := r.unclaimed[pid]; ok {
		delete(r.unclaimed, pid)
		c <- ws
		return c
	}
	r.watchers[pid] = c
	return c
}

// exitCode is Docker's: the code, or 128+signal.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
