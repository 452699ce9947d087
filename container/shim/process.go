package shim

import (
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/logs"
)

// drainTimeout bounds how long the shim waits, after a process exited,
// for its output pipes to reach EOF (a background process may hold them).
const drainTimeout = 2 * time.Second

// process is the container's init or one exec'd process, with its stdio.
type process struct {
	id        string // "" for the container's init
	tty       bool
	pid       int
	stdinOnce bool

	stdinMu     sync.Mutex
	stdin       *os.File // ours: a pipe's write end, or the pty master
	stdinClosed bool

	master  *os.File   // the pty master (tty only)
	outputs []*os.File // ours: stdout and stderr read ends, or the master
	out     *fanout
	pumps   sync.WaitGroup

	started time.Time
	exit    ExitStatus
	exited  chan struct{} // closed once exit is set and the output drained
}

func newProcess(id string, tty, stdinOnce bool, onDrop func(string)) *process {
	return &process{id: id, tty: tty, stdinOnce: stdinOnce, out: newFanout(tty, onDrop), exited: make(chan struct{})}
}

// stdio is what the runtime (and so the process) gets as fds 0-2.
type stdio struct {
	fds    [3]int
	opened []int // fds to close in the shim once the runtime has them
}

func (c *stdio) closeChild() {
	for _, fd := range c.opened {
		unix.Close(fd)
	}
	c.opened = nil
}

// setupPipes makes stdout and stderr pipes, and a stdin pipe if withStdin;
// stdin is /dev/null otherwise.
func (p *process) setupPipes(withStdin bool, devnull int) (*stdio, error) {
	c := &stdio{fds: [3]int{devnull, devnull, devnull}}
	fail := func(err error) (*stdio, error) {
		c.closeChild()
		p.closeAll()
		return nil, err
	}
	if withStdin {
		w, r, err := pipe(false)
		if err != nil {
			return fail(err)
		}
		p.stdin, c.fds[0] = w, r
		c.opened = append(c.opened, r)
	}
	for i := 1; i <= 2; i++ {
		r, w, err := pipe(true)
		if err != nil {
			return fail(err)
		}
		p.outputs = append(p.outputs, r)
		c.fds[i] = w
		c.opened = append(c.opened, w)
	}
	return c, nil
}

// setMaster installs the pty master received from the runtime.
func (p *process) setMaster(m *os.File) {
	p.master, p.stdin = m, m
	p.outputs = []*os.File{m}
}

// startPumps copies output to the log (if any) and to attached clients.
func (p *process) startPumps(log *logs.File) {
	streams := []byte{StreamStdout, StreamStderr}
	names := []string{"stdout", "stderr"}
	for i, src := range p.outputs {
		var lw *logs.LineWriter
		if log != nil {
			lw = log.Stream(names[i])
		}
		p.pumps.Add(1)
		go p.pump(src, streams[i], lw)
	}
}

func (p *process) pump(src *os.File, stream byte, lw *logs.LineWriter) {
	defer p.pumps.Done()
	buf := make([]byte, logs.MaxLineSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if lw != nil {
				lw.Write(buf[:n])
			}
			if p.out.write(stream, buf[:n]) {
				// With one P (GOMAXPROCS 1) a pump whose pipe never runs
				// dry would keep the clients' writers from running for a
				// whole time slice, and a busy container would overrun
				// the buffer of a client that does read.
				runtime.Gosched()
			}
		}
		if err != nil {
			// EOF on pipes; EIO on a pty master once the last slave is closed.
			break
		}
	}
	if lw != nil {
		lw.Close()
	}
}

// drain waits for the output to end (at most drainTimeout, then cuts it
// off), ends every attached stream and closes the process's stdio.
func (p *process) drain() {
	done := make(chan struct{})
	go func() { p.pumps.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		for _, f := range p.outputs {
			f.Close()
		}
		<-done
	}
	p.out.end()
	p.closeAll()
}

func (p *process) closeAll() {
	p.stdinMu.Lock()
	if p.stdin != nil && p.stdin != p.master {
		p.stdin.Close()
	}
	p.stdinClosed = true
	p.stdinMu.Unlock()
	for _, f := range p.outputs {
		f.Close()
	}
}

// closeStdin ends the process's stdin (a pipe); a pty has no separate
// stdin to close.
func (p *process) closeStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinClosed || p.stdin == nil || p.tty {
		return
	}
	p.stdinClosed = true
	p.stdin.Close()
}

// feedStdin copies an attached client's input to the process's stdin
// until the client's EOF; with stdin-once that EOF closes the stdin.
func (p *process) feedStdin(r io.Reader) {
	p.stdinMu.Lock()
	w := p.stdin
	closed := p.stdinClosed
	p.stdinMu.Unlock()
	if w != nil && !closed {
		buf := make([]byte, 4096)
		io.CopyBuffer(struct{ io.Writer }{w}, r, buf)
	}
	if p.stdinOnce {
		p.closeStdin()
	}
}

func (p *process) resize(h, w uint16) error {
	if p.master == nil {
		return errNoTTY
	}
	rc, err := p.master.SyscallConn()
	if err != nil {
		return err
	}
	// Not Fd(): it would switch the master to blocking mode.
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: h, Col: w})
	}); err != nil {
		return err
	}
	return ierr
}
