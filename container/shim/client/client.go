// Package client is berthd's side of berth-shim: Start launches a shim for
// a container and returns once `runtime create` is done; Connect finds a
// running shim again after a daemon restart (or the exit it recorded); a
// *Shim drives the container: Start, Kill, Resize, Exec, Attach, Wait,
// State. Every call is one short connection to the shim's control socket
// (protocol in package shim), so a *Shim holds no resources and is safe
// for concurrent use.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/atomicfile"
)

// Shim is a handle on one container's shim.
type Shim struct {
	dir     string
	id      string
	pid     int
	shimPid int
	exit    *shim.ExitStatus // set when Connect found only exit.json
}

// ErrExited is returned (wrapped, with errdefs.ErrConflict) by operations
// on a container whose shim has recorded its exit and gone.
var ErrExited = errors.New("container has exited")

// Start writes cfg to stateDir/shim.json, launches berth-shim detached
// from the caller (new session, stdio /dev/null, reparented away: the
// daemon never has to reap it) and returns once the shim has run `runtime
// create`: then the container exists, is not started, and output can be
// attached to without loss. A runtime failure comes back as the runtime's
// own message. If ctx ends first, Start returns its error and the shim
// carries on; Connect and Kill clean it up.
func Start(ctx context.Context, stateDir string, cfg shim.Config) (*Shim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	bin, err := shimBinary(cfg.Binary)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return nil, fmt.Errorf("shim state dir: %w", err)
	}
	if c, err := dial(stateDir); err == nil {
		c.Close()
		// A shim that has recorded its container's exit still answers
		// its last waiters for a moment: a quick restart waits for it.
		if _, exited := readExit(stateDir); !exited || !waitSocketGone(ctx, stateDir, 3*time.Second) {
			return nil, fmt.Errorf("container %s: a shim is already running in %s: %w", cfg.ID, stateDir, errdefs.ErrConflict)
		}
	}
	// A restarted container reuses its state dir: forget the last run.
	for _, f := range []string{shim.ExitFile, shim.SocketFile, shim.RuntimeLog} {
		if err := os.Remove(filepath.Join(stateDir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("clear %s: %w", f, err)
		}
	}
	if err := writeFileAtomic(filepath.Join(stateDir, shim.ConfigFile), cfg); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// The shim runs in a session of its own (stdio /dev/null: it reports
	// on fd 3 and in shim.log) and outlives this process; until then this
	// process reaps it (reapLater), without a thread waiting per shim.
	cmd := exec.Command(bin, stateDir)
	cmd.Dir = stateDir
	cmd.Env = shimEnv()
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	reapLater(cmd.Process.Pid)
	cmd.Process.Release()
	// The shim writes one Ready line and closes the pipe.
	if dl, ok := ctx.Deadline(); ok {
		r.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })
	defer stop()
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("container %s: waiting for the shim: %w", cfg.ID, ctx.Err())
		}
		return nil, fmt.Errorf("container %s: waiting for the shim: %w", cfg.ID, err)
	}
	var ready shim.Ready
	if err := json.Unmarshal(bytes.TrimSpace(data), &ready); err != nil {
		return nil, fmt.Errorf("container %s: the shim exited without reporting (see %s): %q", cfg.ID, filepath.Join(stateDir, shim.LogFile), data)
	}
	if ready.Error != "" {
		// The shim exits right after reporting; let it be gone so that the
		// caller can retry or clean up without racing it.
		waitExit(ready.ShimPid, 2*time.Second)
		return nil, fmt.Errorf("container %s: %s", cfg.ID, ready.Error)
	}
	return &Shim{dir: stateDir, id: cfg.ID, pid: ready.Pid, shimPid: ready.ShimPid}, nil
}

// shimEnv is the daemon's environment with GOMAXPROCS=1. The shim sets
// that itself, but only once its Go runtime has started with a P per CPU:
// what it allocated on the second P stays in spans of its own, and the
// Ps' caches stay too (about 230 kB of RSS per container here).
func shimEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
	return append(env, "GOMAXPROCS=1")
}

// waitExit polls until process pid is gone or a zombie, at most d.
func waitExit(pid int, d time.Duration) {
	if pid <= 0 {
		return
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || bytes.Contains(b, []byte(") Z ")) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitSocketGone waits up to d for the shim socket in dir to stop
// answering.
func waitSocketGone(ctx context.Context, dir string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
		c, err := dial(dir)
		if err != nil {
			return true
		}
		c.Close()
	}
	return false
}

func shimBinary(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "berth-shim")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("berth-shim")
	if err != nil {
		return "", fmt.Errorf("berth-shim executable: %w", err)
	}
	return p, nil
}

// Connect returns a handle on the shim of stateDir: a live shim (after a
// daemon restart), or, when the shim has gone after recording the exit, a
// handle whose Exited reports it and whose Wait returns it. With neither
// it returns an error wrapping errdefs.ErrNotFound.
func Connect(ctx context.Context, stateDir string) (*Shim, error) {
	s := &Shim{dir: stateDir}
	st, err := s.State(ctx)
	if err == nil {
		s.id, s.pid, s.shimPid = st.ID, st.Pid, st.ShimPid
		return s, nil
	}
	if e, ok := readExit(stateDir); ok {
		s.exit = e
		s.pid = e.Pid
		if cfg, err := readConfig(stateDir); err == nil {
			s.id = cfg.ID
		}
		return s, nil
	}
	return nil, fmt.Errorf("shim in %s: not running (%v) and no exit recorded: %w", stateDir, err, errdefs.ErrNotFound)
}

