package seccomp

import (
	"encoding/binary"
	"encoding/json"
	"errors"

	"golang.org/x/sys/unix"
)

// wireFilter is a compiled filter as the runtime hands it to a container
// process, which then loads it without running libseccomp again.
type wireFilter struct {
	// Prog is the program as the kernel takes it (struct sock_filter:
	// u16 code, u8 jt, u8 jf, u32 k, in the host's byte order), base64 in JSON:
	// Docker's profile is ~2000 instructions, and decoding them as one
	// string costs a fraction of decoding 8000 JSON numbers.
	Prog  []byte  `json:"bpf"`
	Flags uintptr `json:"flags"`
	// Skipped rides along for the compile cache (CompileCached).
	Skipped []string `json:"skipped,omitempty"`
}

const insnSize = 8

// MarshalJSON encodes the compiled program.
func (f *Filter) MarshalJSON() ([]byte, error) {
	w := wireFilter{Flags: f.flags, Prog: make([]byte, insnSize*len(f.prog)), Skipped: f.Skipped}
	for i, ins := range f.prog {
		b := w.Prog[insnSize*i:]
		binary.NativeEndian.PutUint16(b[0:], ins.Code)
		b[2], b[3] = ins.Jt, ins.Jf
		binary.NativeEndian.PutUint32(b[4:], ins.K)
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes a program encoded by MarshalJSON.
func (f *Filter) UnmarshalJSON(b []byte) error {
	var w wireFilter
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	n := len(w.Prog) / insnSize
	if n == 0 || n > maxInsns || len(w.Prog)%insnSize != 0 {
		return errors.New("seccomp: encoded filter is empty, too long or truncated")
	}
	f.flags, f.Skipped = w.Flags, w.Skipped
	f.prog = make([]unix.SockFilter, n)
	for i := range f.prog {
		p := w.Prog[insnSize*i:]
		f.prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(p[0:]), Jt: p[2], Jf: p[3], K: binary.NativeEndian.Uint32(p[4:])}
	}
	return nil
}
