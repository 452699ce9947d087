// Package stream owns the byte-stream side of the Engine API: the
// multiplexed stdio framing ("stdcopy": an 8-byte header per frame naming
// the stream and the payload length) used for containers without a TTY,
// and taking over the HTTP connection for attach and exec start
// (hijacking, with or without "Upgrade: tcp").
package stream

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// StdType names the stream a frame belongs to (the header's first byte).
type StdType byte

// The stream types, as Docker numbers them.
const (
	Stdin StdType = iota
	Stdout
	Stderr
	// Systemerr carries an error of the daemon itself, ending the stream.
	Systemerr
)

// maxFrame bounds one frame's payload, so a huge write becomes several
// frames instead of one allocation the size of the write.
const maxFrame = 32 << 10

// Multiplexer writes frames of several streams to one writer, one whole
// frame at a time, so stdout and stderr written from two goroutines never
// interleave inside a frame.
type Multiplexer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewMultiplexer frames onto w.
func NewMultiplexer(w io.Writer) *Multiplexer { return &Multiplexer{w: w} }

// Writer returns the writer of stream t: every Write becomes frames of t.
func (m *Multiplexer) Writer(t StdType) io.Writer { return &stdWriter{m: m, t: t} }

// NewStdWriter frames every Write to w as stream t. Use a Multiplexer
// when more than one stream shares w.
func NewStdWriter(w io.Writer, t StdType) io.Writer { return NewMultiplexer(w).Writer(t) }

type stdWriter struct {
	m *Multiplexer
	t StdType
}

func (s *stdWriter) Write(p []byte) (int, error) {
	if s.m == nil || s.m.w == nil {
		return 0, errors.New("stdcopy: writer closed")
	}
	written := 0
	var hdr [8]byte
	hdr[0] = byte(s.t)
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		binary.BigEndian.PutUint32(hdr[4:], uint32(n))
		s.m.mu.Lock()
		_, err := s.m.w.Write(hdr[:])
		if err == nil {
			_, err = s.m.w.Write(p[:n])
		}
		s.m.mu.Unlock()
		if err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// Demux copies a multiplexed stream from r to stdout and stderr (for
// tests and the client side). A Systemerr frame ends it with that error.
func Demux(stdout, stderr io.Writer, r io.Reader) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		var dst io.Writer
		switch StdType(hdr[0]) {
		case Stdin, Stdout:
			dst = stdout
		case Stderr:
			dst = stderr
		case Systemerr:
			b := make([]byte, min(n, 1<<20))
			if _, err := io.ReadFull(r, b); err != nil {
				return err
			}
			return errors.New(string(b))
		default:
			return errors.New("stdcopy: unknown stream type in frame header")
		}
		if dst == nil {
			dst = io.Discard
		}
		if _, err := io.CopyN(dst, r, int64(n)); err != nil {
			return err
		}
	}
}
