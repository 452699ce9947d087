package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

func errReply(c *os.File, err error) {
	reply(c, Response{Error: err.Error()})
	c.Close()
}

func (s *shim) handle(c *os.File) {
	br := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			c.Close()
			return
		}
		line = append(line, chunk...)
		if len(line) > maxRequest {
			errReply(c, errors.New("request too large"))
			return
		}
		if !isPrefix {
			break
		}
	}
	c.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		errReply(c, fmt.Errorf("bad request: %w", err))
		return
	}
	switch req.Op {
	case OpStart:
		s.answer(c, s.start())
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
		errReply(c, fmt.Errorf("unknown op %q", req.Op))
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
		return nil, fmt.Errorf("exec %q: not found", execID)
	}
	return p, nil
}

func (s *shim) start() error {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	if st != StatusCreated {
		return fmt.Errorf("cannot start container %s: it is %s", s.cfg.ID, st)
	}
	started := time.Now().UTC()
	if err := s.runtime([3]int{s.devnull, s.devnull, s.devnull}, "start", s.cfg.ID); err != nil {
		return err
	}
	s.mu.Lock()
	s.startedAt = started
	if s.status == StatusCreated {
		s.status = StatusRunning
	}
	s.mu.Unlock()
	trimText()
	return nil
}

func (s *shim) kill(sig int, all bool) error {
	if sig <= 0 {
		sig = int(unix.SIGKILL)
	}
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	if st == StatusStopped {
		return fmt.Errorf("cannot kill container %s: %w", s.cfg.ID, errStopped)
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, s.cfg.ID, fmt.Sprint(sig))
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
func (s *shim) attach(c *os.File, br *bufio.Reader, req Request) {
	p, err := s.process(req.ExecID)
	if err != nil {
		errReply(c, err)
		return
	}
	a := newAttacher(c, req.Stdout, req.Stderr)
	if !p.out.add(a) {
		errReply(c, fmt.Errorf("cannot attach: %w", errStopped))
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
func (s *shim) stream(p *process, a *attacher, br *bufio.Reader, stdin bool) {
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
func (s *shim) exec(c *os.File, br *bufio.Reader, req Request) {
	if !validExecID(req.ExecID) {
		errReply(c, fmt.Errorf("invalid exec id %q", req.ExecID))
		return
	}
	var proc struct {
		Terminal bool `json:"terminal"`
	}
	if err := json.Unmarshal(req.Process, &proc); err != nil {
		errReply(c, fmt.Errorf("exec %s: bad process: %w", req.ExecID, err))
		return
	}
	if proc.Terminal != req.Tty {
		errReply(c, fmt.Errorf("exec %s: process.terminal is %v but tty is %v", req.ExecID, proc.Terminal, req.Tty))
		return
	}
	s.mu.Lock()
	_, dup := s.execs[req.ExecID]
	status := s.status
	s.mu.Unlock()
	if dup {
		errReply(c, fmt.Errorf("exec %s: already exists", req.ExecID))
		return
	}
	if status != StatusRunning {
		errReply(c, fmt.Errorf("cannot exec in container %s: it is %s", s.cfg.ID, status))
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
		return 0, fmt.Errorf("exec %s: %w", req.ExecID, err)
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
