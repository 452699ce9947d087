package spec

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// DefaultCapabilities is Docker's default capability set, in dockerd's
// order (the order shows in the spec and in /proc/<pid>/status only as a
// set, but keeping it makes specs diff cleanly against dockerd's).
var DefaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// allCapabilities lists every capability by number (index = number).
var allCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// AllCapabilities returns the capabilities a privileged container (or
// --cap-add ALL) gets: every capability the kernel knows that the daemon
// itself still holds in its bounding set. dockerd asks for every known
// capability and then fails to start the container when it runs with a
// reduced bounding set (a nested or sandboxed daemon); podman, like us,
// gives what it can.
func AllCapabilities() []string {
	var out []string
	for n, name := range allCapabilities {
		if ok, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0); err == nil && ok == 1 {
			out = append(out, name)
		}
	}
	return out
}

// normalizeCaps uppercases, adds the CAP_ prefix and checks each name.
// "ALL" stays as is. field names the HostConfig field for dockerd's
// message ("invalid CapAdd: unknown capability: \"CAP_FOO\"").
func normalizeCaps(field string, in []string) ([]string, error) {
	var out []string
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if c != "ALL" && !slices.Contains(allCapabilities, c) {
			return nil, fmt.Errorf("invalid %s: unknown capability: %q: %w", field, c, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Capabilities applies --cap-add/--cap-drop to Docker's default set the
// way dockerd does: ALL in adds means every capability minus the drops;
// ALL in drops means only the adds; otherwise defaults minus drops plus
// adds. Privileged containers get AllCapabilities.
func Capabilities(adds, drops []string, privileged bool) ([]string, error) {
	if privileged {
		return AllCapabilities(), nil
	}
	add, err := normalizeCaps("CapAdd", adds)
	if err != nil {
		return nil, err
	}
	drop, err := normalizeCaps("CapDrop", drops)
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case slices.Contains(add, "ALL"):
		for _, c := range AllCapabilities() {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = append(caps, add...)
	default:
		for _, c := range DefaultCapabilities {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
		for _, c := range add {
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
	}
	if caps == nil {
		caps = []string{}
	}
	return caps, nil
}
