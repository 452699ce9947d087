package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/cgroups"
)

// Start lets a created container exec its program.
func Start(root, id string) error {
	s, unlock, err := loadLocked(root, id)
	if err != nil {
		return err
	}
	defer unlock()
	if st := s.Status(); st != Created {
		return fmt.Errorf("cannot start container %q: it is %s, not created", id, st)
	}
	if err := s.openFifo(); err != nil {
		return fmt.Errorf("start container %q: %w", id, err)
	}
	if h := s.configLite().Hooks; h != nil && len(h.Poststart) > 0 {
		if err := runHooks("poststart", h.Poststart, s.OCIState()); err != nil {
			// The spec says a failing poststart hook is a warning, the
			// container keeps running; runc kills it. We follow runc.
			killAll(s, unix.SIGKILL)
			return err
		}
	}
	return nil
}

// Kill sends sig to the container's first process, or with all to every
// process in its cgroup.
func Kill(root, id string, sig unix.Signal, all bool) error {
	s, err := Load(root, id)
	if err != nil {
		return err
	}
	st := s.Status()
	if st == Stopped || st == Creating {
		return fmt.Errorf("cannot kill container %q: it is %s", id, st)
	}
	if all {
		return killAll(s, sig)
	}
	return s.signalInit(sig)
}

// signalInit goes through a pidfd that was checked against the recorded
// start time: a recycled pid never gets the signal.
func (s *State) signalInit(sig unix.Signal) error {
	pidfd, err := unix.PidfdOpen(s.InitPid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("container %q: process already finished", s.ID)
		}
		return fmt.Errorf("container %q: %w", s.ID, err)
	}
	defer unix.Close(pidfd)
	if !s.initAlive() {
		return fmt.Errorf("container %q: process already finished", s.ID)
	}
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal %d to container %q: %w", sig, s.ID, err)
	}
	return nil
}

func killAll(s *State, sig unix.Signal) error {
	cg, err := cgroups.Load(s.CgroupPaths)
	if err != nil {
		return err
	}
	// Freeze so that nothing forks past us, as runc does for SIGKILL.
	frozen := sig == unix.SIGKILL && cg.Freeze() == nil
	pids, err := cg.Pids()
	if err == nil {
		for _, p := range pids {
			unix.Kill(p, sig)
		}
	}
	if frozen {
		cg.Thaw()
	}
	return err
}

