// Package seccomp owns the translation of an OCI linux.seccomp section into a
// kernel seccomp BPF filter, and the installation of that filter.
//
// The work is split in two so that every mistake in a config surfaces in the
// runtime's parent process, before any container process exists:
//
//   - Compile validates the config and asks libseccomp to generate the BPF
//     program. It is the only code here that calls into libseccomp (cgo).
//   - Filter.Load hands the finished program to seccomp(2) directly. It does
//     not call libseccomp, allocate C memory or touch /proc, so it is safe to
//     call at the very end of the container init, right before execve.
//
// Loading the program ourselves (instead of seccomp_load) is also what lets
// the OCI "flags" field mean exactly what it says: libseccomp-golang always
// turns TSYNC on, whereas here TSYNC, LOG and SPEC_ALLOW are passed to the
// kernel only when the config asks for them.
//
// # Static linking
//
// libseccomp-golang declares "#cgo pkg-config: libseccomp", which on Debian
// yields just "-lseccomp" (libseccomp has no dependencies of its own), so a
// fully static binary links against Debian's libseccomp.a with no build tags
// or extra LDFLAGS:
//
//	CGO_ENABLED=1 go build -ldflags '-linkmode external -extldflags "-static"' ./cmd/berth-runtime
//
// (needs libseccomp-dev, which ships libseccomp.a, and pkg-config).
package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Filter is a compiled seccomp program ready to be loaded. A nil *Filter
// (what Compile returns for a nil config) loads nothing.
type Filter struct {
	prog  []unix.SockFilter
	flags uintptr
	// Skipped lists the syscall names of the config that libseccomp does not
	// know; their rules were left out. Callers may log them.
	Skipped []string
}

// errNotify is returned for every use of SCMP_ACT_NOTIFY / listenerPath:
// Berth has no seccomp agent support yet.
var errNotify = errors.New("seccomp notify not supported")

// actions maps OCI action names to libseccomp actions (errno not yet set).
var actions = map[specs.LinuxSeccompAction]libseccomp.ScmpAction{
	specs.ActKill:        libseccomp.ActKillThread, // SCMP_ACT_KILL historically kills the thread
	specs.ActKillThread:  libseccomp.ActKillThread,
	specs.ActKillProcess: libseccomp.ActKillProcess,
	specs.ActTrap:        libseccomp.ActTrap,
	specs.ActErrno:       libseccomp.ActErrno,
	specs.ActTrace:       libseccomp.ActTrace,
	specs.ActAllow:       libseccomp.ActAllow,
	specs.ActLog:         libseccomp.ActLog,
}

// kernelActions maps the actions to the SECCOMP_RET_* value used to ask the
// kernel whether it implements them (SECCOMP_GET_ACTION_AVAIL).
var kernelActions = map[specs.LinuxSeccompAction]uint32{
	specs.ActKill:        unix.SECCOMP_RET_KILL_THREAD,
	specs.ActKillThread:  unix.SECCOMP_RET_KILL_THREAD,
	specs.ActKillProcess: unix.SECCOMP_RET_KILL_PROCESS,
	specs.ActTrap:        unix.SECCOMP_RET_TRAP,
	specs.ActErrno:       unix.SECCOMP_RET_ERRNO,
	specs.ActTrace:       unix.SECCOMP_RET_TRACE,
	specs.ActAllow:       unix.SECCOMP_RET_ALLOW,
	specs.ActLog:         unix.SECCOMP_RET_LOG,
}

