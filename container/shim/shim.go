package shim

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/logs"
	"github.com/berth-dev/berth/internal/replace"
)

var (
	errNoTTY   = errors.New("the process has no terminal")
	errStopped = errors.New("container has exited")
)

// wrapError is "msg: cause", the cause kept for errors.Is. The shim has
// no fmt (see the package doc's Size).
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *wrapError) Unwrap() error { return e.err }

func wrap(msg string, err error) error { return &wrapError{msg: msg, err: err} }

// shim is one running berth-shim.
type shim struct {
	cfg     Config
	dir     string
	dirfd   int
	devnull int
	reaper  *reaper
	diag    *os.File // shim.log
	ln      *os.File
	log     *logs.File // nil with log driver none
	oom     oomCounter

	mu        sync.Mutex
	status    string
	init      *process
	execs     map[string]*process
	consoleN  int
	waiters   sync.WaitGroup // requests answered after the exit
	done      chan struct{}  // closed when the exit is recorded
	startedAt time.Time
	trimTimer *time.Timer
	// lateDelete: the runtime's delete runs after the exit is reported.
	lateDelete bool
	// pending is the init's stdio while a deferred create waits for start.
	pending *stdio
	startMu sync.Mutex // one start at a time
}

// Run is the shim's life for the container whose state directory is dir:
// it creates the container, reports to ready (fd 3 from the daemon), serves
// the control socket and returns once the container's exit is recorded.
func Run(dir string, ready *os.File) error {
	// The shim waits on pipes and sockets; one P is plenty and saves a
	// P's caches and a thread. The daemon starts it with GOMAXPROCS=1
	// (client.Start), which saves more: this is for other callers.
	runtime.GOMAXPROCS(1)
	// The default GOGC lets the heap reach 4 MB before the first
	// collection: a shim answering requests for a long-lived container
	// would keep that much resident. 25 starts collecting at 1 MB, above
	// what start-up allocates (a collection costs some 300 kB of metadata
	// that a quiet shim would rather not have).
	debug.SetGCPercent(25)
	s, err := newShim(dir)
	if err != nil {
		writeReady(ready, Ready{Error: err.Error()})
		return err
	}
	defer s.close()
	deferred := s.cfg.DeferCreate && !s.cfg.Tty
	if deferred {
		err = s.prepareDeferred()
	} else {
		err = s.create()
	}
	if err != nil {
		s.note("create", err)
		s.ln.Close()
		os.Remove(filepath.Join(dir, SocketFile))
		writeReady(ready, Ready{Error: err.Error(), ShimPid: os.Getpid()})
		return err
	}
	writeReady(ready, Ready{Pid: s.init.pid, ShimPid: os.Getpid()})
	go s.serve()
	if !deferred {
		go s.waitInit()
	}
	trimText()
	<-s.done
	// Let requests that were waiting for the exit get their answer.
	w := make(chan struct{})
	go func() { s.waiters.Wait(); close(w) }()
	select {
	case <-w:
	case <-time.After(time.Second):
	}
	s.ln.Close()
	os.Remove(filepath.Join(dir, SocketFile))
	if s.lateDelete {
		// The state dir may be gone already (the daemon tears the bundle
		// down once it has the exit): run from / and log to shim.log.
		if err := s.runtimeAt("/", "", [3]int{s.devnull, s.devnull, s.devnull}, "delete", "--force", s.cfg.ID); err != nil {
			s.note("delete", err)
		}
	}
	return nil
}

func writeReady(f *os.File, r Ready) {
	if f == nil {
		return
	}
	f.Write(append(appendReady(nil, &r), '\n'))
	f.Close()
}

func newShim(dir string) (*shim, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, wrap("become child subreaper", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, wrap("read shim config", err)
	}
	s := &shim{dir: dir, dirfd: -1, devnull: -1, status: StatusCreated, execs: map[string]*process{}, done: make(chan struct{})}
	if err := parseConfig(data, &s.cfg); err != nil {
		return nil, wrap("parse "+filepath.Join(dir, ConfigFile), err)
	}
	if err := s.cfg.Validate(); err != nil {
		return nil, err
	}
	if s.diag, err = os.OpenFile(filepath.Join(dir, LogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
		return nil, wrap("open shim log", err)
	}
	if s.devnull, err = unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		s.close()
		return nil, wrap("open "+os.DevNull, err)
	}
	if s.dirfd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		s.close()
		return nil, wrap("open state dir "+dir, err)
	}
	s.reaper = newReaper()
	sock := filepath.Join(dir, SocketFile)
	os.Remove(sock)
	if s.ln, err = listenUnix(sockPath(dir, SocketFile, os.Getpid(), s.dirfd)); err != nil {
		s.close()
		return nil, wrap("control socket", err)
	}
	return s, nil
}

