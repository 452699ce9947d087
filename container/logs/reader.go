package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Entry is one logged message as `docker logs` shows it.
type Entry struct {
	Stream string    // "stdout" or "stderr"
	Line   []byte    // the bytes the container wrote, newline included if it ended the line
	Time   time.Time // when the shim read them (UTC)
}

// TimestampFormat is how `docker logs --timestamps` prints an entry's
// time: RFC 3339 with exactly nine fractional digits.
const TimestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Timestamped returns the line prefixed as `docker logs -t` prints it.
func (e Entry) Timestamped() []byte {
	b := e.Time.UTC().AppendFormat(nil, TimestampFormat)
	b = append(b, ' ')
	return append(b, e.Line...)
}

// ReadOptions select what Read returns.
type ReadOptions struct {
	// Stdout and Stderr select the streams; with neither set nothing is
	// returned (the API refuses that request before it gets here).
	Stdout, Stderr bool
	// Since and Until bound entry times (inclusive); zero means unbounded.
	Since, Until time.Time
	// Tail, when >= 0, starts with the last Tail entries of the log
	// (counted before the stream and time filters, as dockerd does).
	Tail int
	// Follow keeps reading what the container writes, across rotations,
	// until ctx ends, an entry passes Until, or Done is closed.
	Follow bool
	// Done is closed by the caller when the container has exited and its
	// shim has written everything: Read then returns once it has read
	// what is left. Nil means follow until ctx ends.
	Done <-chan struct{}
}

// Read calls fn for each entry of the json-file log at path (and its
// rotated files) that opts select, oldest first. It stops at fn's first
// error and returns it. A log that does not exist yet reads as empty.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	r := &reader{path: path, opts: opts, fn: fn}
	defer r.closeAll()
	if err := r.openAll(); err != nil {
		return err
	}
	if opts.Tail >= 0 {
		if err := r.seekTail(opts.Tail); err != nil {
			return err
		}
	}
	// Everything present now, oldest file first.
	for i, f := range r.files {
		done, err := r.drain(f)
		if err != nil || done {
			return err
		}
		if i < len(r.files)-1 {
			r.pending = r.pending[:0] // a rotated file ends with a whole entry
		}
	}
	if !opts.Follow {
		return nil
	}
	return r.follow(ctx)
}

type logFile struct {
	f   *os.File
	ino uint64
	off int64
	// end is the file's size when it was opened: a read without Follow
	// stops there, so that a container writing meanwhile cannot make
	// `logs --tail 2` return thousands of lines.
	end int64
}

type reader struct {
	path    string
	opts    ReadOptions
	fn      func(Entry) error
	files   []*logFile // oldest first; the last is the live one
	pending []byte     // the unterminated tail of the last read
	buf     []byte
}

// rotatedPaths lists the log's files, oldest first.
func (r *reader) rotatedPaths() []string {
	var rotated []string
	for i := 1; ; i++ {
		p := r.path + "." + strconv.Itoa(i)
		if _, err := os.Lstat(p); err != nil {
			break
		}
		rotated = append(rotated, p)
	}
	paths := make([]string, 0, len(rotated)+1)
	for i := len(rotated) - 1; i >= 0; i-- {
		paths = append(paths, rotated[i])
	}
	return append(paths, r.path)
}

func inode(f *os.File) (uint64, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	if sys == nil {
		return 0, st.Size(), nil
	}
	return sys.Ino, st.Size(), nil
}

// openAll opens every file now, so rotations while reading cannot pull
// one away.
func (r *reader) openAll() error {
	files, err := r.openFiles()
	r.files = files
	return err
}

// openFiles opens the rotated files and the live one, oldest first, each
// file once: the writer cannot rotate meanwhile (lockDir).
func (r *reader) openFiles() ([]*logFile, error) {
	unlock := lockDir(r.path, syscall.LOCK_SH)
	defer unlock()
	var files []*logFile
	fail := func(err error) ([]*logFile, error) {
		for _, f := range files {
			f.f.Close()
		}
		return nil, err
	}
	for _, p := range r.rotatedPaths() {
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // a log not created yet
			}
			return fail(fmt.Errorf("open log %s: %w", p, err))
		}
		ino, size, err := inode(f)
		if err != nil {
			f.Close()
			return fail(fmt.Errorf("stat log %s: %w", p, err))
		}
		files = append(files, &logFile{f: f, ino: ino, end: size})
	}
	return files, nil
}

