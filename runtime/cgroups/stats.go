package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats mirrors the JSON shape of runc's events types.Stats (the "data" of
// `runc events --stats`), so tools that parse runc's output parse ours.
type Stats struct {
	CPU     CPU                `json:"cpu"`
	Memory  Memory             `json:"memory"`
	Pids    Pids               `json:"pids"`
	Blkio   Blkio              `json:"blkio"`
	Hugetlb map[string]Hugetlb `json:"hugetlb,omitempty"`
}

// CPU usage, all in nanoseconds.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

type CPUUsage struct {
	Total  uint64   `json:"total,omitempty"`
	Percpu []uint64 `json:"percpu,omitempty"`
	Kernel uint64   `json:"kernel"`
	User   uint64   `json:"user"`
}

type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Memory: Usage is memory; Swap is memory+swap on v1 (as runc reports it)
// and swap alone on v2. OOM/OOMKill are Berth additions (omitted when 0).
type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
	OOM       uint64            `json:"oom,omitempty"`
	OOMKill   uint64            `json:"oomKill,omitempty"`
}

type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"` // 0 = unlimited
}

type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
}

type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Stats collects what each controller offers; a controller that is absent
// on this host is skipped, a file that exists but cannot be read is an error.
func (m *manager) Stats() (*Stats, error) {
	s := &Stats{}
	steps := []func(*Stats) error{m.cpuStats, m.memoryStats, m.pidsStats, m.blkioStats, m.hugetlbStats}
	for _, f := range steps {
		if err := f(s); err != nil {
			return nil, fmt.Errorf("cgroups: stats: %w", err)
		}
	}
	return s, nil
}

// ignoreMissing turns "file does not exist" into success.
func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (m *manager) cpuStats(s *Stats) error {
	if d := m.v1("cpuacct"); d != "" {
		var err error
		if s.CPU.Usage.Total, err = readUint(d, "cpuacct.usage"); ignoreMissing(err) != nil {
			return err
		}
		if pc, err := readFile(d, "cpuacct.usage_percpu"); err == nil {
			for _, f := range strings.Fields(pc) {
				v, _ := strconv.ParseUint(f, 10, 64)
				s.CPU.Usage.Percpu = append(s.CPU.Usage.Percpu, v)
			}
		}
		u, uerr := readUint(d, "cpuacct.usage_user")
		k, kerr := readUint(d, "cpuacct.usage_sys")
		if uerr == nil && kerr == nil {
			s.CPU.Usage.User, s.CPU.Usage.Kernel = u, k
		} else if st, err := readKV(d, "cpuacct.stat"); err == nil {
			// USER_HZ ticks; 100 on every mainstream architecture.
			s.CPU.Usage.User = st["user"] * 1e7
			s.CPU.Usage.Kernel = st["system"] * 1e7
		}
	}
	if d := m.v1("cpu"); d != "" {
		st, err := readKV(d, "cpu.stat")
		if ignoreMissing(err) != nil {
			return err
		}
		s.CPU.Throttling = Throttling{st["nr_periods"], st["nr_throttled"], st["throttled_time"]}
		return nil
	}
	if u := m.unified(); u != "" && m.v1("cpuacct") == "" {
		// cpu.stat's usage fields are always present on v2, even without
		// the cpu controller.
		st, err := readKV(u, "cpu.stat")
		if ignoreMissing(err) != nil {
			return err
		}
		s.CPU.Usage.Total = st["usage_usec"] * 1000
		s.CPU.Usage.User = st["user_usec"] * 1000
		s.CPU.Usage.Kernel = st["system_usec"] * 1000
		s.CPU.Throttling = Throttling{st["nr_periods"], st["nr_throttled"], st["throttled_usec"] * 1000}
	}
	return nil
}

// memEntry reads usage/limit/max/failcnt files with a common prefix (v1).
func memEntry(dir, prefix string) (MemoryEntry, error) {
	var e MemoryEntry
	var err error
	if e.Usage, err = readUint(dir, prefix+"usage_in_bytes"); err != nil {
		return e, err
	}
	if e.Limit, err = readUint(dir, prefix+"limit_in_bytes"); err != nil {
		return e, err
	}
	if e.Max, err = readUint(dir, prefix+"max_usage_in_bytes"); err != nil {
		return e, err
	}
	e.Failcnt, err = readUint(dir, prefix+"failcnt")
	return e, err
}

