package stats

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type hostCPU struct {
	systemUsage uint64 // nanoseconds of host CPU time, all CPUs
	onlineCPUs  uint32
}

// readHostCPU computes system_cpu_usage and online_cpus as dockerd does:
// the sum of the first seven fields of /proc/stat's "cpu" line (user, nice,
// system, idle, iowait, irq, softirq) in nanoseconds, and the number of
// "cpuN" lines (the online CPUs).
func readHostCPU(proc string) (hostCPU, error) {
	p := filepath.Join(proc, "stat")
	f, err := os.Open(p)
	if err != nil {
		return hostCPU{}, fmt.Errorf("stats: %w", err)
	}
	defer f.Close()
	var h hostCPU
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) == 0 || !strings.HasPrefix(fl[0], "cpu") {
			continue
		}
		if fl[0] != "cpu" {
			h.onlineCPUs++
			continue
		}
		if len(fl) < 8 {
			return hostCPU{}, fmt.Errorf("stats: %s: short cpu line %q", p, sc.Text())
		}
		var ticks uint64
		for _, v := range fl[1:8] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return hostCPU{}, fmt.Errorf("stats: %s: %q is not a number", p, v)
			}
			ticks += n
		}
		h.systemUsage = ticks * (1e9 / userHZ)
		found = true
	}
	if err := sc.Err(); err != nil {
		return hostCPU{}, fmt.Errorf("stats: read %s: %w", p, err)
	}
	if !found {
		return hostCPU{}, fmt.Errorf("stats: %s has no cpu line", p)
	}
	return h, nil
}

// readMemTotal returns MemTotal of /proc/meminfo in bytes: what dockerd
// reports as the limit of a container without a memory limit.
func readMemTotal(proc string) (uint64, error) {
	p := filepath.Join(proc, "meminfo")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("stats: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		fl := strings.Fields(rest)
		if len(fl) == 0 {
			break
		}
		kb, err := strconv.ParseUint(fl[0], 10, 64)
		if err != nil {
			break
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("stats: %s: no MemTotal line", p)
}
