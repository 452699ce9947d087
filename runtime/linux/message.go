package linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/berth-dev/berth/runtime/nsenter"
)

// The init socket carries framed messages between the runtime and a
// container process: u32 type, u32 length, payload. The first messages are
// read by nsenter.c; the rest by the Go half of the container process.
const (
	msgConfig    = 100 // runtime -> init: initConfig (runtime/wire)
	msgHooks     = 101 // init -> runtime: run prestart/createRuntime hooks now
	msgHooksDone = 102 // runtime -> init
	msgReady     = 103 // init -> runtime: set up; waiting for start (or exec'ing)
	msgSeccomp   = 104 // runtime -> init: the compiled seccomp filter (binary), after msgConfig
)

const maxMessage = 16 << 20

func writeMsg(w io.Writer, typ uint32, payload []byte) error {
	buf := make([]byte, 8+len(payload))
	binary.NativeEndian.PutUint32(buf[0:], typ)
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(payload)))
	copy(buf[8:], payload)
	_, err := w.Write(buf)
	return err
}

func readMsg(r io.Reader) (uint32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	typ := binary.NativeEndian.Uint32(hdr[0:])
	n := binary.NativeEndian.Uint32(hdr[4:])
	if n > maxMessage {
		return 0, nil, fmt.Errorf("message %d too large (%d bytes)", typ, n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return typ, payload, nil
}

// expectMsg reads one message; an error message from the other side
// becomes the returned error.
func expectMsg(r io.Reader, want uint32) ([]byte, error) {
	typ, payload, err := readMsg(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("container process exited during setup")
		}
		return nil, err
	}
	if typ == nsenter.MsgError {
		return nil, errors.New(string(payload))
	}
	if typ != want {
		return nil, fmt.Errorf("unexpected message %d (want %d)", typ, want)
	}
	return payload, nil
}

// bootstrap encodes the attributes nsenter.c reads.
type bootstrap struct{ buf []byte }

func (b *bootstrap) attr(typ uint16, val []byte) {
	var hdr [8]byte
	binary.NativeEndian.PutUint16(hdr[0:], typ)
	binary.NativeEndian.PutUint32(hdr[4:], uint32(len(val)))
	b.buf = append(b.buf, hdr[:]...)
	b.buf = append(b.buf, val...)
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
}

func (b *bootstrap) u32(typ uint16, v uint32) {
	var val [4]byte
	binary.NativeEndian.PutUint32(val[:], v)
	b.attr(typ, val[:])
}

func (b *bootstrap) join(nstype uint32, path string) {
	val := make([]byte, 4, 4+len(path)+1)
	binary.NativeEndian.PutUint32(val, nstype)
	val = append(val, path...)
	b.attr(nsenter.AttrNSJoin, append(val, 0))
}

func (b *bootstrap) str(typ uint16, s string) { b.attr(typ, append([]byte(s), 0)) }