func (m *manager) memoryStats(s *Stats) error {
	dir, v2, err := m.controllerDir("memory")
	if err != nil {
		return nil // no memory controller on this host: nothing to report
	}
	mem := &s.Memory
	if mem.Raw, err = readKV(dir, "memory.stat"); err != nil {
		return err
	}
	if !v2 {
		if mem.Usage, err = memEntry(dir, "memory."); err != nil {
			return err
		}
		if exists(dir, "memory.memsw.usage_in_bytes") {
			if mem.Swap, err = memEntry(dir, "memory.memsw."); err != nil {
				return err
			}
		}
		if exists(dir, "memory.kmem.usage_in_bytes") {
			mem.Kernel, _ = memEntry(dir, "memory.kmem.")
		}
		if exists(dir, "memory.kmem.tcp.usage_in_bytes") {
			mem.KernelTCP, _ = memEntry(dir, "memory.kmem.tcp.")
		}
		if v, ok := mem.Raw["total_cache"]; ok {
			mem.Cache = v
		} else {
			mem.Cache = mem.Raw["cache"]
		}
		oc, err := readKV(dir, "memory.oom_control")
		if err != nil {
			return err
		}
		mem.OOMKill = oc["oom_kill"]
		// v1 counts OOM situations only via failcnt/eventfd; report kills.
		mem.OOM = oc["oom_kill"]
		return nil
	}
	mem.Cache = mem.Raw["file"]
	if mem.Usage.Usage, err = readUint(dir, "memory.current"); err != nil {
		return err
	}
	if mem.Usage.Limit, err = readUint(dir, "memory.max"); err != nil {
		return err
	}
	mem.Usage.Max, _ = readUint(dir, "memory.peak") // Linux >= 5.19
	ev, err := readKV(dir, "memory.events")
	if err != nil {
		return err
	}
	mem.Usage.Failcnt = ev["max"]
	mem.OOM, mem.OOMKill = ev["oom"], ev["oom_kill"]
	if exists(dir, "memory.swap.current") {
		mem.Swap.Usage, _ = readUint(dir, "memory.swap.current")
		mem.Swap.Limit, _ = readUint(dir, "memory.swap.max")
		mem.Swap.Max, _ = readUint(dir, "memory.swap.peak")
		if sev, err := readKV(dir, "memory.swap.events"); err == nil {
			mem.Swap.Failcnt = sev["max"]
		}
	}
	return nil
}

func (m *manager) pidsStats(s *Stats) error {
	dir, _, err := m.controllerDir("pids")
	if err != nil {
		return nil
	}
	if s.Pids.Current, err = readUint(dir, "pids.current"); err != nil {
		return err
	}
	lim, err := readUint(dir, "pids.max")
	if err != nil {
		return err
	}
	if lim != ^uint64(0) {
		s.Pids.Limit = lim
	}
	return nil
}

func (m *manager) blkioStats(s *Stats) error {
	if d := m.v1("blkio"); d != "" {
		var err error
		// Prefer the CFQ/BFQ-independent throttle counters, which every
		// kernel with blk-throttling has.
		f := pickFile(d, "blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive")
		if f != "" {
			if s.Blkio.IoServiceBytesRecursive, err = readBlkioV1(filepath.Join(d, f)); err != nil {
				return err
			}
		}
		f = pickFile(d, "blkio.throttle.io_serviced_recursive", "blkio.io_serviced_recursive")
		if f != "" {
			if s.Blkio.IoServicedRecursive, err = readBlkioV1(filepath.Join(d, f)); err != nil {
				return err
			}
		}
		return nil
	}
	dir, err := m.v2("io")
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "io.stat"))
	if err != nil {
		return ignoreMissing(err)
	}
	s.Blkio.IoServiceBytesRecursive, s.Blkio.IoServicedRecursive = parseIOStat(string(b))
	return nil
}

