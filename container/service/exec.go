package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/errdefs"
)

// execEntry is one exec: created, then started once. Execs live in
// memory, as in dockerd: they end with their container.
type execEntry struct {
	id, ctrID string
	cfg       container.ExecCreateRequest

	done chan struct{} // closed once the exit is recorded

	mu       sync.Mutex
	started  bool
	running  bool
	pid      int
	exitCode *int
}

// ExecCreate registers cmd to run in the running container name.
func (s *Service) ExecCreate(ctx context.Context, name string, cfg container.ExecCreateRequest) (string, error) {
	rec, c, err := s.running(name)
	if err != nil {
		return "", err
	}
	if rec.State.Paused {
		return "", fmt.Errorf("Container %s is paused, unpause the container before exec: %w", name, errdefs.ErrConflict)
	}
	if len(cfg.Cmd) == 0 {
		return "", fmt.Errorf("No exec command specified: %w", errdefs.ErrInvalidArgument)
	}
	e := &execEntry{id: newID(), ctrID: rec.ID, cfg: cfg, done: make(chan struct{})}
	s.mu.Lock()
	s.execs[e.id] = e
	s.mu.Unlock()
	c.mu.Lock()
	c.execs = append(c.execs, e.id)
	c.mu.Unlock()
	s.publish(rec, events.Action("exec_create: "+strings.Join(cfg.Cmd, " ")), map[string]string{"execID": e.id})
	return e.id, nil
}

func (s *Service) exec(id string) (*execEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.execs[id]
	if e == nil {
		return nil, fmt.Errorf("No such exec instance: %s: %w", id, errdefs.ErrNotFound)
	}
	return e, nil
}

// ExecStart starts exec id and returns the connection carrying the
// streams its request attached (nil for none): Docker's stdcopy frames
// without a TTY, raw bytes with one; writes are its stdin.
func (s *Service) ExecStart(ctx context.Context, id string, consoleSize *[2]uint) (*net.UnixConn, bool, error) {
	e, err := s.exec(id)
	if err != nil {
		return nil, false, err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return nil, false, fmt.Errorf("Error: Exec command %s has already run: %w", id, errdefs.ErrConflict)
	}
	e.started = true
	e.mu.Unlock()
	conn, tty, err := s.execStart(ctx, e, consoleSize)
	if err != nil {
		// As dockerd: an exec that could not start exited 126, whatever
		// the cause, and says so to ExecInspect (docker exec's exit code).
		code := 126
		e.mu.Lock()
		e.exitCode = &code
		e.mu.Unlock()
		close(e.done)
	}
	return conn, tty, err
}

