package pull

import (
	"io"
	"sync"
)

// pipe is a buffered in-memory pipe: the writer hands over filled chunks
// and goes on decompressing while the reader (the tar applier) works
// through earlier ones. io.Pipe would make both sides wait for each other
// at every write; with a few megabytes of slack the two stages run on two
// cores.
type pipe struct {
	ch   chan []byte
	free chan []byte
	done chan struct{} // closed when the reader gives up

	chunk []byte // reader: the chunk being read, whole
	cur   []byte // reader: its unread rest

	once sync.Once
	mu   sync.Mutex
	werr error // what the reader gets after the last chunk (io.EOF or the writer's error)
	rerr error // what the writer gets after the reader closed
}

const (
	chunkSize  = 512 << 10
	chunkDepth = 8
)

func newPipe() *pipe {
	return &pipe{ch: make(chan []byte, chunkDepth), free: make(chan []byte, chunkDepth+2), done: make(chan struct{})}
}

func (p *pipe) getChunk() []byte {
	select {
	case b := <-p.free:
		return b[:0]
	default:
		return make([]byte, 0, chunkSize)
	}
}

// writer returns the write side: a buffered writer that sends full chunks.
func (p *pipe) writer() *pipeWriter { return &pipeWriter{p: p, buf: p.getChunk()} }

type pipeWriter struct {
	p   *pipe
	buf []byte
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], b)
		w.buf = w.buf[:len(w.buf)+k]
		b = b[k:]
		n += k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// ReadFrom lets io.Copy decompress straight into the chunk buffers.
func (w *pipeWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if len(w.buf) == cap(w.buf) {
			if ferr := w.flush(); ferr != nil {
				return total, ferr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (w *pipeWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	select {
	case w.p.ch <- w.buf:
		w.buf = w.p.getChunk()
		return nil
	case <-w.p.done:
		w.p.mu.Lock()
		defer w.p.mu.Unlock()
		return w.p.rerr
	}
}

// Close ends the stream: the reader gets the buffered bytes, then err
// (io.EOF when err is nil).
func (w *pipeWriter) Close(err error) {
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = io.EOF
	}
	w.p.mu.Lock()
	w.p.werr = err
	w.p.mu.Unlock()
	close(w.p.ch)
}

func (p *pipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.chunk != nil {
			p.recycle(p.chunk)
			p.chunk, p.cur = nil, nil
		}
		c, ok := <-p.ch
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			return 0, p.werr
		}
		p.chunk, p.cur = c, c
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

func (p *pipe) recycle(c []byte) {
	c = c[:0]
	select {
	case p.free <- c:
	default:
	}
}

// CloseRead stops the reader side; a blocked or later writer gets err.
func (p *pipe) CloseRead(err error) {
	p.once.Do(func() {
		p.mu.Lock()
		p.rerr = err
		p.mu.Unlock()
		close(p.done)
	})
}