func readConfig(dir string) (shim.Config, error) {
	var c shim.Config
	b, err := os.ReadFile(filepath.Join(dir, shim.ConfigFile))
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	return c, err
}

func readExit(dir string) (*shim.ExitStatus, bool) {
	b, err := os.ReadFile(filepath.Join(dir, shim.ExitFile))
	if err != nil {
		return nil, false
	}
	var e shim.ExitStatus
	if json.Unmarshal(b, &e) != nil {
		return nil, false
	}
	return &e, true
}

// Pid is the container's init process (host pid namespace).
func (s *Shim) Pid() int { return s.pid }

// ShimPid is the shim's own pid (0 if the shim is gone).
func (s *Shim) ShimPid() int { return s.shimPid }

// Dir is the shim's state directory.
func (s *Shim) Dir() string { return s.dir }

// Exited reports the recorded exit when Connect found the shim gone.
func (s *Shim) Exited() (shim.ExitStatus, bool) {
	if s.exit == nil {
		return shim.ExitStatus{}, false
	}
	return *s.exit, true
}

// Close releases the handle. The shim and the container are unaffected.
func (s *Shim) Close() error { return nil }

// Start runs `runtime start` (or, for a shim started with DeferCreate,
// `runtime run --detach`): the container's process begins. Pid has the
// process's pid afterwards.
func (s *Shim) Start(ctx context.Context) error {
	r, err := s.call(ctx, shim.Request{Op: shim.OpStart})
	if err == nil && r.Pid > 0 {
		s.pid = r.Pid
	}
	return err
}

// Kill sends sig to the container's init, or with all to every process
// in the container.
func (s *Shim) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := s.call(ctx, shim.Request{Op: shim.OpKill, Signal: int(sig), All: all})
	return err
}

// Resize sets the terminal size of the container (execID "") or of an
// exec'd process.
func (s *Shim) Resize(ctx context.Context, execID string, height, width uint16) error {
	_, err := s.call(ctx, shim.Request{Op: shim.OpResize, ExecID: execID, Height: height, Width: width})
	return err
}

// State returns the shim's view of the container.
func (s *Shim) State(ctx context.Context) (shim.State, error) {
	if s.exit != nil {
		e := *s.exit
		return shim.State{ID: s.id, Pid: s.pid, Status: shim.StatusStopped, StartedAt: e.StartedAt, Exit: &e}, nil
	}
	r, err := s.call(ctx, shim.Request{Op: shim.OpState})
	if err != nil {
		return shim.State{}, err
	}
	if r.State == nil {
		return shim.State{}, errors.New("shim answered state without a state")
	}
	return *r.State, nil
}

// Wait blocks until the container (execID "") or an exec'd process has
// exited and its output is drained, and returns how it ended. ctx ends the
// wait, not the process. If the shim exits meanwhile, the container's exit
// is read from exit.json.
func (s *Shim) Wait(ctx context.Context, execID string) (shim.ExitStatus, error) {
	if s.exit != nil && execID == "" {
		return *s.exit, nil
	}
	r, err := s.call(ctx, shim.Request{Op: shim.OpWait, ExecID: execID})
	if err != nil {
		if execID == "" && ctx.Err() == nil {
			// The shim exits right after recording the exit: a request
			// that comes late finds the socket gone or closed.
			if e, ok := readExit(s.dir); ok {
				return *e, nil
			}
		}
		return shim.ExitStatus{}, err
	}
	if r.Exit == nil {
		return shim.ExitStatus{}, errors.New("shim answered wait without an exit status")
	}
	return *r.Exit, nil
}

// AttachOptions select the streams of an attach.
type AttachOptions struct {
	ExecID                string // "" for the container
	Stdin, Stdout, Stderr bool
}

// Attach returns a connection carrying the process's stdio: reads give
// Docker's stdcopy frames (raw bytes with a TTY), writes go to stdin, and
// CloseWrite ends stdin. It closes when the output has ended. Attaching
// before Start loses no output.
func (s *Shim) Attach(ctx context.Context, o AttachOptions) (*net.UnixConn, error) {
	c, _, err := s.open(ctx, shim.Request{Op: shim.OpAttach, ExecID: o.ExecID, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr})
	return c, err
}

// ExecOptions describe a process to run in the running container.
type ExecOptions struct {
	ID      string         // unique in the container: [A-Za-z0-9_.-]{1,128}
	Process *specs.Process // Terminal decides between pipes and a pty
	// Stdin, Stdout, Stderr: streams to attach. Stdin also gives the
	// process a stdin pipe, closed when the client ends it (as Docker's
	// exec). With none, no stream is returned and output is discarded.
	Stdin, Stdout, Stderr bool
}

