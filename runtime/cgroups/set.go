package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/rawio"
)

// Set writes the limits in r into the existing cgroup(s); call Apply first.
// Nil fields (and zero numbers, which OCI producers use for "unset") are
// left as they are, so the same call serves `update`. Controllers are
// written in a fixed order: cpuset, memory, cpu, pids, blkio/io, hugetlb,
// network, rdma, devices, then the verbatim `unified` map, which therefore
// overrides anything derived from the typed fields.
//
// Semantics worth knowing:
//   - memory.swap is OCI's memory+swap total; on v2 it is converted to
//     memory.swap.max = swap - limit (-1 => "max").
//   - memory.kernel is deprecated and ignored (Linux >= 5.4 has no kmem limits).
//   - cpu.shares becomes cpu.weight on v2 (1 + (shares-2)*9999/262142).
//   - blockIO.weight (10..1000) becomes io.weight 1 + (w-10)*9999/990 on v2.
//   - devices: an empty list leaves the device rules alone (pass nil on
//     update so a running container never sees a transient deny-all).
func (m *manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	for _, step := range []func(*specs.LinuxResources) error{
		m.setCpuset, m.setMemory, m.setCPU, m.setPids, m.setBlkio,
		m.setHugetlb, m.setNetwork, m.setRdma, m.setDevices, m.setUnified,
	} {
		if err := step(r); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
	}
	return nil
}

