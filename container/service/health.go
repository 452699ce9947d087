package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// Health check defaults and limits, as dockerd's.
const (
	healthDefaultInterval      = 30 * time.Second
	healthDefaultTimeout       = 30 * time.Second
	healthDefaultStartInterval = 5 * time.Second
	healthDefaultRetries       = 3
	// healthMaxOutput bytes of a probe's output are kept.
	healthMaxOutput = 4096
	// healthMaxLog results are kept in State.Health.Log.
	healthMaxLog = 5
	// healthMinDuration is the shortest interval, timeout or start
	// period the API accepts (0 means the default).
	healthMinDuration = time.Millisecond
)

// healthMonitor is the prober of one run of a container.
type healthMonitor struct {
	stop chan struct{}
	done chan struct{}
}

// MergeHealthcheck fills the container's health check from the image's
// as dockerd does at create: the image's whole check when the container
// has none, else each field the container left zero.
func MergeHealthcheck(cfg *container.Config, img *container.HealthConfig) {
	if img == nil {
		return
	}
	if cfg.Healthcheck == nil {
		h := *img
		h.Test = slices.Clone(img.Test)
		cfg.Healthcheck = &h
		return
	}
	h := cfg.Healthcheck
	if len(h.Test) == 0 {
		h.Test = slices.Clone(img.Test)
	}
	if h.Interval == 0 {
		h.Interval = img.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = img.Timeout
	}
	if h.StartPeriod == 0 {
		h.StartPeriod = img.StartPeriod
	}
	if h.StartInterval == 0 {
		h.StartInterval = img.StartInterval
	}
	if h.Retries == 0 {
		h.Retries = img.Retries
	}
}

