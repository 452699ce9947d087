package seccomp

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// A compiled filter travels from the runtime to a container process (and
// into the compile cache) in a binary form, so that it is loaded without
// running libseccomp again and without a text codec: Docker's profile is
// ~2000 instructions, and as JSON they were a fair share of both
// processes' CPU time. The form, in the host's byte order:
//
//	"BSF1" | flags u64 | skipped count u32 | (len u32, name)... |
//	instruction count u32 | struct sock_filter (u16 code, u8 jt, u8 jf, u32 k)...
const wireMagic = "BSF1"

const insnSize = 8

// MarshalBinary encodes the compiled program.
func (f *Filter) MarshalBinary() ([]byte, error) {
	n := len(wireMagic) + 8 + 4 + 4 + insnSize*len(f.prog)
	for _, s := range f.Skipped {
		n += 4 + len(s)
	}
	b := make([]byte, 0, n)
	b = append(b, wireMagic...)
	b = binary.NativeEndian.AppendUint64(b, uint64(f.flags))
	b = binary.NativeEndian.AppendUint32(b, uint32(len(f.Skipped)))
	for _, s := range f.Skipped {
		b = binary.NativeEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.NativeEndian.AppendUint32(b, uint32(len(f.prog)))
	for _, ins := range f.prog {
		b = binary.NativeEndian.AppendUint16(b, ins.Code)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.NativeEndian.AppendUint32(b, ins.K)
	}
	return b, nil
}

var errWire = errors.New("seccomp: encoded filter is damaged")

// UnmarshalBinary decodes a program encoded by MarshalBinary.
func (f *Filter) UnmarshalBinary(b []byte) error {
	if len(b) < len(wireMagic) || string(b[:len(wireMagic)]) != wireMagic {
		return errWire
	}
	b = b[len(wireMagic):]
	u32 := func() (uint32, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := binary.NativeEndian.Uint32(b)
		b = b[4:]
		return v, true
	}
	if len(b) < 8 {
		return errWire
	}
	flags := uintptr(binary.NativeEndian.Uint64(b))
	b = b[8:]
	ns, ok := u32()
	if !ok || uint64(ns) > uint64(len(b)) {
		return errWire
	}
	var skipped []string
	for i := uint32(0); i < ns; i++ {
		l, ok := u32()
		if !ok || uint64(l) > uint64(len(b)) {
			return errWire
		}
		skipped = append(skipped, string(b[:l]))
		b = b[l:]
	}
	n, ok := u32()
	if !ok || n == 0 || n > maxInsns || uint64(len(b)) != uint64(n)*insnSize {
		return errors.New("seccomp: encoded filter is empty, too long or truncated")
	}
	prog := make([]unix.SockFilter, n)
	for i := range prog {
		p := b[insnSize*i:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(p), Jt: p[2], Jf: p[3], K: binary.NativeEndian.Uint32(p[4:])}
	}
	f.prog, f.flags, f.Skipped = prog, flags, skipped
	return nil
}
