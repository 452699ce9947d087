package spec

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// Linux's real-time signal range as user space sees it: glibc keeps
// 32 and 33 for itself, so SIGRTMIN is 34, as in Docker's signal table.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// ParseSignal parses a stop or kill signal as Docker accepts it: a name
// with or without the SIG prefix in any case ("SIGTERM", "term"), a
// real-time offset ("SIGRTMIN+3", "RTMAX-1"), or a number ("15"). The
// stop signal is not part of the OCI spec (the engine sends it), but it is
// checked here with the rest of the container's configuration.
//
// dockerd accepts any non-zero number; we accept only real signal numbers
// (1..64), so that a bad --stop-signal fails at create and not at stop.
func ParseSignal(s string) (syscall.Signal, error) {
	bad := fmt.Errorf("Invalid signal: %s: %w", s, errdefs.ErrInvalidArgument)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, bad
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	name = strings.TrimPrefix(name, "SIG")
	if name == "" {
		return 0, bad
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"RTMIN", sigRTMin, 1}, {"RTMAX", sigRTMax, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			var err error
			if (rt.sign > 0 && rest[0] != '+') || (rt.sign < 0 && rest[0] != '-') {
				return 0, bad
			}
			if off, err = strconv.Atoi(rest[1:]); err != nil || off < 0 {
				return 0, bad
			}
		}
		n := rt.base + rt.sign*off
		if n < sigRTMin || n > sigRTMax {
			return 0, bad
		}
		return syscall.Signal(n), nil
	}
	sig := unix.SignalNum("SIG" + name)
	if sig == 0 {
		return 0, bad
	}
	return sig, nil
}
