// Package caps owns the five Linux capability sets of a container process
// (bounding, effective, permitted, inheritable, ambient): parsing the OCI
// process.capabilities names and applying them to the calling thread.
//
// Capabilities live in the credentials of a single thread, not of the
// process. Everything here acts on the calling OS thread only, so the
// container init must runtime.LockOSThread, do all of this, and execve from
// that same thread. The expected order in the init is:
//
//	DropBounding()              // needs CAP_SETPCAP, so while still fully privileged
//	KeepCaps(true)              // keep permitted caps across the uid change
//	setgroups/setresgid/setresuid (per-thread raw syscalls)
//	KeepCaps(false)
//	Apply()                     // capset + ambient raise
//	seccomp load, execve
//
// Only golang.org/x/sys/unix is used (capget/capset/prctl).
package caps

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/rawio"
)

// names maps every capability this package knows to its number.
var names = map[string]uint{
	"CAP_CHOWN":              unix.CAP_CHOWN,
	"CAP_DAC_OVERRIDE":       unix.CAP_DAC_OVERRIDE,
	"CAP_DAC_READ_SEARCH":    unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER":             unix.CAP_FOWNER,
	"CAP_FSETID":             unix.CAP_FSETID,
	"CAP_KILL":               unix.CAP_KILL,
	"CAP_SETGID":             unix.CAP_SETGID,
	"CAP_SETUID":             unix.CAP_SETUID,
	"CAP_SETPCAP":            unix.CAP_SETPCAP,
	"CAP_LINUX_IMMUTABLE":    unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE":   unix.CAP_NET_BIND_SERVICE,
	"CAP_NET_BROADCAST":      unix.CAP_NET_BROADCAST,
	"CAP_NET_ADMIN":          unix.CAP_NET_ADMIN,
	"CAP_NET_RAW":            unix.CAP_NET_RAW,
	"CAP_IPC_LOCK":           unix.CAP_IPC_LOCK,
	"CAP_IPC_OWNER":          unix.CAP_IPC_OWNER,
	"CAP_SYS_MODULE":         unix.CAP_SYS_MODULE,
	"CAP_SYS_RAWIO":          unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT":         unix.CAP_SYS_CHROOT,
	"CAP_SYS_PTRACE":         unix.CAP_SYS_PTRACE,
	"CAP_SYS_PACCT":          unix.CAP_SYS_PACCT,
	"CAP_SYS_ADMIN":          unix.CAP_SYS_ADMIN,
	"CAP_SYS_BOOT":           unix.CAP_SYS_BOOT,
	"CAP_SYS_NICE":           unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE":       unix.CAP_SYS_RESOURCE,
	"CAP_SYS_TIME":           unix.CAP_SYS_TIME,
	"CAP_SYS_TTY_CONFIG":     unix.CAP_SYS_TTY_CONFIG,
	"CAP_MKNOD":              unix.CAP_MKNOD,
	"CAP_LEASE":              unix.CAP_LEASE,
	"CAP_AUDIT_WRITE":        unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL":      unix.CAP_AUDIT_CONTROL,
	"CAP_SETFCAP":            unix.CAP_SETFCAP,
	"CAP_MAC_OVERRIDE":       unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN":          unix.CAP_MAC_ADMIN,
	"CAP_SYSLOG":             unix.CAP_SYSLOG,
	"CAP_WAKE_ALARM":         unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND":      unix.CAP_BLOCK_SUSPEND,
	"CAP_AUDIT_READ":         unix.CAP_AUDIT_READ,
	"CAP_PERFMON":            unix.CAP_PERFMON,
	"CAP_BPF":                unix.CAP_BPF,
	"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// capName returns the name of capability c, or "cap_N" if it has none here.
func capName(c uint) string {
	for n, v := range names {
		if v == c {
			return n
		}
	}
	return "cap_" + strconv.FormatUint(uint64(c), 10)
}

// lastCap is the highest capability number the running kernel knows.
var lastCap = sync.OnceValue(func() uint {
	if b, err := rawio.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8); err == nil {
			return uint(n)
		}
	}
	// /proc may be missing or masked (we may run inside the container's
	// mount namespace): ask the kernel, which rejects unknown caps with
	// EINVAL.
	c := uint(63)
	for c > 0 {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil {
			break
		}
		c--
	}
	return c
})

// mask is a capability set, one bit per capability number.
type mask uint64

func (m mask) has(c uint) bool { return m&(1<<c) != 0 }

func (m mask) names() []string {
	var out []string
	for c := uint(0); c < 64; c++ {
		if m.has(c) {
			out = append(out, capName(c))
		}
	}
	return out
}

// Set is a validated set of the five capability sets of a process.
type Set struct {
	bounding, effective, permitted, inheritable, ambient mask
	ignored                                              []string
}

