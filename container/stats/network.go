package stats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
)

// readNetworks returns the counters of the interfaces in pid's network
// namespace, keyed by their name in there, without lo. A container that
// shares the engine's namespace (--network host) gets none, as from
// dockerd: those are the host's interfaces, not the container's. A process
// that is gone is not an error here: its cgroup already told the story.
func readNetworks(proc string, pid int) (map[string]container.NetworkStats, error) {
	pidDir := filepath.Join(proc, strconv.Itoa(pid))
	shared, err := sameFile(filepath.Join(pidDir, "ns", "net"), filepath.Join(proc, "self", "ns", "net"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, nil
		}
		return nil, fmt.Errorf("stats: network namespace of pid %d: %w", pid, err)
	}
	if shared {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(pidDir, "net", "dev"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, nil
		}
		return nil, fmt.Errorf("stats: network counters of pid %d: %w", pid, err)
	}
	nets, err := parseNetDev(string(b))
	if err != nil {
		return nil, fmt.Errorf("stats: %s: %w", filepath.Join(pidDir, "net", "dev"), err)
	}
	return nets, nil
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// parseNetDev parses /proc/net/dev: two header lines, then
// "  eth0: rxbytes rxpackets rxerrs rxdrop fifo frame compressed multicast
// txbytes txpackets txerrs txdrop ...". It returns nil when only lo is there.
func parseNetDev(s string) (map[string]container.NetworkStats, error) {
	var out map[string]container.NetworkStats
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue // the headers have no colon before the counters
		}
		name = strings.TrimSpace(name)
		if name == "lo" {
			continue
		}
		fl := strings.Fields(rest)
		if len(fl) < 12 {
			return nil, fmt.Errorf("interface %s: %d counters, want at least 12", name, len(fl))
		}
		var v [12]uint64
		for i := range v {
			n, err := strconv.ParseUint(fl[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("interface %s: %q is not a number", name, fl[i])
			}
			v[i] = n
		}
		if out == nil {
			out = map[string]container.NetworkStats{}
		}
		out[name] = container.NetworkStats{
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11],
		}
	}
	return out, nil
}