// Validate checks what the shim cannot run without.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("shim config: id is empty")
	case c.Bundle == "":
		return errors.New("shim config: bundle is empty")
	case c.Runtime == "":
		return errors.New("shim config: runtime is empty")
	}
	switch c.LogDriver {
	case "", LogDriverJSONFile:
		if c.LogPath == "" {
			return errors.New("shim config: log_path is empty (needed by the json-file log driver)")
		}
	case LogDriverNone:
	default:
		return errors.New("shim config: unknown log driver " + strconv.Quote(c.LogDriver) + " (want json-file or none)")
	}
	return nil
}

func (s *shim) close() {
	if s.diag != nil {
		s.diag.Close()
	}
	if s.devnull >= 0 {
		unix.Close(s.devnull)
	}
	if s.dirfd >= 0 {
		unix.Close(s.dirfd)
	}
}

// note writes a line to shim.log: the time, what and the error.
func (s *shim) note(what string, err error) {
	if s.diag == nil {
		return
	}
	b := logs.AppendTime(nil, time.Now())
	b = append(b, ' ')
	b = append(b, what...)
	if err != nil {
		b = append(b, ": "...)
		b = append(b, err.Error()...)
	}
	s.diag.Write(append(b, '\n'))
}

func (s *shim) onDrop(what string) func(string) {
	return func(reason string) { s.note(what+": "+reason, nil) }
}

// runtime runs the runtime with args and fds as its stdio, and returns the
// runtime's own error message when it fails.
func (s *shim) runtime(fds [3]int, args ...string) error {
	return s.runtimeAt(s.dir, filepath.Join(s.dir, RuntimeLog), fds, args...)
}

// runtimeAt runs the runtime in dir, logging to logPath ("": no log, the
// error is then only its exit status).
func (s *shim) runtimeAt(dir, logPath string, fds [3]int, args ...string) error {
	var off int64
	if st, err := os.Stat(logPath); err == nil {
		off = st.Size()
	}
	argv := []string{s.cfg.Runtime}
	if s.cfg.RuntimeRoot != "" {
		argv = append(argv, "--root", s.cfg.RuntimeRoot)
	}
	if logPath != "" {
		argv = append(argv, "--log", logPath, "--log-format", "json")
	}
	argv = append(argv, args...)
	pid, err := syscall.ForkExec(s.cfg.Runtime, argv, &syscall.ProcAttr{
		Dir:   dir,
		Env:   runtimeEnv(),
		Files: []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])},
	})
	if err != nil {
		return wrap("run "+s.cfg.Runtime+" "+args[0], err)
	}
	ws := <-s.reaper.watch(pid)
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	if msg := runtimeError(logPath, off); logPath != "" && msg != "" {
		return errors.New(msg)
	}
	if ws.Signaled() {
		return errors.New(filepath.Base(s.cfg.Runtime) + " " + args[0] + ": killed by signal " + ws.Signal().String())
	}
	return errors.New(filepath.Base(s.cfg.Runtime) + " " + args[0] + ": exit status " + strconv.Itoa(ws.ExitStatus()))
}

// runtimeEnv is the shim's environment for the runtime, with GOMAXPROCS=1:
// a runtime call does one thing after another, and a Go runtime (berth-runtime,
// runc) with more Ps starts threads to spin and park, a clone and a
// context switch each at every start of a container.
func runtimeEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
	return append(env, "GOMAXPROCS=1")
}

// runtimeError returns the last error message the runtime logged after
// offset off of its JSON log.
func runtimeError(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= off {
		return ""
	}
	buf := make([]byte, min(st.Size()-off, 64<<10))
	n, _ := f.ReadAt(buf, st.Size()-int64(len(buf)))
	msg := ""
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		if level, m, ok := runtimeLogLine(l); ok && level == "error" && m != "" {
			msg = m
		} else if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "{") {
			msg = t
		}
	}
	return msg
}

// prepareDeferred makes the init's stdio pipes, so that clients can
// attach before the container exists; start creates it.
func (s *shim) prepareDeferred() error {
	p := newProcess("", false, s.cfg.StdinOnce, s.onDrop("container"))
	io, err := p.setupPipes(s.cfg.OpenStdin, s.devnull)
	if err != nil {
		return err
	}
	s.init, s.pending = p, io
	return nil
}

