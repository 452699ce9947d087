package shim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// maxRequest bounds a request line (an exec's process is the big one).
const maxRequest = 1 << 20

func (s *shim) serve() {
	for {
		c, err := accept(s.ln)
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func reply(c *os.File, r Response) error {
	_, err := c.Write(append(appendResponse(nil, &r), '\n'))
	return err
}

func errReply(c *os.File, err error) {
	reply(c, Response{Error: err.Error()})
	c.Close()
}

func (s *shim) handle(c *os.File) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, rest, err := readRequest(c)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			errReply(c, err)
		} else {
			c.Close()
		}
		return
	}
	c.SetReadDeadline(time.Time{})
	// The client's stdin may follow the request at once: what was read
	// past the line goes first.
	br := &stdinReader{pending: rest, conn: c}
	// Requests touch code the quiet shim does not need resident.
	defer s.trimLater()
	var req Request
	if err := parseRequest(line, &req); err != nil {
		errReply(c, wrap("bad request", err))
		return
	}
	switch req.Op {
	case OpStart, OpKill, OpResize, OpState:
		// Short requests hold the shim's exit until answered: a process
		// may exit, and have its exit recorded, before its start returns.
		s.waiters.Add(1)
		defer s.waiters.Done()
	}
	switch req.Op {
	case OpStart:
		pid, err := s.start()
		if err != nil {
			errReply(c, err)
			break
		}
		reply(c, Response{Pid: pid})
		c.Close()
	case OpKill:
		s.answer(c, s.kill(req.Signal, req.All))
	case OpResize:
		p, err := s.process(req.ExecID)
		if err == nil {
			err = p.resize(req.Height, req.Width)
		}
		s.answer(c, err)
	case OpState:
		st := s.state()
		reply(c, Response{State: &st})
		c.Close()
	case OpWait:
		s.wait(c, req.ExecID)
	case OpAttach:
		s.attach(c, br, req)
	case OpExec:
		s.exec(c, br, req)
	default:
		errReply(c, errors.New("unknown op "+strconv.Quote(req.Op)))
	}
}

func (s *shim) answer(c *os.File, err error) {
	if err != nil {
		errReply(c, err)
		return
	}
	reply(c, Response{})
	c.Close()
}

// process returns the init for "" or the exec'd process id.
func (s *shim) process(execID string) (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if execID == "" {
		return s.init, nil
	}
	p, ok := s.execs[execID]
	if !ok {
		return nil, errors.New("exec " + strconv.Quote(execID) + ": not found")
	}
	return p, nil
}

// start starts the container and returns its init's pid.
func (s *shim) start() (int, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	if st != StatusCreated {
		return 0, errors.New("cannot start container " + s.cfg.ID + ": it is " + st)
	}
	// Set before the start: a quick process may exit, and have its exit
	// recorded, before the runtime's start returns.
	s.mu.Lock()
	s.startedAt = time.Now().UTC()
	s.mu.Unlock()
	var err error
	if s.pending != nil {
		if err = s.runDeferred(); err != nil {
			s.abandonDeferred(err)
			return 0, err
		}
		go s.waitInit()
	} else {
		err = s.runtime([3]int{s.devnull, s.devnull, s.devnull}, "start", s.cfg.ID)
	}
	if err != nil {
		s.mu.Lock()
		s.startedAt = time.Time{}
		s.mu.Unlock()
		return 0, err
	}
	// No trimText here: it would delay the answer; the request's
	// trimLater trims once the shim is quiet.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == StatusCreated {
		s.status = StatusRunning
	}
	return s.init.pid, nil
}

func (s *shim) kill(sig int, all bool) error {
	if sig <= 0 {
		sig = int(unix.SIGKILL)
	}
	if s.cfg.DeferCreate && !s.cfg.Tty {
		// A container whose create waits for start does not exist yet:
		// killing it ends the shim, as if it had run.
		s.startMu.Lock()
		io := s.pending
		s.pending = nil
		if io != nil {
			io.closeChild()
			s.abandonDeferred(errors.New("killed before start"))
		}
		s.startMu.Unlock()
		if io != nil {
			return nil
		}
	}
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	if st == StatusStopped {
		return wrap("cannot kill container "+s.cfg.ID, errStopped)
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, s.cfg.ID, strconv.Itoa(sig))
	return s.runtime([3]int{s.devnull, s.devnull, s.devnull}, args...)
}

func (s *shim) state() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{ID: s.cfg.ID, Pid: s.init.pid, ShimPid: os.Getpid(), Status: s.status, StartedAt: s.startedAt}
	if s.status == StatusStopped {
		e := s.init.exit
		st.Exit = &e
	}
	for id, p := range s.execs {
		es := ExecState{ID: id, Pid: p.pid, Running: true}
		select {
		case <-p.exited:
			e := p.exit
			es.Running, es.Exit = false, &e
		default:
		}
		st.Execs = append(st.Execs, es)
	}
	return st
}

func (s *shim) wait(c *os.File, execID string) {
	p, err := s.process(execID)
	if err != nil {
		errReply(c, err)
		return
	}
	s.waiters.Add(1)
	defer s.waiters.Done()
	<-p.exited
	e := p.exit
	reply(c, Response{Exit: &e})
	c.Close()
}

