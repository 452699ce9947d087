package shim

import (
	"os"
	"sync"
)

// AttachBuffer is how many bytes of output may wait for one attached
// client; a client further behind is disconnected (see the package doc).
const AttachBuffer = 1 << 20

// fanout hands a process's output to every attached client.
type fanout struct {
	tty       bool
	mu        sync.Mutex
	attachers map[*attacher]struct{}
	ended     bool
	onDrop    func(reason string)
}

func newFanout(tty bool, onDrop func(string)) *fanout {
	return &fanout{tty: tty, attachers: map[*attacher]struct{}{}, onDrop: onDrop}
}

// add registers a; false if the output has already ended.
func (f *fanout) add(a *attacher) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return false
	}
	f.attachers[a] = struct{}{}
	return true
}

func (f *fanout) remove(a *attacher) {
	f.mu.Lock()
	delete(f.attachers, a)
	f.mu.Unlock()
}

// write sends p, read from stream, to every client that wants it, and
// reports whether any took it. It never blocks on a client.
func (f *fanout) write(stream byte, p []byte) (sent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a := range f.attachers {
		if !a.wants(stream) {
			continue
		}
		sent = true
		if !a.send(stream, p, f.tty) {
			delete(f.attachers, a)
			if f.onDrop != nil {
				f.onDrop("attached client fell more than 1 MiB behind: disconnected")
			}
		}
	}
	return sent
}

// end tells every client that output is over: each gets what is still
// buffered, then its connection is closed.
func (f *fanout) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = true
	for a := range f.attachers {
		a.finish()
	}
	clear(f.attachers)
}

// attacher is one client's connection and its output buffer.
type attacher struct {
	conn           *os.File
	stdout, stderr bool

	mu      sync.Mutex
	pending []byte
	spare   []byte
	wake    chan struct{}
	ending  bool // flush, then close
	dead    bool
	once    sync.Once
	stopped chan struct{} // closed when the writer has closed conn
}

func newAttacher(conn *os.File, stdout, stderr bool) *attacher {
	return &attacher{conn: conn, stdout: stdout, stderr: stderr, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

func (a *attacher) wants(stream byte) bool {
	return (stream == StreamStdout && a.stdout) || (stream == StreamStderr && a.stderr)
}

// send queues p; false when the client is gone or too far behind (then
// it is closed).
func (a *attacher) send(stream byte, p []byte, tty bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return false
	}
	need := len(p)
	if !tty {
		need += 8
	}
	if len(a.pending)+need > AttachBuffer {
		a.dead = true
		a.pending = nil
		a.signal()
		// The writer may be blocked on a client that stopped reading.
		a.close()
		return false
	}
	if !tty {
		var h [8]byte
		n := uint32(len(p))
		h[0] = stream
		h[4], h[5], h[6], h[7] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		a.pending = append(a.pending, h[:]...)
	}
	a.pending = append(a.pending, p...)
	a.signal()
	return true
}

func (a *attacher) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// finish: output is over; flush and close.
func (a *attacher) finish() {
	a.mu.Lock()
	a.ending = true
	a.signal()
	a.mu.Unlock()
}

// run writes queued output to the client until the output ends, the
// client goes away or it falls behind; then it closes the connection.
func (a *attacher) run() {
	defer a.close()
	for {
		a.mu.Lock()
		for len(a.pending) == 0 && !a.ending && !a.dead {
			a.mu.Unlock()
			<-a.wake
			a.mu.Lock()
		}
		if a.dead || (len(a.pending) == 0 && a.ending) {
			a.mu.Unlock()
			return
		}
		buf := a.pending
		a.pending = a.spare[:0]
		a.mu.Unlock()
		_, err := a.conn.Write(buf)
		a.mu.Lock()
		// A buffer grown by a burst is dropped rather than kept.
		if cap(buf) <= 64<<10 {
			a.spare = buf[:0]
		} else {
			a.spare = nil
		}
		if err != nil {
			a.dead = true
			a.pending = nil
		}
		a.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (a *attacher) close() {
	a.once.Do(func() {
		a.conn.Close()
		close(a.stopped)
	})
}