// readBlkioV1 parses "8:0 Read 4096" lines (and skips the "Total" line).
func readBlkioV1(p string) ([]BlkioEntry, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []BlkioEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) != 3 {
			continue
		}
		maj, min, ok := parseDev(fl[0])
		if !ok {
			continue
		}
		v, _ := strconv.ParseUint(fl[2], 10, 64)
		out = append(out, BlkioEntry{Major: maj, Minor: min, Op: fl[1], Value: v})
	}
	return out, sc.Err()
}

func parseDev(s string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	min, err2 := strconv.ParseUint(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}

// parseIOStat converts v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4
// dbytes=0 dios=0") into runc's v1-style entries (Read/Write/Discard/Total).
func parseIOStat(s string) (bytes, ios []BlkioEntry) {
	for _, line := range strings.Split(s, "\n") {
		fl := strings.Fields(line)
		if len(fl) < 2 {
			continue
		}
		maj, min, ok := parseDev(fl[0])
		if !ok {
			continue
		}
		var tb, ti uint64
		for _, kv := range fl[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				bytes = append(bytes, BlkioEntry{maj, min, "Read", n})
				tb += n
			case "wbytes":
				bytes = append(bytes, BlkioEntry{maj, min, "Write", n})
				tb += n
			case "dbytes":
				bytes = append(bytes, BlkioEntry{maj, min, "Discard", n})
			case "rios":
				ios = append(ios, BlkioEntry{maj, min, "Read", n})
				ti += n
			case "wios":
				ios = append(ios, BlkioEntry{maj, min, "Write", n})
				ti += n
			case "dios":
				ios = append(ios, BlkioEntry{maj, min, "Discard", n})
			}
		}
		bytes = append(bytes, BlkioEntry{maj, min, "Total", tb})
		ios = append(ios, BlkioEntry{maj, min, "Total", ti})
	}
	return bytes, ios
}

// HugePageSizes lists the host's huge page sizes as cgroup file names spell
// them ("2MB", "1GB"), from /sys/kernel/mm/hugepages.
func HugePageSizes() []string {
	ents, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kb, ok = strings.CutSuffix(kb, "kB")
		n, err := strconv.ParseUint(kb, 10, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, pageSizeName(n*1024))
	}
	return out
}

func pageSizeName(b uint64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	i := 0
	for b >= 1024 && b%1024 == 0 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return strconv.FormatUint(b, 10) + units[i]
}

func (m *manager) hugetlbStats(s *Stats) error {
	dir, v2, err := m.controllerDir("hugetlb")
	if err != nil {
		return nil
	}
	for _, size := range HugePageSizes() {
		var h Hugetlb
		p := "hugetlb." + size + "."
		if v2 {
			if h.Usage, err = readUint(dir, p+"current"); err != nil {
				if ignoreMissing(err) == nil {
					continue
				}
				return err
			}
			h.Max, _ = readUint(dir, p+"max")
			if ev, err := readKV(dir, p+"events"); err == nil {
				h.Failcnt = ev["max"]
			}
		} else {
			if h.Usage, err = readUint(dir, p+"usage_in_bytes"); err != nil {
				if ignoreMissing(err) == nil {
					continue
				}
				return err
			}
			h.Max, _ = readUint(dir, p+"max_usage_in_bytes")
			h.Failcnt, _ = readUint(dir, p+"failcnt")
		}
		if s.Hugetlb == nil {
			s.Hugetlb = map[string]Hugetlb{}
		}
		s.Hugetlb[size] = h
	}
	return nil
}

// OOMKillCount returns the number of processes killed by the OOM killer in
// this cgroup (v1 memory.oom_control oom_kill, v2 memory.events oom_kill;
// both include sub-cgroups).
func (m *manager) OOMKillCount() (uint64, error) {
	dir, v2, err := m.controllerDir("memory")
	if err != nil {
		return 0, fmt.Errorf("cgroups: oom_kill count: %w", err)
	}
	file := "memory.oom_control"
	if v2 {
		file = "memory.events"
	}
	kv, err := readKV(dir, file)
	if err != nil {
		return 0, fmt.Errorf("cgroups: read %s: %w", filepath.Join(dir, file), unwrapErrno(err))
	}
	return kv["oom_kill"], nil
}