// Exec starts o.Process and returns its host pid and, when streams were
// asked for, the connection carrying them (as Attach's, opened before the
// process started: no output is lost).
func (s *Shim) Exec(ctx context.Context, o ExecOptions) (int, *net.UnixConn, error) {
	if o.Process == nil {
		return 0, nil, fmt.Errorf("exec %s: no process: %w", o.ID, errdefs.ErrInvalidArgument)
	}
	proc, err := json.Marshal(o.Process)
	if err != nil {
		return 0, nil, err
	}
	req := shim.Request{Op: shim.OpExec, ExecID: o.ID, Process: proc, Tty: o.Process.Terminal, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr}
	c, r, err := s.open(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	if !(o.Stdin || o.Stdout || o.Stderr) {
		c.Close()
		c = nil
	}
	return r.Pid, c, nil
}

// call sends one request and reads its response.
func (s *Shim) call(ctx context.Context, req shim.Request) (shim.Response, error) {
	c, r, err := s.open(ctx, req)
	if c != nil {
		c.Close()
	}
	return r, err
}

// open sends req and reads the response line; on success the connection
// is returned positioned at the stream that may follow.
func (s *Shim) open(ctx context.Context, req shim.Request) (*net.UnixConn, shim.Response, error) {
	if s.exit != nil {
		return nil, shim.Response{}, fmt.Errorf("container %s: %w: %w", s.id, ErrExited, errdefs.ErrConflict)
	}
	c, err := dialContext(ctx, s.dir)
	if err != nil {
		if e, ok := readExit(s.dir); ok {
			s.exit = e
			return nil, shim.Response{}, fmt.Errorf("container %s: %w: %w", s.id, ErrExited, errdefs.ErrConflict)
		}
		return nil, shim.Response{}, fmt.Errorf("shim in %s: %w: %w", s.dir, err, errdefs.ErrUnavailable)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		c.Close()
		return nil, shim.Response{}, s.ioErr(ctx, req, err)
	}
	line, err := readLine(c)
	if err != nil {
		c.Close()
		return nil, shim.Response{}, s.ioErr(ctx, req, err)
	}
	var r shim.Response
	if err := json.Unmarshal(line, &r); err != nil {
		c.Close()
		return nil, shim.Response{}, fmt.Errorf("shim %s: bad response %q: %w", req.Op, line, err)
	}
	if r.Error != "" {
		c.Close()
		return nil, r, responseError(req, r.Error)
	}
	if !stop() {
		c.Close()
		return nil, shim.Response{}, ctx.Err()
	}
	return c, r, nil
}

func (s *Shim) ioErr(ctx context.Context, req shim.Request, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("shim %s: connection closed before an answer (the shim exited): %w", req.Op, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("shim %s: %w", req.Op, err)
}

// responseError keeps the shim's message and gives it a category.
func responseError(req shim.Request, msg string) error {
	cat := errdefs.ErrFailedPrecondition
	switch {
	case bytes.Contains([]byte(msg), []byte("not found")) && req.ExecID != "":
		cat = errdefs.ErrNotFound
	case bytes.Contains([]byte(msg), []byte("has exited")), bytes.Contains([]byte(msg), []byte("already exists")),
		bytes.Contains([]byte(msg), []byte("cannot start")), bytes.Contains([]byte(msg), []byte("cannot exec")),
		bytes.Contains([]byte(msg), []byte("cannot kill")):
		cat = errdefs.ErrConflict
	case bytes.Contains([]byte(msg), []byte("invalid")), bytes.Contains([]byte(msg), []byte("bad ")):
		cat = errdefs.ErrInvalidArgument
	}
	return &ShimError{Op: req.Op, Msg: msg, cat: cat}
}

// ShimError is an operation the shim (or the runtime under it) refused;
// Msg is its message unchanged (for the API's error body).
type ShimError struct {
	Op, Msg string
	cat     error
}

func (e *ShimError) Error() string { return e.Msg }

// Unwrap gives the errdefs category.
func (e *ShimError) Unwrap() error { return e.cat }

// readLine reads up to '\n' one byte at a time, so nothing of the stream
// that follows is consumed: the caller gets the bare connection.
func readLine(c *net.UnixConn) ([]byte, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := c.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return line, nil
			}
			line = append(line, b[0])
			if len(line) > 1<<20 {
				return nil, errors.New("response line too long")
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return nil, io.EOF
			}
			return nil, err
		}
	}
}

// dial connects to the control socket, through the directory's fd when
// the path is too long for sun_path.
func dial(dir string) (*net.UnixConn, error) {
	return dialContext(context.Background(), dir)
}

func dialContext(ctx context.Context, dir string) (*net.UnixConn, error) {
	path := filepath.Join(dir, shim.SocketFile)
	if len(path) >= 100 {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", dir, err)
		}
		defer unix.Close(fd)
		path = "/proc/self/fd/" + strconv.Itoa(fd) + "/" + shim.SocketFile
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// writeFileAtomic writes v as JSON to path, replacing it atomically. Not
// synced: the shim's files live as long as the shim, which a reboot ends.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Replace(path, append(b, '\n'), 0o600)
}
