package cgroups

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Raw bpf(2) plumbing for the v2 device controller. The attr structs mirror
// the prefixes of union bpf_attr that each command uses; the kernel accepts
// a shorter attr as long as the bytes it does not know are zero.

type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

type bpfAttachAttr struct {
	targetFd     uint32
	attachBpfFd  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFd uint32
}

type bpfQueryAttr struct {
	targetFd    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           uint32
}

type bpfGetFDByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// loadDeviceProg loads a BPF_PROG_TYPE_CGROUP_DEVICE program and returns its
// fd. On failure the verifier log is included in the error.
func loadDeviceProg(prog []insn) (int, error) {
	code := encode(prog)
	license := []byte("Apache\x00")
	attr := bpfProgLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    uint64(uintptr(unsafe.Pointer(&code[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:], "berth_dev")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	if err == nil {
		return fd, nil
	}
	// Retry with the verifier log to explain the refusal.
	logBuf := make([]byte, 64<<10)
	attr.logLevel = 1
	attr.logSize = uint32(len(logBuf))
	attr.logBuf = uint64(uintptr(unsafe.Pointer(&logBuf[0])))
	fd2, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if err2 == nil {
		return fd2, nil
	}
	n := 0
	for n < len(logBuf) && logBuf[n] != 0 {
		n++
	}
	return -1, fmt.Errorf("bpf(BPF_PROG_LOAD, cgroup device program of %d instructions): %w; verifier log: %s", len(prog), err, logBuf[:n])
}

// attachedDeviceProgs returns fds of the device programs attached directly
// to the cgroup (not inherited ones). The caller closes them.
func attachedDeviceProgs(cgFd int) ([]int, error) {
	ids := make([]uint32, 64)
	attr := bpfQueryAttr{
		targetFd:   uint32(cgFd),
		attachType: unix.BPF_CGROUP_DEVICE,
		progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
		progCnt:    uint32(len(ids)),
	}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, fmt.Errorf("bpf(BPF_PROG_QUERY): %w", err)
	}
	var fds []int
	for _, id := range ids[:attr.progCnt] {
		ga := bpfGetFDByIDAttr{id: id}
		fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&ga), unsafe.Sizeof(ga))
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // detached meanwhile
			}
			closeAll(fds)
			return nil, fmt.Errorf("bpf(BPF_PROG_GET_FD_BY_ID, %d): %w", id, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func attachOrDetach(cmd int, cgFd, progFd int, flags uint32) error {
	attr := bpfAttachAttr{
		targetFd:    uint32(cgFd),
		attachBpfFd: uint32(progFd),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: flags,
	}
	_, err := bpf(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// setDevicesV2 compiles the rules, attaches the program to dir with
// BPF_F_ALLOW_MULTI (so nested runtimes can add their own filters below
// us), then detaches the programs that were there before. Between the two
// steps both programs run and a request must pass both, so there is never a
// window where more is allowed than either rule set permits.
func setDevicesV2(dir string, rules []specs.LinuxDeviceCgroup) error {
	prog, err := deviceFilter(rules)
	if err != nil {
		return err
	}
	progFd, err := loadDeviceProg(prog)
	if err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	defer unix.Close(progFd)
	cgFd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("devices: open %s: %w", dir, err)
	}
	defer unix.Close(cgFd)
	old, err := attachedDeviceProgs(cgFd)
	if err != nil {
		return fmt.Errorf("devices: %s: %w", dir, err)
	}
	defer closeAll(old)
	if err := attachOrDetach(unix.BPF_PROG_ATTACH, cgFd, progFd, unix.BPF_F_ALLOW_MULTI); err != nil {
		return fmt.Errorf("devices: bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE) to %s: %w", dir, err)
	}
	for _, fd := range old {
		if err := attachOrDetach(unix.BPF_PROG_DETACH, cgFd, fd, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("devices: bpf(BPF_PROG_DETACH) old filter from %s: %w", dir, err)
		}
	}
	return nil
}