func (r *reader) closeAll() {
	for _, f := range r.files {
		if f != nil { // follow's slot for a log not created yet
			f.f.Close()
		}
	}
}

// seekTail positions the files so that reading yields the last n entries:
// it scans backwards from the end of the newest file.
func (r *reader) seekTail(n int) error {
	var chunk [32 << 10]byte
	for i := len(r.files) - 1; i >= 0; i-- {
		lf := r.files[i]
		size := lf.end
		if n == 0 {
			lf.off = size
			continue
		}
		end := size
		// A final newline ends the last entry; it does not start one.
		skipLast := true
		found := false
		for end > 0 && !found {
			start := max(0, end-int64(len(chunk)))
			b := chunk[:end-start]
			if _, err := lf.f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read log %s: %w", lf.f.Name(), err)
			}
			for j := len(b) - 1; j >= 0; j-- {
				if b[j] != '\n' {
					continue
				}
				if skipLast && start+int64(j) == size-1 {
					skipLast = false
					continue
				}
				n--
				if n == 0 {
					lf.off = start + int64(j) + 1
					found = true
					break
				}
			}
			end = start
		}
		if found {
			// Older files are skipped entirely.
			for _, old := range r.files[:i] {
				old.f.Close()
			}
			r.files = r.files[i:]
			return nil
		}
		if size > 0 {
			n-- // the file's first entry
		}
		lf.off = 0
		if n <= 0 {
			for _, old := range r.files[:i] {
				old.f.Close()
			}
			r.files = r.files[i:]
			return nil
		}
	}
	return nil
}

// drain reads f from its offset to its current end, handing out every
// complete entry. done reports that the reader should stop (Until passed).
func (r *reader) drain(lf *logFile) (done bool, err error) {
	if r.buf == nil {
		r.buf = make([]byte, 64<<10)
	}
	for {
		buf := r.buf
		if !r.opts.Follow {
			if lf.off >= lf.end {
				return false, nil
			}
			buf = buf[:min(int64(len(buf)), lf.end-lf.off)]
		}
		n, err := lf.f.ReadAt(buf, lf.off)
		if n > 0 {
			lf.off += int64(n)
			data := buf[:n]
			if len(r.pending) > 0 {
				r.pending = append(r.pending, data...)
				data = r.pending
			}
			last := bytes.LastIndexByte(data, '\n')
			if last < 0 {
				if len(r.pending) == 0 {
					r.pending = append(r.pending, data...)
				}
				continue
			}
			lines := data[:last+1]
			rest := data[last+1:]
			for len(lines) > 0 {
				i := bytes.IndexByte(lines, '\n')
				stop, err := r.entry(lines[:i])
				if err != nil || stop {
					return true, err
				}
				lines = lines[i+1:]
			}
			r.pending = append(r.pending[:0], rest...)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, fmt.Errorf("read log %s: %w", lf.f.Name(), err)
		}
	}
}

type jsonEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// entry decodes one line and hands it to fn if selected. stop is true once
// an entry is past Until.
func (r *reader) entry(line []byte) (stop bool, err error) {
	if len(line) == 0 {
		return false, nil
	}
	var je jsonEntry
	if err := json.Unmarshal(line, &je); err != nil {
		// A torn line (a crash mid-write) is skipped as dockerd skips it.
		return false, nil
	}
	if !r.opts.Until.IsZero() && je.Time.After(r.opts.Until) {
		return true, nil
	}
	if !r.opts.Since.IsZero() && je.Time.Before(r.opts.Since) {
		return false, nil
	}
	switch je.Stream {
	case "stdout":
		if !r.opts.Stdout {
			return false, nil
		}
	case "stderr":
		if !r.opts.Stderr {
			return false, nil
		}
	}
	return false, r.fn(Entry{Stream: je.Stream, Line: []byte(je.Log), Time: je.Time})
}