// New parses the OCI capability names. A name this package does not know is
// an error; a known name the running kernel does not have yet (above
// /proc/sys/kernel/cap_last_cap) is dropped without error and reported by
// Ignored, so the caller can warn like runc does. A nil c yields empty sets.
func New(c *specs.LinuxCapabilities) (*Set, error) {
	s := &Set{}
	if c == nil {
		return s, nil
	}
	last := lastCap()
	var unknown []string
	ignored := map[string]bool{}
	parse := func(list []string) mask {
		var m mask
		for _, n := range list {
			v, ok := names[strings.ToUpper(n)]
			switch {
			case !ok:
				unknown = append(unknown, n)
			case v > last:
				if !ignored[n] {
					ignored[n] = true
					s.ignored = append(s.ignored, n)
				}
			default:
				m |= 1 << v
			}
		}
		return m
	}
	s.bounding = parse(c.Bounding)
	s.effective = parse(c.Effective)
	s.permitted = parse(c.Permitted)
	s.inheritable = parse(c.Inheritable)
	s.ambient = parse(c.Ambient)
	if len(unknown) > 0 {
		return nil, fmt.Errorf("caps: unknown capabilities: %s", strings.Join(unknown, ", "))
	}
	// The kernel refuses these at capset / ambient raise time; say why now,
	// in the parent, rather than with a bare EPERM in the container init.
	if extra := s.effective &^ s.permitted; extra != 0 {
		return nil, fmt.Errorf("caps: effective capabilities not in the permitted set: %s", strings.Join(extra.names(), ", "))
	}
	// An ambient capability outside permitted∩inheritable cannot exist;
	// runc ignores such entries (its own `runc spec` lists ambient caps
	// without inheritable ones), so configs written for it keep working.
	s.ambient &= s.permitted & s.inheritable
	return s, nil
}

// Ignored returns the names New dropped because the kernel is older than
// them.
func (s *Set) Ignored() []string { return s.ignored }

// DropBounding removes every capability not in the bounding set from the
// calling thread's bounding set. It needs CAP_SETPCAP in the effective set,
// so call it before Apply drops that.
func (s *Set) DropBounding() error {
	for c := uint(0); c <= lastCap(); c++ {
		if s.bounding.has(c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("caps: dropping %s from the bounding set: %w", capName(c), err)
		}
	}
	return nil
}

// Apply sets the effective, permitted and inheritable sets of the calling
// thread, then its ambient set (cleared first, so only the configured
// capabilities end up ambient). The caller must have locked its OS thread
// and must execve from it.
func (s *Set) Apply() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("caps: clearing the ambient set: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		sh := 32 * i
		data[i].Effective = uint32(s.effective >> sh)
		data[i].Permitted = uint32(s.permitted >> sh)
		data[i].Inheritable = uint32(s.inheritable >> sh)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("caps: capset: %w: %s", err, s.explainEPERM())
		}
		return fmt.Errorf("caps: capset: %w", err)
	}
	for c := uint(0); c < 64; c++ {
		if !s.ambient.has(c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("caps: raising ambient %s: %w", capName(c), err)
		}
	}
	return nil
}

// Verify reports whether the calling thread can take on s before anything
// is applied: a permitted set beyond what the thread holds (a capability
// missing from the host's bounding set, say) would make Apply fail with
// EPERM only after the container counts as created. The error wraps
// unix.EPERM and names the capabilities at fault.
func (s *Set) Verify() error {
	cur, err := current()
	if err != nil {
		return fmt.Errorf("caps: reading the current capabilities: %w", err)
	}
	if extra := s.permitted &^ cur.permitted; extra != 0 {
		return fmt.Errorf("caps: %w: permitted set asks for capabilities this process does not hold (not in the host's bounding set?): %s",
			unix.EPERM, strings.Join(extra.names(), ", "))
	}
	return nil
}

// explainEPERM works out which requested set the kernel refused, so that an
// EPERM from capset names the set and the capabilities at fault.
func (s *Set) explainEPERM() string {
	cur, err := current()
	if err != nil {
		return "could not read current capabilities: " + err.Error()
	}
	bnd := boundingNow()
	var why []string
	if extra := s.permitted &^ cur.permitted; extra != 0 {
		why = append(why, "permitted set asks for capabilities this thread does not hold: "+strings.Join(extra.names(), ", "))
	}
	// Inheritable may only grow within the bounding set (with CAP_SETPCAP)
	// or the current permitted set (without).
	limit := cur.inheritable | cur.permitted
	if cur.effective.has(unix.CAP_SETPCAP) {
		limit = cur.inheritable | bnd
	}
	if extra := s.inheritable &^ limit; extra != 0 {
		why = append(why, "inheritable set asks for capabilities outside the bounding/permitted set: "+strings.Join(extra.names(), ", "))
	}
	if len(why) == 0 {
		return "kernel refused the requested sets"
	}
	return strings.Join(why, "; ")
}

// current reads the calling thread's effective, permitted and inheritable sets.
func current() (*Set, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, err
	}
	s := &Set{}
	for i := range data {
		sh := 32 * i
		s.effective |= mask(data[i].Effective) << sh
		s.permitted |= mask(data[i].Permitted) << sh
		s.inheritable |= mask(data[i].Inheritable) << sh
	}
	return s, nil
}

func boundingNow() mask {
	var m mask
	for c := uint(0); c <= lastCap(); c++ {
		if r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && r == 1 {
			m |= 1 << c
		}
	}
	return m
}

// KeepCaps sets PR_SET_KEEPCAPS on the calling thread, so that a setuid away
// from root keeps the permitted set (the effective set is still cleared;
// Apply restores it). Note Go's syscall.Setuid and friends change every
// thread, but only the thread that called KeepCaps keeps its capabilities.
func KeepCaps(on bool) error {
	v := uintptr(0)
	if on {
		v = 1
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, v, 0, 0, 0); err != nil {
		return fmt.Errorf("caps: PR_SET_KEEPCAPS: %w", err)
	}
	return nil
}

// Known returns the names of all capabilities the running kernel supports
// (and this package knows), in capability-number order.
func Known() []string {
	var m mask
	for _, v := range names {
		if v <= lastCap() {
			m |= 1 << v
		}
	}
	return m.names()
}
