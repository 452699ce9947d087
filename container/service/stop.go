package service

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// DefaultStopTimeout is dockerd's grace period before SIGKILL.
const DefaultStopTimeout = 10

// Stop sends the container's stop signal (or signal), waits timeout
// seconds (nil: the container's StopTimeout or 10; negative: forever), then
// kills it.
func (s *Service) Stop(ctx context.Context, name, signal string, timeout *int) error {
	_, c, unlock, err := s.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	return s.stop(ctx, c, signal, timeout)
}

// stop is Stop with c.op held.
func (s *Service) stop(ctx context.Context, c *ctr, signal string, timeout *int) error {
	rec, err := s.store.Get(c.id)
	if err != nil {
		return err
	}
	if rec.State.Restarting {
		// Between two runs: cancel the restart.
		rec, err = s.store.Update(c.id, func(r *store.Container) error {
			r.State.Running, r.State.Restarting, r.HasBeenManuallyStopped = false, false, true
			return nil
		})
		c.notify()
		if err == nil {
			s.publish(rec, events.ActionStop, nil)
		}
		return err
	}
	if !rec.State.Running {
		return fmt.Errorf("container %s is not running: %w", rec.ID, errdefs.ErrNotModified)
	}
	if signal == "" {
		signal = rec.Config.StopSignal
	}
	sig := syscall.SIGTERM
	if signal != "" {
		if sig, err = spec.ParseSignal(signal); err != nil {
			return err
		}
	}
	t := DefaultStopTimeout
	if rec.Config.StopTimeout != nil {
		t = *rec.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	if _, err := s.store.Update(c.id, func(r *store.Container) error { r.HasBeenManuallyStopped = true; return nil }); err != nil {
		return err
	}
	c.mu.Lock()
	sh, exited := c.shim, c.exited
	c.stopping = true
	c.mu.Unlock()
	if sh == nil {
		return fmt.Errorf("container %s: no shim: %w", rec.ID, errdefs.ErrUnavailable)
	}
	if rec.State.Paused {
		s.unpause(c, rec) // a frozen process cannot act on the signal
	}
	// The kill event goes first: the exit's die may be reported before
	// the shim's answer to the kill comes back.
	s.publish(rec, events.ActionKill, map[string]string{"signal": fmt.Sprint(int(sig))})
	sh.Kill(ctx, sig, false)
	var grace <-chan time.Time
	if t >= 0 {
		grace = time.After(time.Duration(t) * time.Second)
	}
	select {
	case <-exited:
	case <-grace:
		s.publish(rec, events.ActionKill, map[string]string{"signal": "9"})
		sh.Kill(ctx, syscall.SIGKILL, true)
		select {
		case <-exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	s.publish(rec, events.ActionStop, nil)
	return nil
}

// Kill sends signal ("" for SIGKILL) to the container's process.
func (s *Service) Kill(ctx context.Context, name, signal string) error {
	rec, err := s.store.Get(name)
	if err != nil {
		return fmt.Errorf("Cannot kill container: %s: %w", name, err)
	}
	sig := syscall.SIGKILL
	if signal != "" {
		if sig, err = spec.ParseSignal(signal); err != nil {
			return err
		}
	}
	c := s.ctr(rec.ID)
	c.mu.Lock()
	if starting := c.starting; starting != nil {
		// Its output may be what the signal answers (docker run's
		// --sig-proxy): let the start finish recording first.
		c.mu.Unlock()
		select {
		case <-starting:
		case <-ctx.Done():
			return ctx.Err()
		}
		if rec, err = s.store.Get(rec.ID); err != nil {
			return err
		}
		c.mu.Lock()
	}
	sh := c.shim
	if sh != nil && rec.State.Running {
		c.stopping = true // a kill by the user is not a failure to restart from
	}
	c.mu.Unlock()
	if sh == nil || !rec.State.Running || rec.State.Restarting {
		return fmt.Errorf("Cannot kill container: %s: Container %s is not running: %w", name, rec.ID, errdefs.ErrConflict)
	}
	if _, err := s.store.Update(rec.ID, func(r *store.Container) error { r.HasBeenManuallyStopped = true; return nil }); err != nil {
		return err
	}
	// The event first, as in stop: the die may be reported before the
	// shim answers.
	s.publish(rec, events.ActionKill, map[string]string{"signal": fmt.Sprint(int(sig))})
	if err := sh.Kill(ctx, sig, false); err != nil {
		return fmt.Errorf("Cannot kill container: %s: %w", name, err)
	}
	if sig == syscall.SIGKILL && rec.State.Paused {
		// As dockerd: thaw after the SIGKILL, else it waits on the frozen
		// cgroup until an unpause. On cgroup v2 the kill may already have
		// ended the process, so a failed resume is no failure of the kill.
		// Not under c.op: a stop may hold it while it waits for this exit.
		if err := s.unpause(c, rec); err != nil {
			s.opts.Logf("container %s: resume after SIGKILL: %v", rec.ID, err)
		}
	}
	return nil
}

// Restart stops the container (if it runs) and starts it.
func (s *Service) Restart(ctx context.Context, name, signal string, timeout *int) error {
	rec, c, unlock, err := s.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	c.mu.Lock()
	c.restarting = true
	c.mu.Unlock()
	err = s.stop(ctx, c, signal, timeout)
	// The exit's onExit has read the flag by now (stop waits for it).
	c.mu.Lock()
	c.restarting = false
	c.mu.Unlock()
	if err != nil && !errdefs.IsNotModified(err) {
		return err
	}
	if rec, err = s.store.Get(rec.ID); err != nil {
		return err
	}
	if err := s.start(ctx, c, rec, true); err != nil {
		return err
	}
	s.publish(rec, events.ActionRestart, nil)
	return nil
}

// Pause freezes the container's processes.
func (s *Service) Pause(ctx context.Context, name string) error {
	rec, c, err := s.running(name)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if rec.State.Paused {
		return fmt.Errorf("Container %s is already paused: %w", rec.ID, errdefs.ErrConflict)
	}
	if err := s.runtime("pause", rec.ID); err != nil {
		return err
	}
	if rec, err = s.store.SetState(rec.ID, func(r *store.Container) error { r.State.Paused = true; return nil }); err != nil {
		return err
	}
	c.notify()
	s.publish(rec, events.ActionPause, nil)
	return nil
}

// Unpause thaws them.
func (s *Service) Unpause(ctx context.Context, name string) error {
	// As dockerd, a stopped container is "not paused", not "not running".
	rec, err := s.store.Get(name)
	if err != nil {
		return err
	}
	c := s.ctr(rec.ID)
	c.op.Lock()
	defer c.op.Unlock()
	if !rec.State.Paused {
		return fmt.Errorf("Container %s is not paused: %w", rec.ID, errdefs.ErrConflict)
	}
	return s.unpause(c, rec)
}

func (s *Service) unpause(c *ctr, rec *store.Container) error {
	if err := s.runtime("resume", rec.ID); err != nil {
		return err
	}
	rec, err := s.store.SetState(rec.ID, func(r *store.Container) error { r.State.Paused = false; return nil })
	if err != nil {
		return err
	}
	c.notify()
	s.publish(rec, events.ActionUnPause, nil)
	return nil
}

// running returns the record of a running container, or dockerd's
// conflict.
func (s *Service) running(name string) (*store.Container, *ctr, error) {
	rec, err := s.store.Get(name)
	if err != nil {
		return nil, nil, err
	}
	if !rec.State.Running || rec.State.Restarting {
		return nil, nil, fmt.Errorf("Container %s is not running: %w", rec.ID, errdefs.ErrConflict)
	}
	return rec, s.ctr(rec.ID), nil
}

// runtime runs a berth-runtime command on the service's runtime root.
func (s *Service) runtime(args ...string) error {
	args = append([]string{"--root", s.runtimeRoot()}, args...)
	out, err := exec.Command(s.opts.Runtime, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", s.opts.Runtime, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Wait returns a channel that yields the container's exit once cond is
// met: not-running (now or later), next-exit (the end of the run after
// this call) or removed. It ends with ctx.
func (s *Service) Wait(ctx context.Context, name string, cond container.WaitCondition) (<-chan container.WaitResponse, error) {
	rec, err := s.store.Get(name)
	if err != nil {
		return nil, err
	}
	c := s.ctr(rec.ID)
	since := rec.State.FinishedAt
	out := make(chan container.WaitResponse, 1)
	go func() {
		last := rec
		for {
			c.mu.Lock()
			changed := c.changed
			c.mu.Unlock()
			cur, err := s.store.Get(rec.ID)
			gone := err != nil
			if !gone {
				last = cur
			} else {
				c.mu.Lock()
				if c.final != nil {
					last = c.final
				}
				c.mu.Unlock()
			}
			done := false
			switch cond {
			case container.WaitConditionRemoved:
				done = gone
			case container.WaitConditionNextExit:
				done = gone || last.State.FinishedAt.After(since)
			default:
				done = gone || !last.State.Running
			}
			if done {
				resp := container.WaitResponse{StatusCode: int64(last.State.ExitCode)}
				// A removal clears the error, as dockerd's: docker run --rm
				// of a container that failed to start prints the start's
				// error only.
				if last.State.Error != "" && !gone {
					resp.Error = &container.WaitExitError{Message: last.State.Error}
				}
				out <- resp
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