// ValidateHealthcheck refuses what dockerd's API refuses, with its
// messages.
func ValidateHealthcheck(h *container.HealthConfig) error {
	if h == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}, {"StartInterval", h.StartInterval}} {
		if d.v != 0 && d.v < healthMinDuration {
			return fmt.Errorf("%s in Healthcheck cannot be less than %s: %w", d.name, healthMinDuration, errdefs.ErrInvalidArgument)
		}
	}
	if h.Retries < 0 {
		return fmt.Errorf("Retries in Healthcheck cannot be negative: %w", errdefs.ErrInvalidArgument)
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE", "CMD", "CMD-SHELL":
		default:
			return fmt.Errorf("unknown Healthcheck type %q (want CMD, CMD-SHELL or NONE): %w", h.Test[0], errdefs.ErrInvalidArgument)
		}
		if h.Test[0] != "NONE" && len(h.Test) < 2 {
			return fmt.Errorf("Healthcheck %s needs a command: %w", h.Test[0], errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// imageHealthcheck is the HEALTHCHECK of image id's config (nil if none).
func (s *Service) imageHealthcheck(ctx context.Context, id string) (*container.HealthConfig, error) {
	insp, err := s.opts.Images.Inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	if insp.Config == nil || insp.Config.Healthcheck == nil {
		return nil, nil
	}
	h := container.HealthConfig(*insp.Config.Healthcheck)
	return &h, nil
}

// probeCommand is the command a health check runs, nil when the
// container has none (or NONE).
func probeCommand(cfg *container.Config) []string {
	h := cfg.Healthcheck
	if h == nil || len(h.Test) < 2 {
		return nil
	}
	switch h.Test[0] {
	case "CMD":
		return slices.Clone(h.Test[1:])
	case "CMD-SHELL":
		shell := []string{"/bin/sh", "-c"}
		if len(cfg.Shell) > 0 {
			shell = slices.Clone(cfg.Shell)
		}
		return append(shell, strings.Join(h.Test[1:], " "))
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// startHealth starts the prober of the run rec describes (a start or a
// daemon restart that found it running). The status is "starting" again,
// the failing streak 0; the log of earlier runs is kept, as dockerd does.
func (s *Service) startHealth(c *ctr, rec *store.Container) {
	s.stopHealth(c)
	cmd := probeCommand(rec.Config)
	if cmd == nil {
		return
	}
	rec, err := s.store.SetState(rec.ID, func(r *store.Container) error {
		h := r.State.Health
		if h == nil {
			h = &container.Health{}
		}
		h.Status, h.FailingStreak = container.Starting, 0
		r.State.Health = h
		return nil
	})
	if err != nil {
		s.opts.Logf("container %s: health check: %v", c.id, err)
		return
	}
	m := &healthMonitor{stop: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	c.health = m
	c.mu.Unlock()
	go s.probeLoop(c, m, rec, cmd)
}

// stoppedHealth marks the health of a run that ended unhealthy, as
// dockerd shows a stopped container with a health check.
func stoppedHealth(st *store.State) {
	if st.Health != nil {
		st.Health.Status = container.Unhealthy
	}
}

// stopHealth stops c's prober and waits until it has gone, so that no
// result of a finished run is recorded after its exit.
func (s *Service) stopHealth(c *ctr) {
	c.mu.Lock()
	m := c.health
	c.health = nil
	c.mu.Unlock()
	if m == nil {
		return
	}
	close(m.stop)
	<-m.done
}

// probeLoop runs the check every interval (every start interval while
// the container is starting and within its start period) until stopped.
func (s *Service) probeLoop(c *ctr, m *healthMonitor, rec *store.Container, cmd []string) {
	defer close(m.done)
	hc := rec.Config.Healthcheck
	interval := orDefault(hc.Interval, healthDefaultInterval)
	startInterval := orDefault(hc.StartInterval, healthDefaultStartInterval)
	startPeriod := hc.StartPeriod
	started := rec.State.StartedAt
	status := container.Starting
	next := func() time.Duration {
		if time.Since(started) < startPeriod && status == container.Starting {
			return startInterval
		}
		return interval
	}
	t := time.NewTimer(next())
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		results := make(chan container.HealthcheckResult, 1)
		go func() { results <- s.probe(ctx, c.id, cmd, orDefault(hc.Timeout, healthDefaultTimeout)) }()
		var res container.HealthcheckResult
		select {
		case <-m.stop:
			cancel()
			<-results
			return
		case res = <-results:
		}
		cancel()
		status = s.recordProbe(c.id, res)
		t.Reset(next())
	}
}

// recordProbe adds res to the container's health and applies dockerd's
// rules: success makes it healthy; a failure counts towards retries,
// except while it is starting within its start period. A change of
// status is a health_status event. It returns the status after res.
func (s *Service) recordProbe(id string, res container.HealthcheckResult) container.HealthStatus {
	var before container.HealthStatus
	rec, err := s.store.SetState(id, func(r *store.Container) error {
		h := r.State.Health
		if h == nil || !r.State.Running {
			return errNotProbed
		}
		before = h.Status
		h.Log = append(h.Log, &res)
		if n := len(h.Log); n > healthMaxLog {
			h.Log = slices.Clone(h.Log[n-healthMaxLog:])
		}
		hc := r.Config.Healthcheck
		retries := hc.Retries
		if retries <= 0 {
			retries = healthDefaultRetries
		}
		if res.ExitCode == 0 {
			h.FailingStreak = 0
			h.Status = container.Healthy
			return nil
		}
		if h.Status == container.Starting && res.Start.Sub(r.State.StartedAt) < hc.StartPeriod {
			return nil // still initialising: failures do not count yet
		}
		h.FailingStreak++
		if h.FailingStreak >= retries {
			h.Status = container.Unhealthy
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errNotProbed) {
			s.opts.Logf("container %s: record health check: %v", id, err)
		}
		return before
	}
	after := rec.State.Health.Status
	if after != before {
		s.publish(rec, events.Action(string(events.ActionHealthStatus)+": "+string(after)), nil)
	}
	return after
}

var errNotProbed = errors.New("container is not running with a health check")

// probe runs cmd in container id through exec, as dockerd does (so its
// exec_create/exec_start/exec_die events appear too), with the
// container's user, environment and working directory. Output (stdout
// and stderr together) is cut at healthMaxOutput bytes; an exec that
// fails or outlives timeout gives exit code -1.
func (s *Service) probe(ctx context.Context, id string, cmd []string, timeout time.Duration) container.HealthcheckResult {
	res := container.HealthcheckResult{Start: time.Now()}
	fail := func(msg string) container.HealthcheckResult {
		res.ExitCode, res.Output, res.End = -1, msg, time.Now()
		return res
	}
	execID, err := s.ExecCreate(ctx, id, container.ExecCreateRequest{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return fail(err.Error())
	}
	defer s.forgetExec(id, execID)
	conn, _, err := s.ExecStart(ctx, execID, nil)
	if err != nil {
		return fail(err.Error())
	}
	out := &limitedBuffer{max: healthMaxOutput}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if conn != nil {
			stdcopy.StdCopy(out, out, conn)
		}
	}()
	e, err := s.exec(execID)
	if err != nil {
		return fail(err.Error())
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-e.done:
	case <-timer.C:
		e.mu.Lock()
		pid := e.pid
		e.mu.Unlock()
		if pid > 0 {
			// The shim has not reaped it: it cannot be another process.
			unix.Kill(pid, unix.SIGKILL)
		}
		if conn != nil {
			conn.Close()
		}
		<-copied
		msg := fmt.Sprintf("Health check exceeded timeout (%v)", timeout)
		if o := out.String(); o != "" {
			msg += ": " + o
		}
		return fail(msg)
	case <-ctx.Done():
		if conn != nil {
			conn.Close()
		}
		<-copied
		return fail("health check cancelled: the container stopped")
	}
	<-copied
	if conn != nil {
		conn.Close()
	}
	e.mu.Lock()
	code := -1
	if e.exitCode != nil {
		code = *e.exitCode
	}
	e.mu.Unlock()
	res.ExitCode, res.Output, res.End = code, out.String(), time.Now()
	return res
}

// forgetExec drops a health check's exec once it is done: dockerd does
// not list them in ExecIDs either.
func (s *Service) forgetExec(ctrID, execID string) {
	s.mu.Lock()
	delete(s.execs, execID)
	s.mu.Unlock()
	c := s.ctr(ctrID)
	c.mu.Lock()
	c.execs = slices.DeleteFunc(c.execs, func(x string) bool { return x == execID })
	c.mu.Unlock()
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest, without failing the writer.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*limitedBuffer)(nil)
