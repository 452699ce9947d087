package client

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// The shims a process starts are its children until it exits (then init,
// or the nearest subreaper, adopts them). reapLater collects their exit
// statuses at SIGCHLD by pid, so that no shim stays a zombie, without a
// thread blocked in wait per shim and without taking the statuses of the
// process's other children (os/exec's).
var reaper struct {
	once sync.Once
	mu   sync.Mutex
	pids map[int]struct{}
}

func reapLater(pid int) {
	reaper.once.Do(func() {
		reaper.pids = map[int]struct{}{}
		ch := make(chan os.Signal, 16)
		signal.Notify(ch, syscall.SIGCHLD)
		go func() {
			for range ch {
				reap()
			}
		}()
	})
	reaper.mu.Lock()
	reaper.pids[pid] = struct{}{}
	reaper.mu.Unlock()
	reap() // it may have exited before the signal was asked for
}

func reap() {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	for pid := range reaper.pids {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid || errors.Is(err, syscall.ECHILD) {
			delete(reaper.pids, pid)
		}
	}
}