func i64(v int64) string  { return strconv.FormatInt(v, 10) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// v2Max renders a v2 limit: negative means unlimited ("max").
func v2Max(v int64) string {
	if v < 0 {
		return "max"
	}
	return i64(v)
}

func set64(p *int64) bool { return p != nil && *p != 0 }

func (m *manager) setCpuset(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil || (c.Cpus == "" && c.Mems == "") {
		return nil
	}
	dir, _, err := m.controllerDir("cpuset")
	if err != nil {
		return fmt.Errorf("cpu.cpus/mems: %w", err)
	}
	if c.Cpus != "" {
		if err := writeFile(dir, "cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := writeFile(dir, "cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

// ---- memory ----

func (m *manager) setMemory(r *specs.LinuxResources) error {
	mem := r.Memory
	if mem == nil || !(set64(mem.Limit) || set64(mem.Reservation) || set64(mem.Swap) ||
		mem.KernelTCP != nil || mem.Swappiness != nil || mem.DisableOOMKiller != nil || mem.UseHierarchy != nil) {
		return nil
	}
	if set64(mem.Limit) && set64(mem.Swap) && *mem.Limit > 0 && *mem.Swap > 0 && *mem.Swap < *mem.Limit {
		return fmt.Errorf("memory: memory+swap limit (%d) should be >= memory limit (%d)", *mem.Swap, *mem.Limit)
	}
	dir, v2, err := m.controllerDir("memory")
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate && set64(mem.Limit) && *mem.Limit > 0 {
		usageFile := "memory.usage_in_bytes"
		if v2 {
			usageFile = "memory.current"
		}
		if usage, err := readUint(dir, usageFile); err == nil && usage > uint64(*mem.Limit) {
			return fmt.Errorf("memory: limit %d is below current usage %d (%s) and checkBeforeUpdate is set", *mem.Limit, usage, usageFile)
		}
	}
	if v2 {
		return setMemoryV2(dir, mem)
	}
	return setMemoryV1(dir, mem)
}

// setMemoryV1 keeps the kernel's invariant limit_in_bytes <= memsw.limit_in_bytes
// at every step: when the new memsw total is at least the current memory
// limit it is written first (raising), otherwise the memory limit goes
// first (lowering).
func setMemoryV1(dir string, mem *specs.LinuxMemory) error {
	hasSwap := exists(dir, "memory.memsw.limit_in_bytes")
	swap := mem.Swap
	if set64(swap) && !hasSwap {
		if *swap != -1 {
			return fmt.Errorf("memory.swap: %s/memory.memsw.limit_in_bytes does not exist: swap accounting is disabled (boot with swapaccount=1)", dir)
		}
		swap = nil
	}
	switch {
	case set64(mem.Limit) && set64(swap):
		cur, err := readUint(dir, "memory.limit_in_bytes")
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		if *swap == -1 || uint64(*swap) >= cur {
			if err := writeFile(dir, "memory.memsw.limit_in_bytes", i64(*swap)); err != nil {
				return err
			}
			if err := writeFile(dir, "memory.limit_in_bytes", i64(*mem.Limit)); err != nil {
				return err
			}
		} else {
			if err := writeFile(dir, "memory.limit_in_bytes", i64(*mem.Limit)); err != nil {
				return err
			}
			if err := writeFile(dir, "memory.memsw.limit_in_bytes", i64(*swap)); err != nil {
				return err
			}
		}
	case set64(mem.Limit):
		if *mem.Limit == -1 && hasSwap {
			// Unlimited memory cannot exceed a finite memsw: lift memsw too.
			if err := writeFile(dir, "memory.memsw.limit_in_bytes", "-1"); err != nil {
				return err
			}
		}
		if err := writeFile(dir, "memory.limit_in_bytes", i64(*mem.Limit)); err != nil {
			return err
		}
	case set64(swap):
		if err := writeFile(dir, "memory.memsw.limit_in_bytes", i64(*swap)); err != nil {
			return err
		}
	}
	if set64(mem.Reservation) {
		if err := writeFile(dir, "memory.soft_limit_in_bytes", i64(*mem.Reservation)); err != nil {
			return err
		}
	}
	if mem.KernelTCP != nil {
		if err := writeFile(dir, "memory.kmem.tcp.limit_in_bytes", i64(*mem.KernelTCP)); err != nil {
			return err
		}
	}
	if mem.Swappiness != nil {
		if err := writeFile(dir, "memory.swappiness", u64(*mem.Swappiness)); err != nil {
			return err
		}
	}
	if mem.DisableOOMKiller != nil {
		v := "0"
		if *mem.DisableOOMKiller {
			v = "1"
		}
		if err := writeFile(dir, "memory.oom_control", v); err != nil {
			return err
		}
	}
	if mem.UseHierarchy != nil {
		v := "0"
		if *mem.UseHierarchy {
			v = "1"
		}
		if err := writeFile(dir, "memory.use_hierarchy", v); err != nil {
			return err
		}
	}
	return nil
}

// swapV2 converts OCI's memory+swap total into memory.swap.max.
// ok=false means "leave memory.swap.max alone".
func swapV2(limit, swap *int64) (val string, ok bool, err error) {
	l, s := int64(0), int64(0)
	if limit != nil {
		l = *limit
	}
	if swap != nil {
		s = *swap
	}
	switch {
	case s == 0 && l == -1:
		// Unlimited memory with swap unspecified: unlimited swap too, as
		// on v1 where memsw follows.
		return "max", true, nil
	case s == 0:
		return "", false, nil
	case s == -1:
		return "max", true, nil
	case l == 0 || l == -1:
		return "", false, errors.New("memory.swap: a finite memory+swap limit needs a finite memory limit on cgroup v2")
	case s < l:
		return "", false, fmt.Errorf("memory: memory+swap limit (%d) should be >= memory limit (%d)", s, l)
	}
	return i64(s - l), true, nil
}

func setMemoryV2(dir string, mem *specs.LinuxMemory) error {
	sw, ok, err := swapV2(mem.Limit, mem.Swap)
	if err != nil {
		return err
	}
	if ok {
		if exists(dir, "memory.swap.max") {
			if err := writeFile(dir, "memory.swap.max", sw); err != nil {
				return err
			}
		} else if sw != "max" {
			return fmt.Errorf("memory.swap: %s/memory.swap.max does not exist: swap accounting is disabled in this kernel", dir)
		}
	}
	if set64(mem.Limit) {
		if err := writeFile(dir, "memory.max", v2Max(*mem.Limit)); err != nil {
			return err
		}
	}
	if set64(mem.Reservation) {
		if err := writeFile(dir, "memory.low", v2Max(*mem.Reservation)); err != nil {
			return err
		}
	}
	if mem.KernelTCP != nil {
		return errors.New("memory.kernelTCP: cgroup v2 has no separate TCP memory limit (it is part of memory.max)")
	}
	if mem.Swappiness != nil {
		return errors.New("memory.swappiness: cgroup v2 has no per-cgroup swappiness (memory.swappiness is v1 only)")
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		return errors.New("memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer (memory.oom_control is v1 only)")
	}
	// useHierarchy: v2 is always hierarchical; nothing to write.
	return nil
}

// ---- cpu ----

// SharesToWeight converts v1 cpu.shares (2..262144) to v2 cpu.weight
// (1..10000) with the same linear mapping as runc and crun, so a container
// gets the same weight whichever runtime created it. 0 means unset.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < 2 {
		shares = 2
	}
	return 1 + ((shares-2)*9999)/262142
}

// blkioWeightToIOWeight maps blkio.weight (10..1000) onto io.weight (1..10000).
func blkioWeightToIOWeight(w uint16) uint64 {
	if w < 10 {
		w = 10
	}
	return 1 + (uint64(w)-10)*9999/990
}

func (m *manager) setCPU(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil || !(c.Shares != nil && *c.Shares != 0 || set64(c.Quota) || c.Period != nil && *c.Period != 0 ||
		c.Burst != nil || set64(c.RealtimeRuntime) || c.RealtimePeriod != nil && *c.RealtimePeriod != 0 || c.Idle != nil) {
		return nil
	}
	dir, v2, err := m.controllerDir("cpu")
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	if v2 {
		return setCPUV2(dir, c)
	}
	return setCPUV1(dir, c)
}

// writePair writes two files whose values constrain each other (a period
// and the runtime/quota within it). The period goes first; if the kernel
// refuses it because the current runtime does not fit, the runtime is
// written first and the period retried.
func writePair(dir, periodFile, period, runtimeFile, runtime string) error {
	if period == "" {
		if runtime == "" {
			return nil
		}
		return writeFile(dir, runtimeFile, runtime)
	}
	if err := writeFile(dir, periodFile, period); err != nil {
		if runtime == "" {
			return err
		}
		if err2 := writeFile(dir, runtimeFile, runtime); err2 != nil {
			return err2
		}
		return writeFile(dir, periodFile, period)
	}
	if runtime != "" {
		return writeFile(dir, runtimeFile, runtime)
	}
	return nil
}

func setCPUV1(dir string, c *specs.LinuxCPU) error {
	var rtPeriod, rtRuntime, period, quota string
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		rtPeriod = u64(*c.RealtimePeriod)
	}
	if set64(c.RealtimeRuntime) {
		rtRuntime = i64(*c.RealtimeRuntime)
	}
	if err := writePair(dir, "cpu.rt_period_us", rtPeriod, "cpu.rt_runtime_us", rtRuntime); err != nil {
		return err
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(dir, "cpu.shares", u64(*c.Shares)); err != nil {
			return err
		}
		// The kernel silently clamps shares to 2..262144; say so.
		got, err := readUint(dir, "cpu.shares")
		if err == nil && got != *c.Shares {
			return fmt.Errorf("cpu.shares: %s/cpu.shares: kernel clamped %d to %d (allowed range is 2..262144)", dir, *c.Shares, got)
		}
	}
	if c.Period != nil && *c.Period != 0 {
		period = u64(*c.Period)
	}
	if set64(c.Quota) {
		quota = i64(*c.Quota)
	}
	if err := writePair(dir, "cpu.cfs_period_us", period, "cpu.cfs_quota_us", quota); err != nil {
		return err
	}
	if c.Burst != nil {
		if !exists(dir, "cpu.cfs_burst_us") {
			return fmt.Errorf("cpu.burst: %s/cpu.cfs_burst_us does not exist (needs Linux >= 5.14)", dir)
		}
		if err := writeFile(dir, "cpu.cfs_burst_us", u64(*c.Burst)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := writeFile(dir, "cpu.idle", i64(*c.Idle)); err != nil {
			return err
		}
	}
	return nil
}

func setCPUV2(dir string, c *specs.LinuxCPU) error {
	if set64(c.RealtimeRuntime) || c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		return errors.New("cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime bandwidth files (cpu.rt_* are v1 only)")
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(dir, "cpu.weight", u64(SharesToWeight(*c.Shares))); err != nil {
			return err
		}
	}
	if set64(c.Quota) || c.Period != nil && *c.Period != 0 {
		// cpu.max is "$QUOTA $PERIOD"; keep the half that was not given.
		q, p := "max", "100000"
		if cur, err := readFile(dir, "cpu.max"); err == nil {
			if f := strings.Fields(cur); len(f) == 2 {
				q, p = f[0], f[1]
			}
		}
		if set64(c.Quota) {
			q = v2Max(*c.Quota)
		}
		if c.Period != nil && *c.Period != 0 {
			p = u64(*c.Period)
		}
		if err := writeFile(dir, "cpu.max", q+" "+p); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := writeFile(dir, "cpu.max.burst", u64(*c.Burst)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := writeFile(dir, "cpu.idle", i64(*c.Idle)); err != nil {
			return err
		}
	}
	return nil
}

// ---- pids ----

func (m *manager) setPids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	dir, _, err := m.controllerDir("pids")
	if err != nil {
		return fmt.Errorf("pids.limit: %w", err)
	}
	v := "max" // 0 and negative mean unlimited, as in runc
	if *r.Pids.Limit > 0 {
		v = i64(*r.Pids.Limit)
	}
	return writeFile(dir, "pids.max", v)
}

// ---- block I/O ----

func (m *manager) setBlkio(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	if (b.Weight == nil || *b.Weight == 0) && (b.LeafWeight == nil || *b.LeafWeight == 0) && len(b.WeightDevice) == 0 &&
		len(b.ThrottleReadBpsDevice)+len(b.ThrottleWriteBpsDevice)+len(b.ThrottleReadIOPSDevice)+len(b.ThrottleWriteIOPSDevice) == 0 {
		return nil
	}
	if d := m.v1("blkio"); d != "" {
		return setBlkioV1(d, b)
	}
	dir, err := m.v2("io")
	if err != nil {
		return fmt.Errorf("blockIO: %w", err)
	}
	return setIOV2(dir, b)
}

func devKey(d specs.LinuxBlockIODevice) string {
	return i64(d.Major) + ":" + i64(d.Minor)
}

// pickFile returns the first of names that exists in dir.
func pickFile(dir string, names ...string) string {
	for _, n := range names {
		if exists(dir, n) {
			return n
		}
	}
	return ""
}

func setBlkioV1(dir string, b *specs.LinuxBlockIO) error {
	if b.Weight != nil && *b.Weight != 0 {
		f := pickFile(dir, "blkio.weight", "blkio.bfq.weight")
		if f == "" {
			return fmt.Errorf("blockIO.weight: neither blkio.weight nor blkio.bfq.weight exists in %s (no CFQ/BFQ I/O scheduler)", dir)
		}
		if err := writeFile(dir, f, strconv.Itoa(int(*b.Weight))); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if !exists(dir, "blkio.leaf_weight") {
			return fmt.Errorf("blockIO.leafWeight: %s/blkio.leaf_weight does not exist (CFQ only)", dir)
		}
		if err := writeFile(dir, "blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight))); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight != nil {
			f := pickFile(dir, "blkio.weight_device", "blkio.bfq.weight_device")
			if f == "" {
				return fmt.Errorf("blockIO.weightDevice: neither blkio.weight_device nor blkio.bfq.weight_device exists in %s", dir)
			}
			if err := writeFile(dir, f, devKey(wd.LinuxBlockIODevice)+" "+strconv.Itoa(int(*wd.Weight))); err != nil {
				return err
			}
		}
		if wd.LeafWeight != nil {
			if err := writeFile(dir, "blkio.leaf_weight_device", devKey(wd.LinuxBlockIODevice)+" "+strconv.Itoa(int(*wd.LeafWeight))); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			if err := writeFile(dir, t.file, devKey(d.LinuxBlockIODevice)+" "+u64(d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

func setIOV2(dir string, b *specs.LinuxBlockIO) error {
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		return errors.New("blockIO.leafWeight: cgroup v2 has no leaf weight")
	}
	weight := func(dev string, w uint16) error {
		if exists(dir, "io.weight") {
			return writeFile(dir, "io.weight", dev+" "+u64(blkioWeightToIOWeight(w)))
		}
		if exists(dir, "io.bfq.weight") {
			return writeFile(dir, "io.bfq.weight", dev+" "+strconv.Itoa(int(w)))
		}
		return fmt.Errorf("blockIO.weight: neither io.weight nor io.bfq.weight exists in %s", dir)
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := weight("default", *b.Weight); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.LeafWeight != nil && *wd.LeafWeight != 0 {
			return errors.New("blockIO.weightDevice.leafWeight: cgroup v2 has no leaf weight")
		}
		if wd.Weight != nil {
			if err := weight(devKey(wd.LinuxBlockIODevice), *wd.Weight); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			v := "max" // 0 means "no limit" in OCI/v1
			if d.Rate != 0 {
				v = u64(d.Rate)
			}
			if err := writeFile(dir, "io.max", devKey(d.LinuxBlockIODevice)+" "+t.key+"="+v); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- hugetlb ----

func (m *manager) setHugetlb(r *specs.LinuxResources) error {
	if len(r.HugepageLimits) == 0 {
		return nil
	}
	dir, v2, err := m.controllerDir("hugetlb")
	if err != nil {
		return fmt.Errorf("hugepageLimits: %w", err)
	}
	limitSuffix, rsvdSuffix := ".limit_in_bytes", ".rsvd.limit_in_bytes"
	if v2 {
		limitSuffix, rsvdSuffix = ".max", ".rsvd.max"
	}
	for _, h := range r.HugepageLimits {
		if h.Pagesize == "" || strings.ContainsAny(h.Pagesize, "/. ") {
			return fmt.Errorf("hugepageLimits: invalid page size %q", h.Pagesize)
		}
		f := "hugetlb." + h.Pagesize + limitSuffix
		if !exists(dir, f) {
			return fmt.Errorf("hugepageLimits: page size %s is not supported on this host (%s/%s does not exist)", h.Pagesize, dir, f)
		}
		if err := writeFile(dir, f, u64(h.Limit)); err != nil {
			return err
		}
		// The spec asks for reservation limits where the kernel has them.
		if rf := "hugetlb." + h.Pagesize + rsvdSuffix; exists(dir, rf) {
			if err := writeFile(dir, rf, u64(h.Limit)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- network (v1 only) ----

func (m *manager) setNetwork(r *specs.LinuxResources) error {
	n := r.Network
	if n == nil || (n.ClassID == nil && len(n.Priorities) == 0) {
		return nil
	}
	if m.v2only {
		return errors.New("network: net_cls/net_prio do not exist on cgroup v2 (use eBPF/nftables on the cgroup instead)")
	}
	if n.ClassID != nil {
		d := m.v1("net_cls")
		if d == "" {
			return errors.New("network.classID: the net_cls controller is not mounted on this host")
		}
		if err := writeFile(d, "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
			return err
		}
	}
	if len(n.Priorities) > 0 {
		d := m.v1("net_prio")
		if d == "" {
			return errors.New("network.priorities: the net_prio controller is not mounted on this host")
		}
		for _, p := range n.Priorities {
			if err := writeFile(d, "net_prio.ifpriomap", p.Name+" "+strconv.FormatUint(uint64(p.Priority), 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- rdma ----

func (m *manager) setRdma(r *specs.LinuxResources) error {
	if len(r.Rdma) == 0 {
		return nil
	}
	dir, _, err := m.controllerDir("rdma")
	if err != nil {
		return fmt.Errorf("rdma: %w", err)
	}
	names := make([]string, 0, len(r.Rdma))
	for k := range r.Rdma {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		l := r.Rdma[name]
		h, o := "max", "max"
		if l.HcaHandles != nil {
			h = strconv.FormatUint(uint64(*l.HcaHandles), 10)
		}
		if l.HcaObjects != nil {
			o = strconv.FormatUint(uint64(*l.HcaObjects), 10)
		}
		if err := writeFile(dir, "rdma.max", name+" hca_handle="+h+" hca_object="+o); err != nil {
			return err
		}
	}
	return nil
}

// ---- devices ----

func (m *manager) setDevices(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	if d := m.v1("devices"); d != "" {
		return setDevicesV1(d, r.Devices)
	}
	if u := m.unified(); u != "" {
		return setDevicesV2(u, r.Devices)
	}
	return errors.New("devices: no devices controller: neither a v1 devices hierarchy nor cgroup2 is mounted")
}

// v1DeviceRules turns one OCI rule into devices.allow/deny lines. A rule
// for type "a" that is not "all devices, all access" is split into b and c
// lines, because the kernel treats any line starting with 'a' as a reset.
func v1DeviceRules(d specs.LinuxDeviceCgroup) (file string, lines []string, err error) {
	file = "devices.deny"
	if d.Allow {
		file = "devices.allow"
	}
	acc, err := normAccess(d.Access)
	if err != nil {
		return "", nil, err
	}
	typ := d.Type
	switch typ {
	case "", "a":
		typ = "a"
	case "b", "c":
	case "u":
		typ = "c"
	case "p":
		return file, nil, nil // FIFOs are not device-controlled
	default:
		return "", nil, fmt.Errorf("devices: unknown device type %q", d.Type)
	}
	maj, minr := "*", "*"
	if d.Major != nil && *d.Major >= 0 {
		maj = i64(*d.Major)
	}
	if d.Minor != nil && *d.Minor >= 0 {
		minr = i64(*d.Minor)
	}
	if typ == "a" {
		if maj == "*" && minr == "*" && acc == "rwm" {
			return file, []string{"a"}, nil
		}
		return file, []string{"b " + maj + ":" + minr + " " + acc, "c " + maj + ":" + minr + " " + acc}, nil
	}
	return file, []string{typ + " " + maj + ":" + minr + " " + acc}, nil
}

// normAccess validates an rwm string; empty means all.
func normAccess(a string) (string, error) {
	if a == "" {
		return "rwm", nil
	}
	var r, w, mk bool
	for _, c := range a {
		switch c {
		case 'r':
			r = true
		case 'w':
			w = true
		case 'm':
			mk = true
		default:
			return "", fmt.Errorf("devices: invalid access %q (want a subset of \"rwm\")", a)
		}
	}
	out := ""
	if r {
		out += "r"
	}
	if w {
		out += "w"
	}
	if mk {
		out += "m"
	}
	return out, nil
}

// setDevicesV1 replays the rules in order; the kernel's v1 list has the
// same "later rule wins" meaning when the list starts with a reset. The
// kernel takes one rule per write(2); devices.allow and devices.deny are
// each opened once for all of them.
func setDevicesV1(dir string, rules []specs.LinuxDeviceCgroup) error {
	files := map[string]*rawio.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, d := range rules {
		file, lines, err := v1DeviceRules(d)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, file)
		for _, l := range lines {
			f := files[file]
			if f == nil {
				if f, err = rawio.Open(p, unix.O_WRONLY, 0); err != nil {
					return fmt.Errorf("write %s: %s: %w", p, l, unwrapErrno(err))
				}
				files[file] = f
			}
			if err := f.Write([]byte(l)); err != nil {
				return fmt.Errorf("write %s: %s: %w", p, l, unwrapErrno(err))
			}
		}
	}
	return nil
}

// ---- unified ----

func (m *manager) setUnified(r *specs.LinuxResources) error {
	if len(r.Unified) == 0 {
		return nil
	}
	u := m.unified()
	if u == "" {
		return errors.New("unified: this host has no cgroup v2 hierarchy")
	}
	keys := make([]string, 0, len(r.Unified))
	for k := range r.Unified {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "/\x00") || strings.HasPrefix(k, ".") {
			return fmt.Errorf("unified: invalid key %q", k)
		}
		ctrl, _, _ := strings.Cut(k, ".")
		if !m.v2only && m.paths[ctrl] != "" {
			return fmt.Errorf("unified: %s: the %s controller is on a cgroup v1 hierarchy on this host", k, ctrl)
		}
		if err := writeFile(u, k, r.Unified[k]); err != nil {
			return fmt.Errorf("unified: %w", err)
		}
	}
	return nil
}