// Delete removes a stopped (or, with force, any) container: its processes,
// cgroups and state. Poststop hooks run last.
func Delete(root, id string, force bool) error {
	s, unlock, err := loadLocked(root, id)
	if err != nil {
		if force && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer unlock()
	switch st := s.Status(); st {
	case Stopped:
	case Created:
		killAll(s, unix.SIGKILL)
	case Creating:
		if !force {
			return fmt.Errorf("cannot delete container %q: it is still being created", id)
		}
	default:
		if !force {
			return fmt.Errorf("cannot delete container %q that is not stopped: %s", id, st)
		}
		killAll(s, unix.SIGKILL)
	}
	return s.destroy()
}

func (s *State) destroy() error {
	if s.InitPid > 0 {
		waitGone(s, 5*time.Second)
	}
	var errs []error
	if s.CgroupPaths != nil {
		if cg, err := cgroups.Load(s.CgroupPaths); err == nil {
			if pids, _ := cg.Pids(); len(pids) > 0 {
				killAll(s, unix.SIGKILL)
			}
			for i := 0; ; i++ {
				err := cg.Destroy()
				if err == nil {
					break
				}
				if i == 100 {
					errs = append(errs, err)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	if h := s.configLite().Hooks; h != nil && len(h.Poststop) > 0 {
		st := s.OCIState()
		st.Status = Stopped
		// Every poststop hook runs; failures are reported, not fatal.
		for i, hook := range h.Poststop {
			if err := runHooks(fmt.Sprintf("poststop#%d", i), h.Poststop[i:i+1], st); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", hook.Path, err))
			}
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitGone waits for the first process to die (it may not be our child).
func waitGone(s *State, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for s.initAlive() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

// Pause freezes every process of the container.
func Pause(root, id string) error {
	s, err := Load(root, id)
	if err != nil {
		return err
	}
	if st := s.Status(); st != Running && st != Created {
		return fmt.Errorf("cannot pause container %q: it is %s", id, st)
	}
	cg, err := cgroups.Load(s.CgroupPaths)
	if err != nil {
		return err
	}
	return cg.Freeze()
}

// Resume thaws a paused container.
func Resume(root, id string) error {
	s, err := Load(root, id)
	if err != nil {
		return err
	}
	if st := s.Status(); st != Paused {
		return fmt.Errorf("cannot resume container %q: it is %s, not paused", id, st)
	}
	cg, err := cgroups.Load(s.CgroupPaths)
	if err != nil {
		return err
	}
	return cg.Thaw()
}

// Pids lists the host pids of every process in the container.
func Pids(root, id string) ([]int, error) {
	s, err := Load(root, id)
	if err != nil {
		return nil, err
	}
	if s.Status() == Stopped {
		return nil, fmt.Errorf("container %q is stopped", id)
	}
	cg, err := cgroups.Load(s.CgroupPaths)
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Stats reads the container's resource usage.
func Stats(root, id string) (*cgroups.Stats, error) {
	s, err := Load(root, id)
	if err != nil {
		return nil, err
	}
	if st := s.Status(); st == Stopped {
		return nil, fmt.Errorf("container %q is stopped", id)
	}
	cg, err := cgroups.Load(s.CgroupPaths)
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}

// openFifo releases the container process blocked on the exec fifo. It
// never blocks on a process that died: the open is non-blocking and the
// read polls while the process is alive.
func (s *State) openFifo() error {
	fifo := filepath.Join(s.dir, fifoName)
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(fd, buf)
		if n == 1 {
			if err := os.Remove(fifo); err != nil {
				return err
			}
			return s.waitExec(fd)
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("read exec fifo: %w", err)
		}
		if !s.initAlive() {
			return errors.New("container process exited before start")
		}
		if n == 0 { // no writer yet: it is about to open
			time.Sleep(time.Millisecond)
			continue
		}
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 5)
	}
}

// waitExec waits until the container process has exec'd its program. The
// init keeps its end of the exec fifo open, close-on-exec, through the
// startContainer hooks: EOF means the program runs (or the process died),
// so poststart hooks run after it, as the spec orders them.
func (s *State) waitExec(fd int) error {
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(fd, buf)
		if n == 0 && err == nil {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("read exec fifo: %w", err)
		}
		if !s.initAlive() {
			return nil
		}
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 10)
	}
}

// Update changes the resource limits of a created, running or paused
// container and records them in its state.
func Update(root, id string, r *specs.LinuxResources) error {
	s, unlock, err := loadLocked(root, id)
	if err != nil {
		return err
	}
	defer unlock()
	if st := s.Status(); st == Stopped || st == Creating {
		return fmt.Errorf("cannot update container %q: it is %s", id, st)
	}
	cg, err := cgroups.Load(s.CgroupPaths)
	if err != nil {
		return err
	}
	if err := cg.Set(r); err != nil {
		return fmt.Errorf("update container %q: %w", id, err)
	}
	spec, err := s.Spec()
	if err != nil {
		return err
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	mergeResources(spec.Linux.Resources, r)
	return s.save()
}

// mergeResources records in dst every limit that src sets.
func mergeResources(dst, src *specs.LinuxResources) {
	if src.Memory != nil {
		dst.Memory = src.Memory
	}
	if src.CPU != nil {
		dst.CPU = src.CPU
	}
	if src.Pids != nil {
		dst.Pids = src.Pids
	}
	if src.BlockIO != nil {
		dst.BlockIO = src.BlockIO
	}
	if len(src.HugepageLimits) > 0 {
		dst.HugepageLimits = src.HugepageLimits
	}
	if len(src.Unified) > 0 {
		dst.Unified = src.Unified
	}
	if len(src.Devices) > 0 {
		dst.Devices = src.Devices
	}
}