var archs = map[specs.Arch]libseccomp.ScmpArch{
	specs.ArchX86:         libseccomp.ArchX86,
	specs.ArchX86_64:      libseccomp.ArchAMD64,
	specs.ArchX32:         libseccomp.ArchX32,
	specs.ArchARM:         libseccomp.ArchARM,
	specs.ArchAARCH64:     libseccomp.ArchARM64,
	specs.ArchMIPS:        libseccomp.ArchMIPS,
	specs.ArchMIPS64:      libseccomp.ArchMIPS64,
	specs.ArchMIPS64N32:   libseccomp.ArchMIPS64N32,
	specs.ArchMIPSEL:      libseccomp.ArchMIPSEL,
	specs.ArchMIPSEL64:    libseccomp.ArchMIPSEL64,
	specs.ArchMIPSEL64N32: libseccomp.ArchMIPSEL64N32,
	specs.ArchPPC:         libseccomp.ArchPPC,
	specs.ArchPPC64:       libseccomp.ArchPPC64,
	specs.ArchPPC64LE:     libseccomp.ArchPPC64LE,
	specs.ArchS390:        libseccomp.ArchS390,
	specs.ArchS390X:       libseccomp.ArchS390X,
	specs.ArchPARISC:      libseccomp.ArchPARISC,
	specs.ArchPARISC64:    libseccomp.ArchPARISC64,
	specs.ArchRISCV64:     libseccomp.ArchRISCV64,
	specs.ArchLOONGARCH64: libseccomp.ArchLOONGARCH64,
	specs.ArchM68K:        libseccomp.ArchM68K,
	specs.ArchSH:          libseccomp.ArchSH,
	specs.ArchSHEB:        libseccomp.ArchSHEB,
}

var ops = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// flagTSYNC is not among the runtime-spec constants but runc accepts it.
const flagTSYNC specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"

var flags = map[specs.LinuxSeccompFlag]uintptr{
	flagTSYNC:                       unix.SECCOMP_FILTER_FLAG_TSYNC,
	specs.LinuxSeccompFlagLog:       unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow: unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}

// maxInsns is the kernel's BPF_MAXINSNS; longer programs get EINVAL at load.
const maxInsns = 4096

// Compile validates c and builds its BPF program without loading it.
// A nil c yields a nil *Filter and no error.
func Compile(c *specs.LinuxSeccomp) (*Filter, error) {
	if c == nil {
		return nil, nil
	}
	if c.ListenerPath != "" || c.ListenerMetadata != "" {
		return nil, fmt.Errorf("seccomp: listenerPath: %w", errNotify)
	}
	defAct, err := action(c.DefaultAction, c.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}

	out := &Filter{}
	for _, f := range c.Flags {
		bit, ok := flags[f]
		if !ok {
			if f == specs.LinuxSeccompFlagWaitKillableRecv {
				// Only meaningful with a notify listener; the kernel rejects it otherwise.
				return nil, fmt.Errorf("seccomp: flag %s: %w", f, errNotify)
			}
			return nil, fmt.Errorf("seccomp: unknown flag %q", f)
		}
		if !flagSupported(bit) {
			return nil, fmt.Errorf("seccomp: flag %s is not supported by this kernel", f)
		}
		out.flags |= bit
	}

	filter, err := libseccomp.NewFilter(defAct)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction %s: %w", c.DefaultAction, err)
	}
	defer filter.Release()

	// seccomp_init already added the native arch, so it is always included.
	for _, a := range c.Architectures {
		sa, ok := archs[a]
		if !ok {
			return nil, fmt.Errorf("seccomp: unknown architecture %q", a)
		}
		if err := filter.AddArch(sa); err != nil {
			// e.g. unknown to this libseccomp, or of the other endianness
			// than the native arch (libseccomp cannot mix them).
			return nil, fmt.Errorf("seccomp: cannot add architecture %s: %w", a, err)
		}
	}

	for i, sc := range c.Syscalls {
		if err := addRule(filter, defAct, sc, out); err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d]: %w", i, err)
		}
	}

	out.prog, err = exportBPF(filter)
	if err != nil {
		return nil, fmt.Errorf("seccomp: generating BPF: %w", err)
	}
	if len(out.prog) > maxInsns {
		return nil, fmt.Errorf("seccomp: filter has %d BPF instructions, the kernel limit is %d", len(out.prog), maxInsns)
	}
	return out, nil
}

