package stats

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// v2MemoryKeys are the memory.stat entries dockerd passes through on
// cgroup v2: always all of them (0 when the kernel lacks one), none else.
var v2MemoryKeys = []string{
	"anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped",
	"file_dirty", "file_writeback", "anon_thp", "inactive_anon", "active_anon",
	"inactive_file", "active_file", "unevictable", "slab_reclaimable",
	"slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault",
	"workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan",
	"pgsteal", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed",
	"thp_fault_alloc", "thp_collapse_alloc",
}

// readV2 reads the unified directory dir. What v2 does not offer stays
// empty, as in dockerd: per-cpu usage, max_usage, failcnt, and every blkio
// list but io_service_bytes_recursive.
func (r reader) readV2(s *container.StatsResponse, dir string) error {
	if err := cpuV2(s, dir); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if err := memoryV2(s, dir); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if err := pidsV2(s, dir); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if err := ioV2(s, dir); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}

func cpuV2(s *container.StatsResponse, dir string) error {
	// The usage fields are there even without the cpu controller; the
	// throttling ones only with it.
	st, err := readKV(dir, "cpu.stat")
	if err != nil {
		return ignoreMissing(err)
	}
	s.CPUStats.CPUUsage = container.CPUUsage{
		TotalUsage:        st["usage_usec"] * 1000,
		UsageInKernelmode: st["system_usec"] * 1000,
		UsageInUsermode:   st["user_usec"] * 1000,
	}
	s.CPUStats.ThrottlingData = container.ThrottlingData{
		Periods: st["nr_periods"], ThrottledPeriods: st["nr_throttled"], ThrottledTime: st["throttled_usec"] * 1000}
	return nil
}

func memoryV2(s *container.StatsResponse, dir string) error {
	raw, err := readKV(dir, "memory.stat")
	if err != nil {
		return ignoreMissing(err) // no memory controller
	}
	m := &s.MemoryStats
	m.Stats = make(map[string]uint64, len(v2MemoryKeys))
	for _, k := range v2MemoryKeys {
		m.Stats[k] = raw[k]
	}
	if m.Usage, err = readUint(dir, "memory.current"); ignoreMissing(err) != nil {
		return err
	}
	// "max" reads as MaxUint64, which read() replaces by the host's memory.
	if m.Limit, err = readUint(dir, "memory.max"); ignoreMissing(err) != nil {
		return err
	}
	return nil
}

func pidsV2(s *container.StatsResponse, dir string) error {
	var err error
	if s.PidsStats.Current, err = readUint(dir, "pids.current"); err != nil {
		return ignoreMissing(err)
	}
	// Unlike v1, dockerd reports v2's "max" as MaxUint64: keep it.
	if s.PidsStats.Limit, err = readUint(dir, "pids.max"); ignoreMissing(err) != nil {
		return err
	}
	return nil
}

// ioV2 turns io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0
// dios=0") into dockerd's v2 entries: "read" and "write" bytes per device.
func ioV2(s *container.StatsResponse, dir string) error {
	text, err := readString(dir, "io.stat")
	if err != nil {
		return ignoreMissing(err)
	}
	var out []container.BlkioStatEntry
	for _, line := range strings.Split(text, "\n") {
		fl := strings.Fields(line)
		if len(fl) < 2 {
			continue
		}
		major, minor, ok := parseDevice(fl[0])
		if !ok {
			continue
		}
		var rbytes, wbytes uint64
		for _, kv := range fl[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue // a key this parser does not use, e.g. cost.* with decimals
			}
			switch k {
			case "rbytes":
				rbytes = n
			case "wbytes":
				wbytes = n
			}
		}
		out = append(out,
			container.BlkioStatEntry{Major: major, Minor: minor, Op: "read", Value: rbytes},
			container.BlkioStatEntry{Major: major, Minor: minor, Op: "write", Value: wbytes})
	}
	s.BlkioStats.IoServiceBytesRecursive = out
	return nil
}