// attach turns c into a stream of p's stdio (see the package doc).
func (s *shim) attach(c *os.File, br *stdinReader, req Request) {
	p, err := s.process(req.ExecID)
	if err != nil {
		errReply(c, err)
		return
	}
	a := newAttacher(c, req.Stdout, req.Stderr)
	if !p.out.add(a) {
		errReply(c, wrap("cannot attach", errStopped))
		return
	}
	if err := reply(c, Response{Pid: p.pid}); err != nil {
		p.out.remove(a)
		c.Close()
		return
	}
	s.stream(p, a, br, req.Stdin)
}

// stream runs an attached connection: output to the client, and the
// client's input to stdin when asked.
func (s *shim) stream(p *process, a *attacher, br *stdinReader, stdin bool) {
	go a.run()
	if stdin {
		go p.feedStdin(br)
	}
}

func validExecID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') || id == "." || id == ".." {
			return false
		}
	}
	return true
}

// exec runs another process in the container; with streams selected the
// connection then carries its stdio.
func (s *shim) exec(c *os.File, br *stdinReader, req Request) {
	if !validExecID(req.ExecID) {
		errReply(c, errors.New("invalid exec id "+strconv.Quote(req.ExecID)))
		return
	}
	terminal, err := processTerminal(req.Process)
	if err != nil {
		errReply(c, wrap("exec "+req.ExecID+": bad process", err))
		return
	}
	if terminal != req.Tty {
		errReply(c, errors.New("exec "+req.ExecID+": process.terminal is "+strconv.FormatBool(terminal)+" but tty is "+strconv.FormatBool(req.Tty)))
		return
	}
	s.mu.Lock()
	_, dup := s.execs[req.ExecID]
	status := s.status
	s.mu.Unlock()
	if dup {
		errReply(c, errors.New("exec "+req.ExecID+": already exists"))
		return
	}
	if status != StatusRunning {
		errReply(c, errors.New("cannot exec in container "+s.cfg.ID+": it is "+status))
		return
	}
	p := newProcess(req.ExecID, req.Tty, true, s.onDrop("exec "+req.ExecID))
	attached := req.Stdin || req.Stdout || req.Stderr
	var a *attacher
	if attached {
		a = newAttacher(c, req.Stdout, req.Stderr)
		p.out.add(a)
	}
	pid, err := s.startExec(p, req)
	if err != nil {
		errReply(c, err)
		return
	}
	if err := reply(c, Response{Pid: pid}); err != nil || !attached {
		if a != nil {
			p.out.remove(a)
		}
		c.Close()
		return
	}
	s.stream(p, a, br, req.Stdin)
}

func (s *shim) startExec(p *process, req Request) (int, error) {
	procFile := filepath.Join(s.dir, "exec-"+req.ExecID+".json")
	pidFile := filepath.Join(s.dir, "exec-"+req.ExecID+".pid")
	defer os.Remove(procFile)
	defer os.Remove(pidFile)
	if err := os.WriteFile(procFile, req.Process, 0o600); err != nil {
		return 0, wrap("exec "+req.ExecID, err)
	}
	args := []string{"exec", "--process", procFile, "--detach", "--pid-file", pidFile}
	var io *stdio
	var console *consoleSocket
	var err error
	if req.Tty {
		if console, err = s.newConsoleSocket(); err != nil {
			return 0, err
		}
		defer console.close()
		args = append(args, "--console-socket", console.path)
		io = &stdio{fds: [3]int{s.devnull, s.devnull, s.devnull}}
	} else if io, err = p.setupPipes(req.Stdin, s.devnull); err != nil {
		return 0, err
	}
	args = append(args, s.cfg.ID)
	var masterc <-chan masterResult
	if console != nil {
		masterc = console.receive()
	}
	err = s.runtime(io.fds, args...)
	io.closeChild()
	if err != nil {
		p.closeAll()
		return 0, err
	}
	if console != nil {
		m, err := console.wait(masterc)
		if err != nil {
			return 0, err
		}
		p.setMaster(m)
	}
	if p.pid, err = readPid(pidFile); err != nil {
		p.closeAll()
		return 0, err
	}
	p.started = time.Now().UTC()
	exitc := s.reaper.watch(p.pid)
	s.mu.Lock()
	s.execs[p.id] = p
	s.mu.Unlock()
	p.startPumps(nil)
	go func() {
		ws := <-exitc
		p.exit = ExitStatus{ExitCode: exitCode(ws), Pid: p.pid, StartedAt: p.started, FinishedAt: time.Now().UTC()}
		p.drain()
		close(p.exited)
	}()
	return p.pid, nil
}

var errTooLarge = errors.New("request too large")

// readRequest reads the request line from c; rest is what was read after
// it (the start of the client's stdin).
func readRequest(c *os.File) (line, rest []byte, err error) {
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		start := len(buf)
		buf = buf[:len(buf)+n]
		if i := bytes.IndexByte(buf[start:], '\n'); i >= 0 {
			i += start
			if i > maxRequest {
				return nil, nil, errTooLarge
			}
			return buf[:i], buf[i+1:], nil
		}
		if len(buf) > maxRequest {
			return nil, nil, errTooLarge
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// stdinReader is an attached client's input: the bytes that came with
// the request line, then the connection.
type stdinReader struct {
	pending []byte
	conn    *os.File
}

func (r *stdinReader) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.conn.Read(p)
}
