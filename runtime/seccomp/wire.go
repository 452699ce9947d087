package seccomp

import (
	"encoding/json"
	"errors"

	"golang.org/x/sys/unix"
)

// wireFilter is a compiled filter as the runtime hands it to a container
// process, which then loads it without running libseccomp again.
type wireFilter struct {
	Prog  [][4]uint32 `json:"prog"` // code, jt, jf, k
	Flags uintptr     `json:"flags"`
	// Skipped rides along for the compile cache (CompileCached).
	Skipped []string `json:"skipped,omitempty"`
}

// MarshalJSON encodes the compiled program.
func (f *Filter) MarshalJSON() ([]byte, error) {
	w := wireFilter{Flags: f.flags, Prog: make([][4]uint32, len(f.prog)), Skipped: f.Skipped}
	for i, ins := range f.prog {
		w.Prog[i] = [4]uint32{uint32(ins.Code), uint32(ins.Jt), uint32(ins.Jf), ins.K}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes a program encoded by MarshalJSON.
func (f *Filter) UnmarshalJSON(b []byte) error {
	var w wireFilter
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if len(w.Prog) == 0 || len(w.Prog) > maxInsns {
		return errors.New("seccomp: encoded filter has no or too many instructions")
	}
	f.flags, f.Skipped = w.Flags, w.Skipped
	f.prog = make([]unix.SockFilter, len(w.Prog))
	for i, ins := range w.Prog {
		f.prog[i] = unix.SockFilter{Code: uint16(ins[0]), Jt: uint8(ins[1]), Jf: uint8(ins[2]), K: ins[3]}
	}
	return nil
}