// runDeferred creates and starts the container in one `runtime run
// --detach` (its init, forked by the runtime, is reparented to the shim,
// a subreaper) on the stdio prepareDeferred made.
func (s *shim) runDeferred() error {
	p, io := s.init, s.pending
	s.pending = nil
	args := []string{"run", "--detach", "--bundle", s.cfg.Bundle, "--pid-file", filepath.Join(s.dir, "init.pid"), s.cfg.ID}
	err := s.runtimeRetry(io.fds, args)
	io.closeChild()
	if err != nil {
		return err
	}
	return s.adopt(p)
}

// abandonDeferred ends a shim whose deferred create failed: attached
// clients get the end of their streams and the exit is recorded, so that
// the shim exits like one whose container ran.
func (s *shim) abandonDeferred(err error) {
	p := s.init
	p.drain()
	p.exit = ExitStatus{ExitCode: 128, FinishedAt: time.Now().UTC()}
	if werr := writeFileAtomic(filepath.Join(s.dir, ExitFile), appendExit(nil, &p.exit)); werr != nil {
		s.note("record exit", werr)
	}
	s.note("start", err)
	s.mu.Lock()
	s.status = StatusStopped
	s.mu.Unlock()
	close(p.exited)
	close(s.done)
}

// runtimeRetry runs the runtime with args, waiting while the previous
// run's shim still deletes the container's old state (it does so after
// reporting that run's exit) rather than failing a quick restart. A live
// namesake never goes away, and then the error stands.
func (s *shim) runtimeRetry(fds [3]int, args []string) error {
	err := s.runtime(fds, args...)
	for deadline := time.Now().Add(3 * time.Second); err != nil && strings.Contains(err.Error(), "already exists") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		err = s.runtime(fds, args...)
	}
	return err
}

// create runs `runtime create` with the container's stdio.
func (s *shim) create() error {
	p := newProcess("", s.cfg.Tty, s.cfg.StdinOnce, s.onDrop("container"))
	args := []string{"create", "--bundle", s.cfg.Bundle, "--pid-file", filepath.Join(s.dir, "init.pid")}
	var io *stdio
	var console *consoleSocket
	var err error
	if s.cfg.Tty {
		if console, err = s.newConsoleSocket(); err != nil {
			return err
		}
		defer console.close()
		args = append(args, "--console-socket", console.path)
		io = &stdio{fds: [3]int{s.devnull, s.devnull, s.devnull}}
	} else if io, err = p.setupPipes(s.cfg.OpenStdin, s.devnull); err != nil {
		return err
	}
	args = append(args, s.cfg.ID)
	var masterc <-chan masterResult
	if console != nil {
		masterc = console.receive()
	}
	err = s.runtimeRetry(io.fds, args)
	io.closeChild()
	if err != nil {
		p.closeAll()
		return err
	}
	if console != nil {
		m, err := console.wait(masterc)
		if err != nil {
			s.runtime([3]int{s.devnull, s.devnull, s.devnull}, "delete", "--force", s.cfg.ID)
			return err
		}
		p.setMaster(m)
	}
	return s.adopt(p)
}

// adopt takes on the init the runtime just made: its pid, OOM counter and
// log, and starts copying its output.
func (s *shim) adopt(p *process) error {
	pid, err := readPid(filepath.Join(s.dir, "init.pid"))
	if err != nil {
		p.closeAll()
		s.runtime([3]int{s.devnull, s.devnull, s.devnull}, "delete", "--force", s.cfg.ID)
		return err
	}
	s.mu.Lock() // state() reads it
	p.pid = pid
	s.mu.Unlock()
	s.oom = findOOMCounter(pid)
	// The daemon says so; /proc is asked for a caller that did not, and
	// only while the init lives (a deferred create's may be reaped by now).
	s.lateDelete = s.cfg.OwnPidNS || ownPidNS(pid)
	if s.cfg.LogDriver != LogDriverNone {
		if s.log, err = logs.Create(s.cfg.LogPath, s.cfg.LogOptions); err != nil {
			p.closeAll()
			s.runtime([3]int{s.devnull, s.devnull, s.devnull}, "delete", "--force", s.cfg.ID)
			return err
		}
	}
	s.init = p
	p.startPumps(s.log)
	return nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, wrap("read pid file", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, errors.New("pid file " + path + ": bad content " + strconv.Quote(string(b)))
	}
	return pid, nil
}