// action converts an OCI action plus optional errno into a libseccomp action.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (libseccomp.ScmpAction, error) {
	if a == specs.ActNotify {
		return 0, fmt.Errorf("%s: %w", a, errNotify)
	}
	sa, ok := actions[a]
	if !ok {
		return 0, fmt.Errorf("unknown action %q", a)
	}
	switch sa {
	case libseccomp.ActErrno, libseccomp.ActTrace:
		ret := uint(unix.EPERM) // OCI: EPERM when errnoRet is absent
		if errnoRet != nil {
			ret = *errnoRet
		}
		// The kernel keeps 16 bits of data, and clamps errno to MAX_ERRNO;
		// refuse values that would be silently changed.
		limit := uint(0xffff)
		if sa == libseccomp.ActErrno {
			limit = 4095
		}
		if ret > limit {
			return 0, fmt.Errorf("%s: errnoRet %d out of range (max %d)", a, ret, limit)
		}
		return sa.SetReturnCode(int16(uint16(ret))), nil
	}
	if errnoRet != nil {
		return 0, fmt.Errorf("%s: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE", a)
	}
	return sa, nil
}

func addRule(filter *libseccomp.ScmpFilter, defAct libseccomp.ScmpAction, sc specs.LinuxSyscall, out *Filter) error {
	if len(sc.Names) == 0 {
		return errors.New("rule has no syscall names")
	}
	act, err := action(sc.Action, sc.ErrnoRet)
	if err != nil {
		return fmt.Errorf("syscall %s: %w", strings.Join(sc.Names, ","), err)
	}

	// Build the conditions before the default-action shortcut so a bad op or
	// index is reported even on a rule we would skip.
	conds := make([]libseccomp.ScmpCondition, 0, len(sc.Args))
	seen := map[uint]bool{}
	split := false
	for _, a := range sc.Args {
		op, ok := ops[a.Op]
		if !ok {
			return fmt.Errorf("syscall %s: unknown operator %q", sc.Names[0], a.Op)
		}
		if a.Index > 5 {
			return fmt.Errorf("syscall %s: argument index %d out of range (0-5)", sc.Names[0], a.Index)
		}
		vals := []uint64{a.Value}
		if op == libseccomp.CompareMaskedEqual {
			vals = append(vals, a.ValueTwo) // Value is the mask, ValueTwo the datum
		}
		cond, err := libseccomp.MakeCondition(a.Index, op, vals...)
		if err != nil {
			return fmt.Errorf("syscall %s: arg %d: %w", sc.Names[0], a.Index, err)
		}
		if seen[a.Index] {
			split = true
		}
		seen[a.Index] = true
		conds = append(conds, cond)
	}

	// libseccomp refuses a rule whose action is the default; it would be a
	// no-op anyway.
	if act == defAct {
		return nil
	}

	for _, name := range sc.Names {
		if strings.IndexByte(name, 0) >= 0 {
			// C would see a truncated (different) name; treat as unknown.
			out.Skipped = append(out.Skipped, name)
			continue
		}
		nr, err := libseccomp.GetSyscallFromName(name)
		if err != nil {
			// Profiles routinely list syscalls newer than our libseccomp.
			out.Skipped = append(out.Skipped, name)
			continue
		}
		switch {
		case len(conds) == 0:
			err = filter.AddRule(nr, act)
		case !split:
			// Conditions on distinct arguments: one rule, ANDed.
			err = filter.AddRuleConditional(nr, act, conds)
		default:
			// libseccomp rejects two comparisons on the same argument in
			// one rule. Like runc, give each condition its own rule, which
			// makes them ORed; profiles written for runc rely on this.
			for _, c := range conds {
				if err = filter.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("syscall %s: adding rule: %w", name, err)
		}
	}
	return nil
}

// exportBPF gets the generated program out of libseccomp. The 2.5 series has
// no in-memory export, so it goes through an anonymous memfd.
func exportBPF(filter *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("berth-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth-seccomp")
	defer f.Close()
	if err := filter.ExportBPF(f); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	const insn = 8 // struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
	if len(raw) == 0 || len(raw)%insn != 0 {
		return nil, fmt.Errorf("libseccomp exported %d bytes, not a whole number of instructions", len(raw))
	}
	prog := make([]unix.SockFilter, len(raw)/insn)
	for i := range prog {
		b := raw[i*insn:]
		prog[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:]),
		}
	}
	return prog, nil
}

