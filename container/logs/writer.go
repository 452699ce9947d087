package logs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// MaxLineSize is where a line without a newline is cut into a partial
// entry: Docker's log copier buffer, 16 KiB.
const MaxLineSize = 16 << 10

// File is a json-file log open for writing. Its methods are safe for
// concurrent use; entries of different streams never interleave within a
// line.
type File struct {
	mu   sync.Mutex
	path string
	opts Options
	f    *os.File
	size int64  // bytes in the live file, including buf
	buf  []byte // encoded entries not yet written
	err  error  // first write error since the last Err call

	tsAt  time.Time // the time tsBuf holds, formatted once per read chunk
	tsBuf []byte
}

// Create opens the json-file log at path for appending (creating it with
// mode 0640), so a restarted container continues its log as with Docker.
func Create(path string, o Options) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, logError("open log", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, logError("stat log", path, err)
	}
	return &File{path: path, opts: o.withDefaults(), f: f, size: st.Size()}, nil
}

// logError is "OP PATH: cause", the cause kept for errors.Is. Not
// fmt.Errorf: berth-shim links this package and must stay small.
func logError(op, path string, err error) error {
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// Path is the live file's path.
func (l *File) Path() string { return l.path }

// Entry writes one entry with line as its "log" value, unchanged (the
// caller decides about the trailing newline).
func (l *File) Entry(stream string, line []byte, ts time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(stream, line, ts)
	return l.flush()
}

// add encodes an entry into the buffer, rotating first when the live file
// is full (checked before the write, as dockerd does).
func (l *File) add(stream string, line []byte, ts time.Time) {
	if l.opts.MaxSize > 0 && l.size >= l.opts.MaxSize {
		l.flush()
		l.rotate()
	}
	if !ts.Equal(l.tsAt) || l.tsBuf == nil {
		l.tsAt, l.tsBuf = ts, appendTime(l.tsBuf[:0], ts)
	}
	n := len(l.buf)
	l.buf = appendEntry(l.buf, line, stream, l.tsBuf)
	l.size += int64(len(l.buf) - n)
	// A read of short lines makes many entries (16 KiB of "y\n" is 8192):
	// write them in slices instead of growing the buffer.
	if len(l.buf) >= flushSize {
		l.flush()
	}
}

// flushSize is the write size of a burst of entries.
const flushSize = 64 << 10

func (l *File) flush() error {
	if len(l.buf) == 0 || l.f == nil {
		l.buf = l.buf[:0]
		return nil
	}
	_, err := l.f.Write(l.buf)
	l.buf = l.buf[:0]
	if err != nil {
		err = logError("write log", l.path, err)
		if l.err == nil {
			l.err = err
		}
	}
	// A buffer grown by a huge line is not kept for the container's life.
	if cap(l.buf) > 4*flushSize {
		l.buf = nil
	}
	return err
}

func (l *File) rotate() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if l.opts.MaxFile > 1 {
		unlock := lockDir(l.path, syscall.LOCK_EX)
		defer unlock()
		for i := l.opts.MaxFile - 1; i > 1; i-- {
			err := os.Rename(l.path+"."+strconv.Itoa(i-1), l.path+"."+strconv.Itoa(i))
			if err != nil && !errors.Is(err, fs.ErrNotExist) && l.err == nil {
				l.err = logError("rotate log", l.path, err)
			}
		}
		if err := os.Rename(l.path, l.path+".1"); err != nil && l.err == nil {
			l.err = logError("rotate log", l.path, err)
		}
	}
	// With one file only, dockerd truncates in place.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		if l.err == nil {
			l.err = logError("reopen log", l.path+" after rotation", err)
		}
		return
	}
	l.f, l.size = f, 0
}

// Err returns, and forgets, the first write or rotation error since the
// last call: writing never stops on errors (a full disk must not stall the
// container), but the shim reports them.
func (l *File) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.err
	l.err = nil
	return err
}

// Close flushes and closes the live file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.flush()
	if l.f != nil {
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
		l.f = nil
	}
	return err
}

// LineWriter cuts one stream's output into entries the way Docker's log
// copier does: an entry per line (its newline kept), a line over
// MaxLineSize in MaxLineSize pieces without newline that all carry the
// time of the first piece, and, at Close, the unterminated rest.
type LineWriter struct {
	log       *File
	stream    string
	carry     []byte
	partialAt time.Time // time of the first piece of the line being cut; zero if none
}

// Stream returns the LineWriter for stream ("stdout" or "stderr").
func (l *File) Stream(stream string) *LineWriter {
	return &LineWriter{log: l, stream: stream}
}

// Write logs every complete line in p and keeps the rest for the next
// call. All of p is always consumed; the error is the log file's.
func (w *LineWriter) Write(p []byte) (int, error) {
	n := len(p)
	now := time.Now()
	l := w.log
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(p) > 0 {
		room := MaxLineSize - len(w.carry)
		i := bytes.IndexByte(p[:min(len(p), room)], '\n')
		if i >= 0 {
			line := p[:i+1]
			if len(w.carry) > 0 {
				w.carry = append(w.carry, line...)
				line = w.carry
			}
			l.add(w.stream, line, w.lineTime(now))
			w.carry, w.partialAt = w.carry[:0], time.Time{}
			p = p[i+1:]
			continue
		}
		take := min(len(p), room)
		if take == MaxLineSize {
			// A full piece straight from p: no copy.
			l.add(w.stream, p[:take], w.lineTime(now))
			w.partialAt = w.lineTime(now)
		} else {
			w.carry = append(w.carry, p[:take]...)
			if len(w.carry) == MaxLineSize {
				l.add(w.stream, w.carry, w.lineTime(now))
				w.partialAt = w.lineTime(now)
				w.carry = w.carry[:0]
			}
		}
		p = p[take:]
	}
	return n, l.flush()
}

func (w *LineWriter) lineTime(now time.Time) time.Time {
	if !w.partialAt.IsZero() {
		return w.partialAt
	}
	return now
}

// Close logs what is left of an unterminated last line, without a
// newline, as Docker does at the end of a stream.
func (w *LineWriter) Close() error {
	l := w.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(w.carry) > 0 {
		l.add(w.stream, w.carry, w.lineTime(time.Now()))
		w.carry, w.partialAt = nil, time.Time{}
	}
	return l.flush()
}