// consoleSocket receives a pty master from the runtime.
type consoleSocket struct {
	ln   *os.File
	path string // as handed to the runtime
	file string // on disk
}

type masterResult struct {
	f   *os.File
	err error
}

func (s *shim) newConsoleSocket() (*consoleSocket, error) {
	s.mu.Lock()
	s.consoleN++
	name := "console-" + strconv.Itoa(s.consoleN) + ".sock"
	s.mu.Unlock()
	file := filepath.Join(s.dir, name)
	os.Remove(file)
	path := sockPath(s.dir, name, os.Getpid(), s.dirfd)
	ln, err := listenUnix(path)
	if err != nil {
		return nil, wrap("console socket", err)
	}
	return &consoleSocket{ln: ln, path: path, file: file}, nil
}

func (c *consoleSocket) receive() <-chan masterResult {
	ch := make(chan masterResult, 1)
	go func() {
		conn, err := accept(c.ln)
		if err != nil {
			ch <- masterResult{err: wrap("console socket", err)}
			return
		}
		defer conn.Close()
		m, err := recvFd(conn)
		ch <- masterResult{f: m, err: err}
	}()
	return ch
}

// wait collects the master once the runtime has succeeded (the runtime
// sends it before it returns, so it is there or never comes).
func (c *consoleSocket) wait(ch <-chan masterResult) (*os.File, error) {
	select {
	case r := <-ch:
		return r.f, r.err
	case <-time.After(5 * time.Second):
		c.ln.Close()
		return nil, errors.New("runtime succeeded but sent no pty master to the console socket")
	}
}

func (c *consoleSocket) close() {
	c.ln.Close()
	os.Remove(c.file)
}

// waitInit waits for the container's init to exit and records it.
func (s *shim) waitInit() {
	p := s.init
	ws := <-s.reaper.watch(p.pid)
	finished := time.Now().UTC()
	oom := s.oom.read() > 0
	// The runtime's delete removes the container's cgroup and state, and
	// kills what is left in the cgroup. A container with a pid namespace
	// of its own has nothing left (the kernel kills the namespace with its
	// init, before init can be reaped), so the delete follows the exit
	// report instead of delaying it (docker run --rm waits for it). One
	// sharing a pid namespace may keep processes that hold its stdio.
	if !s.lateDelete {
		if err := s.runtime([3]int{s.devnull, s.devnull, s.devnull}, "delete", "--force", s.cfg.ID); err != nil {
			s.note("delete", err)
		}
	}
	p.drain()
	if s.log != nil {
		if err := s.log.Err(); err != nil {
			s.note("log", err)
		}
		if err := s.log.Close(); err != nil {
			s.note("log", err)
		}
	}
	s.mu.Lock()
	execs := make([]*process, 0, len(s.execs))
	for _, e := range s.execs {
		execs = append(execs, e)
	}
	started := s.startedAt
	s.mu.Unlock()
	for _, e := range execs {
		select {
		case <-e.exited:
		case <-time.After(drainTimeout):
			s.note("exec "+e.id+": still not finished after the container's exit", nil)
		}
	}
	p.exit = ExitStatus{ExitCode: exitCode(ws), OOMKilled: oom, Pid: p.pid, StartedAt: started, FinishedAt: finished}
	if err := writeFileAtomic(filepath.Join(s.dir, ExitFile), appendExit(nil, &p.exit)); err != nil {
		s.note("record exit", err)
	}
	s.mu.Lock()
	s.status = StatusStopped
	s.mu.Unlock()
	close(p.exited)
	close(s.done)
}

// writeFileAtomic writes the JSON b to path so that a crash of the shim or
// of berthd leaves either the old file or the whole new one. It is not
// synced: its readers are a daemon restarted after a crash of its own,
// which the page cache survives; after a power loss no shim or container
// is left whose exit it could report. (internal/atomicfile without fmt,
// which the shim does not link: its size is paid once per container.)
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, append(b, '\n'), 0o644)
	if err == nil {
		err = replace.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return wrap("write "+path, err)
	}
	return nil
}

// ownPidNS reports whether process pid is the init (pid 1) of a pid
// namespace below the shim's: the namespace, and every process in it,
// dies with it. (A container joining another's pid namespace is not.)
func ownPidNS(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "NSpid:" {
			return f[len(f)-1] == "1"
		}
	}
	return false
}