// Load installs the filter on the calling OS thread, or on every thread of
// the process when the config asked for SECCOMP_FILTER_FLAG_TSYNC. The caller
// must already have set no_new_privs or hold CAP_SYS_ADMIN. Loading a nil
// Filter does nothing.
//
// Without TSYNC only the calling thread is filtered, so a Go caller must
// runtime.LockOSThread and execve from that same thread. Every syscall the
// caller makes after Load is filtered too, so Load should be the last step
// before execve, and the profile must allow execve.
func (f *Filter) Load() error {
	if f == nil {
		return nil
	}
	if len(f.prog) == 0 {
		return errors.New("seccomp: empty filter (not built by Compile)")
	}
	fprog := unix.SockFprog{Len: uint16(len(f.prog)), Filter: &f.prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, f.flags, uintptr(unsafe.Pointer(&fprog)))
	switch {
	case errno == unix.EACCES:
		return fmt.Errorf("seccomp: load: %w (set no_new_privs or hold CAP_SYS_ADMIN first)", errno)
	case errno != 0:
		return fmt.Errorf("seccomp: load: %w", errno)
	case r != 0:
		// With TSYNC the kernel returns the id of a thread it could not
		// synchronise (it already has a diverging filter).
		return fmt.Errorf("seccomp: load: thread %d could not be synchronised (TSYNC)", r)
	}
	return nil
}

// Len reports the number of BPF instructions in the program.
func (f *Filter) Len() int {
	if f == nil {
		return 0
	}
	return len(f.prog)
}

// flagSupported asks the kernel about a filter flag the way libseccomp does:
// with a NULL program, a known flag fails with EFAULT and an unknown one
// with EINVAL. Nothing is installed either way.
func flagSupported(bit uintptr) bool {
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, bit, 0)
	return errno == unix.EFAULT
}

func actionSupported(ret uint32) bool {
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&ret)))
	return errno == 0
}

var supported = sync.OnceValues(func() (res [3][]string, _ error) {
	for _, a := range []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog,
	} {
		if actionSupported(kernelActions[a]) {
			res[0] = append(res[0], string(a))
		}
	}
	// An architecture is listed if this libseccomp can add it to a filter
	// next to the native one, i.e. if a config naming it would compile here.
	for _, a := range []specs.Arch{
		specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
		specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
		specs.ArchSH, specs.ArchSHEB,
	} {
		scratch, err := libseccomp.NewFilter(libseccomp.ActAllow)
		if err != nil {
			break
		}
		if scratch.AddArch(archs[a]) == nil {
			res[1] = append(res[1], string(a))
		}
		scratch.Release()
	}
	for _, f := range []specs.LinuxSeccompFlag{flagTSYNC, specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow} {
		if flagSupported(flags[f]) {
			res[2] = append(res[2], string(f))
		}
	}
	return res, nil
})

// Supported reports, for `berth-runtime features`, the actions the kernel
// implements (SCMP_ACT_NOTIFY is never listed: Berth does not support it),
// the architectures a config may name on this host (known to this libseccomp
// and of the native endianness), and the filter flags the kernel accepts.
func Supported() (actions, archs, flags []string) {
	r, _ := supported()
	return r[0], r[1], r[2]
}
