package stats

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// userHZ is the kernel's USER_HZ, the unit of cpuacct.stat and /proc/stat.
// It is 100 on every Linux architecture Docker supports, and dockerd
// assumes the same.
const userHZ = 100

// v1MemoryKeys are the memory.stat entries dockerd passes through on
// cgroup v1: always all of them (0 when the kernel lacks one), none else.
var v1MemoryKeys = func() []string {
	base := []string{"cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback",
		"pgpgin", "pgpgout", "pgfault", "pgmajfault", "inactive_anon", "active_anon",
		"inactive_file", "active_file", "unevictable"}
	keys := append([]string{"hierarchical_memory_limit", "hierarchical_memsw_limit"}, base...)
	for _, k := range base {
		keys = append(keys, "total_"+k)
	}
	return keys
}()

func (r reader) readV1(s *container.StatsResponse) error {
	for _, f := range []func(*container.StatsResponse) error{r.cpuV1, r.memoryV1, r.pidsV1, r.blkioV1} {
		if err := f(s); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
	}
	return nil
}

func (r reader) cpuV1(s *container.StatsResponse) error {
	u := &s.CPUStats.CPUUsage
	if d := r.paths["cpuacct"]; d != "" {
		var err error
		if u.TotalUsage, err = readUint(d, "cpuacct.usage"); ignoreMissing(err) != nil {
			return err
		}
		pc, err := readString(d, "cpuacct.usage_percpu")
		if ignoreMissing(err) != nil {
			return err
		}
		for _, f := range strings.Fields(pc) {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", filepath.Join(d, "cpuacct.usage_percpu"), f)
			}
			u.PercpuUsage = append(u.PercpuUsage, v)
		}
		// dockerd reads the tick counts of cpuacct.stat, not the
		// nanosecond cpuacct.usage_user/sys: keep its numbers.
		st, err := readKV(d, "cpuacct.stat")
		if ignoreMissing(err) != nil {
			return err
		}
		u.UsageInUsermode = st["user"] * (1e9 / userHZ)
		u.UsageInKernelmode = st["system"] * (1e9 / userHZ)
	}
	if d := r.paths["cpu"]; d != "" {
		st, err := readKV(d, "cpu.stat")
		if ignoreMissing(err) != nil {
			return err
		}
		s.CPUStats.ThrottlingData = container.ThrottlingData{
			Periods: st["nr_periods"], ThrottledPeriods: st["nr_throttled"], ThrottledTime: st["throttled_time"]}
	}
	return nil
}

func (r reader) memoryV1(s *container.StatsResponse) error {
	d := r.paths["memory"]
	if d == "" {
		return nil
	}
	raw, err := readKV(d, "memory.stat")
	if err != nil {
		return ignoreMissing(err)
	}
	m := &s.MemoryStats
	m.Stats = make(map[string]uint64, len(v1MemoryKeys))
	for _, k := range v1MemoryKeys {
		m.Stats[k] = raw[k]
	}
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{"memory.usage_in_bytes", &m.Usage},
		{"memory.max_usage_in_bytes", &m.MaxUsage},
		{"memory.failcnt", &m.Failcnt},
		{"memory.limit_in_bytes", &m.Limit},
	} {
		if *f.dst, err = readUint(d, f.name); ignoreMissing(err) != nil {
			return err
		}
	}
	return nil
}

func (r reader) pidsV1(s *container.StatsResponse) error {
	d := r.paths["pids"]
	if d == "" {
		return nil
	}
	var err error
	if s.PidsStats.Current, err = readUint(d, "pids.current"); ignoreMissing(err) != nil {
		return err
	}
	lim, err := readUint(d, "pids.max")
	if ignoreMissing(err) != nil {
		return err
	}
	// v1 reports no limit as 0 (omitted), unlike v2: as in dockerd.
	if lim != ^uint64(0) {
		s.PidsStats.Limit = lim
	}
	return nil
}

// blkioV1 reads the blk-throttle counters, which every kernel with the
// blkio controller has whatever the I/O scheduler. The CFQ-only files
// (blkio.io_*_recursive) fill the other fields when the kernel has them.
// dockerd reports every field of a v1 host as a list, empty or not.
func (r reader) blkioV1(s *container.StatsResponse) error {
	b := &s.BlkioStats
	empty := func() []container.BlkioStatEntry { return []container.BlkioStatEntry{} }
	*b = container.BlkioStats{
		IoServiceBytesRecursive: empty(), IoServicedRecursive: empty(), IoQueuedRecursive: empty(),
		IoServiceTimeRecursive: empty(), IoWaitTimeRecursive: empty(), IoMergedRecursive: empty(),
		IoTimeRecursive: empty(), SectorsRecursive: empty(),
	}
	d := r.paths["blkio"]
	if d == "" {
		return nil
	}
	files := []struct {
		names []string // first that exists wins
		dst   *[]container.BlkioStatEntry
	}{
		{[]string{"blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes", "blkio.io_service_bytes_recursive"}, &b.IoServiceBytesRecursive},
		{[]string{"blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced", "blkio.io_serviced_recursive"}, &b.IoServicedRecursive},
		{[]string{"blkio.io_queued_recursive"}, &b.IoQueuedRecursive},
		{[]string{"blkio.io_service_time_recursive"}, &b.IoServiceTimeRecursive},
		{[]string{"blkio.io_wait_time_recursive"}, &b.IoWaitTimeRecursive},
		{[]string{"blkio.io_merged_recursive"}, &b.IoMergedRecursive},
		{[]string{"blkio.time_recursive"}, &b.IoTimeRecursive},
		{[]string{"blkio.sectors_recursive"}, &b.SectorsRecursive},
	}
	for _, f := range files {
		for _, name := range f.names {
			entries, err := readBlkioV1(filepath.Join(d, name))
			if err == nil {
				*f.dst = entries
				break
			}
			if ignoreMissing(err) != nil {
				return err
			}
		}
	}
	return nil
}

// readBlkioV1 parses "8:0 Read 4096" lines, and "8:0 1234" ones (files
// without an operation, such as blkio.time_recursive). The "Total 4096"
// summary line has no device and is skipped.
func readBlkioV1(p string) ([]container.BlkioStatEntry, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := []container.BlkioStatEntry{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 2 {
			continue
		}
		major, minor, ok := parseDevice(fl[0])
		if !ok {
			continue
		}
		e := container.BlkioStatEntry{Major: major, Minor: minor}
		val := fl[1]
		if len(fl) >= 3 {
			e.Op, val = fl[1], fl[2]
		}
		if e.Value, err = strconv.ParseUint(val, 10, 64); err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", p, val)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return out, nil
}