// execStart is ExecStart once e is marked started.
func (s *Service) execStart(ctx context.Context, e *execEntry, consoleSize *[2]uint) (*net.UnixConn, bool, error) {
	rec, c, err := s.running(e.ctrID)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	sh := c.shim
	c.mu.Unlock()
	if sh == nil {
		return nil, false, fmt.Errorf("Container %s is not running: %w", rec.ID, errdefs.ErrConflict)
	}
	cfg := e.cfg
	s.publish(rec, events.Action("exec_start: "+strings.Join(cfg.Cmd, " ")), map[string]string{"execID": e.id})
	proc, err := s.execProcess(e, consoleSize)
	if err != nil {
		return nil, false, err
	}
	pid, conn, err := sh.Exec(context.WithoutCancel(ctx), client.ExecOptions{
		ID: e.id, Process: proc, Stdin: cfg.AttachStdin, Stdout: cfg.AttachStdout, Stderr: cfg.AttachStderr,
	})
	if err != nil {
		if code := spec.ExitCodeOf(err.Error()); code == 126 || code == 127 {
			return nil, false, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
		return nil, false, err
	}
	e.mu.Lock()
	e.running, e.pid = true, pid
	e.mu.Unlock()
	go func() {
		st, err := sh.Wait(context.Background(), e.id)
		code := st.ExitCode
		if err != nil {
			code = 126
		}
		e.mu.Lock()
		e.running, e.exitCode = false, &code
		e.mu.Unlock()
		close(e.done)
		s.publish(rec, events.ActionExecDie, map[string]string{"execID": e.id, "exitCode": fmt.Sprint(code)})
	}()
	return conn, cfg.Tty, nil
}

// execProcess is the exec's OCI process: the container's, with the
// exec's command, TTY, env, user, working dir and privileges.
func (s *Service) execProcess(e *execEntry, consoleSize *[2]uint) (*specs.Process, error) {
	b, err := os.ReadFile(filepath.Join(s.bundleDir(e.ctrID), "config.json"))
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", e.ctrID, err)
	}
	var sp specs.Spec
	if err := json.Unmarshal(b, &sp); err != nil || sp.Process == nil {
		return nil, fmt.Errorf("exec in %s: bundle config: %v", e.ctrID, err)
	}
	p := *sp.Process
	cfg := e.cfg
	p.Args = cfg.Cmd
	p.Terminal = cfg.Tty
	p.ConsoleSize = nil
	if cfg.Tty && consoleSize != nil {
		p.ConsoleSize = &specs.Box{Height: consoleSize[0], Width: consoleSize[1]}
	} else if cfg.Tty && cfg.ConsoleSize != nil {
		p.ConsoleSize = &specs.Box{Height: cfg.ConsoleSize[0], Width: cfg.ConsoleSize[1]}
	}
	p.Env = mergeEnv(p.Env, cfg.Env)
	if cfg.WorkingDir != "" {
		p.Cwd = cfg.WorkingDir
	}
	if cfg.User != "" {
		rec, err := s.store.Get(e.ctrID)
		if err != nil {
			return nil, err
		}
		u, err := spec.ResolveUser(sp.Root.Path, cfg.User, rec.HostConfig.GroupAdd)
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}
	}
	if cfg.Privileged {
		all := spec.AllCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	return &p, nil
}

// mergeEnv overrides base's variables with extra's.
func mergeEnv(base, extra []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// ExecWait waits until exec id's exit is recorded (its output may end a
// moment before): what a client asks of ExecInspect after the stream is
// then the final answer.
func (s *Service) ExecWait(ctx context.Context, id string) error {
	e, err := s.exec(id)
	if err != nil {
		return err
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ExecResize sets the exec's TTY size.
func (s *Service) ExecResize(ctx context.Context, id string, height, width uint) error {
	e, err := s.exec(id)
	if err != nil {
		return err
	}
	c := s.ctr(e.ctrID)
	c.mu.Lock()
	sh := c.shim
	c.mu.Unlock()
	if sh == nil {
		return fmt.Errorf("Container %s is not running: %w", e.ctrID, errdefs.ErrConflict)
	}
	return sh.Resize(ctx, id, uint16(height), uint16(width))
}

// ExecInspect describes exec id.
func (s *Service) ExecInspect(ctx context.Context, id string) (container.ExecInspectResponse, error) {
	e, err := s.exec(id)
	if err != nil {
		return container.ExecInspectResponse{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg := e.cfg
	priv := cfg.Privileged
	r := container.ExecInspectResponse{
		ID: e.id, Running: e.running, ExitCode: e.exitCode, ContainerID: e.ctrID, Pid: e.pid,
		OpenStdin: cfg.AttachStdin, OpenStdout: cfg.AttachStdout, OpenStderr: cfg.AttachStderr,
		DetachKeys: []byte(cfg.DetachKeys),
		ProcessConfig: &container.ExecProcessConfig{
			Tty: cfg.Tty, Entrypoint: cfg.Cmd[0], Arguments: cfg.Cmd[1:], Privileged: &priv, User: cfg.User,
		},
	}
	return r, nil
}

// dropExecs forgets the execs of c (its run ended).
func (s *Service) dropExecs(c *ctr) {
	c.mu.Lock()
	ids := c.execs
	c.execs = nil
	c.mu.Unlock()
	s.mu.Lock()
	for _, id := range ids {
		delete(s.execs, id)
	}
	s.mu.Unlock()
}
