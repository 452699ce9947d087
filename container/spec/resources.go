package spec

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// minMemory is dockerd's lowest accepted memory limit (6 MiB).
const minMemory = 6 << 20

func invalid(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
}

// validateResources checks the resource fields with dockerd's messages.
func validateResources(r *container.Resources) error {
	if r.Memory != 0 && r.Memory < minMemory {
		return invalid("Minimum memory limit allowed is 6MB")
	}
	if r.MemorySwap > 0 && r.Memory == 0 {
		return invalid("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return invalid("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.MemorySwappiness != nil && (*r.MemorySwappiness < -1 || *r.MemorySwappiness > 100) {
		return invalid("Invalid value: %v, valid memory swappiness range is 0-100", *r.MemorySwappiness)
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation {
		return invalid("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.NanoCPUs > 0 && r.CPUPeriod > 0 {
		return invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	}
	if r.NanoCPUs > 0 && r.CPUQuota > 0 {
		return invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	if n := runtime.NumCPU(); r.NanoCPUs < 0 || r.NanoCPUs > int64(n)*1e9 {
		return invalid("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", n, n)
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPUShares < 0 {
		return invalid("invalid CPU shares (%d): value must be a positive integer", r.CPUShares)
	}
	if !validCPUList(r.CpusetCpus) {
		return invalid("Invalid value %s for cpuset cpus", r.CpusetCpus)
	}
	if !validCPUList(r.CpusetMems) {
		return invalid("Invalid value %s for cpuset mems", r.CpusetMems)
	}
	for _, u := range r.Ulimits {
		if _, err := rlimit(u); err != nil {
			return err
		}
	}
	for _, rule := range r.DeviceCgroupRules {
		if _, err := deviceRule(rule); err != nil {
			return err
		}
	}
	for _, d := range r.Devices {
		if err := validateDevice(d); err != nil {
			return err
		}
	}
	if r.IOMaximumBandwidth != 0 || r.IOMaximumIOps != 0 {
		return invalid("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
	}
	if len(r.DeviceRequests) > 0 {
		d := r.DeviceRequests[0]
		return fmt.Errorf("could not select device driver %q with capabilities: %v: berth has no device drivers (--gpus): %w", d.Driver, d.Capabilities, errdefs.ErrInvalidArgument)
	}
	return nil
}

// validCPUList accepts the kernel's list format: "", "0", "0-2,4".
func validCPUList(s string) bool {
	if s == "" {
		return true
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return false
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil || b < a {
				return false
			}
		}
	}
	return true
}

// cpuPeriodForNanoCPUs is the CFS period dockerd uses for --cpus.
const cpuPeriodForNanoCPUs = 100000

// linuxResources maps the HostConfig resources to the spec, as dockerd.
// devices is the device cgroup list built separately.
func linuxResources(r *container.Resources, devices []specs.LinuxDeviceCgroup) *specs.LinuxResources {
	out := &specs.LinuxResources{Devices: devices}
	mem := &specs.LinuxMemory{DisableOOMKiller: boolPtr(r.OomKillDisable != nil && *r.OomKillDisable)}
	if r.Memory > 0 {
		mem.Limit = int64Ptr(r.Memory)
		switch {
		case r.MemorySwap > 0:
			mem.Swap = int64Ptr(r.MemorySwap)
		case r.MemorySwap == 0:
			// dockerd's default: as much swap as memory.
			mem.Swap = int64Ptr(2 * r.Memory)
		}
		// -1: unlimited swap, which is the cgroup's default: leave it out.
	}
	if r.MemoryReservation > 0 {
		mem.Reservation = int64Ptr(r.MemoryReservation)
	}
	if r.MemorySwappiness != nil && *r.MemorySwappiness >= 0 {
		v := uint64(*r.MemorySwappiness)
		mem.Swappiness = &v
	}
	out.Memory = mem
	cpu := &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
	shares := uint64(r.CPUShares)
	cpu.Shares = &shares
	switch {
	case r.NanoCPUs > 0:
		period := uint64(cpuPeriodForNanoCPUs)
		quota := r.NanoCPUs * cpuPeriodForNanoCPUs / 1e9
		cpu.Period, cpu.Quota = &period, &quota
	default:
		if r.CPUPeriod > 0 {
			p := uint64(r.CPUPeriod)
			cpu.Period = &p
		}
		if r.CPUQuota != 0 {
			q := r.CPUQuota
			cpu.Quota = &q
		}
	}
	if r.CPURealtimePeriod > 0 {
		p := uint64(r.CPURealtimePeriod)
		cpu.RealtimePeriod = &p
	}
	if r.CPURealtimeRuntime > 0 {
		q := r.CPURealtimeRuntime
		cpu.RealtimeRuntime = &q
	}
	out.CPU = cpu
	if r.PidsLimit != nil && *r.PidsLimit > 0 {
		out.Pids = &specs.LinuxPids{Limit: r.PidsLimit}
	}
	w := r.BlkioWeight
	out.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	return out
}

// ulimitNames are the names --ulimit takes (go-units' list).
var ulimitNames = map[string]string{
	"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
	"fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
	"msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
	"nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
	"rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}

// rlimit converts one --ulimit; -1 means unlimited.
func rlimit(u *container.Ulimit) (specs.POSIXRlimit, error) {
	if u == nil {
		return specs.POSIXRlimit{}, invalid("invalid ulimit: null")
	}
	typ, ok := ulimitNames[u.Name]
	if !ok {
		return specs.POSIXRlimit{}, invalid("invalid ulimit type: %s", u.Name)
	}
	if u.Soft < -1 || u.Hard < -1 {
		return specs.POSIXRlimit{}, invalid("invalid ulimit %s: %d:%d: negative limit", u.Name, u.Soft, u.Hard)
	}
	// -1 is unlimited: larger than any finite limit.
	if u.Hard != -1 && (u.Soft == -1 || u.Soft > u.Hard) {
		return specs.POSIXRlimit{}, invalid("ulimit soft limit must be less than or equal to hard limit: %d > %d", u.Soft, u.Hard)
	}
	conv := func(v int64) uint64 {
		if v == -1 {
			return math.MaxUint64
		}
		return uint64(v)
	}
	return specs.POSIXRlimit{Type: typ, Soft: conv(u.Soft), Hard: conv(u.Hard)}, nil
}

var deviceRuleRe = regexp.MustCompile(`^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`)

// deviceRule parses a --device-cgroup-rule ("c 1:3 rwm", "a *:* m").
func deviceRule(rule string) (specs.LinuxDeviceCgroup, error) {
	m := deviceRuleRe.FindStringSubmatch(rule)
	if m == nil {
		return specs.LinuxDeviceCgroup{}, invalid("invalid device cgroup rule format: '%s'", rule)
	}
	d := specs.LinuxDeviceCgroup{Allow: true, Type: m[1], Access: m[4]}
	if m[2] != "*" {
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return specs.LinuxDeviceCgroup{}, invalid("invalid device cgroup rule format: '%s'", rule)
		}
		d.Major = &n
	}
	if m[3] != "*" {
		n, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil {
			return specs.LinuxDeviceCgroup{}, invalid("invalid device cgroup rule format: '%s'", rule)
		}
		d.Minor = &n
	}
	return d, nil
}

// defaultDeviceRules is dockerd's device cgroup list for an unprivileged
// container: deny everything, then allow the nodes every container has
// (the runtime adds /dev/pts, ptmx and tun as runc does), and deny
// /dev/fuse explicitly.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}
	}
	fuseMajor, fuseMinor := int64(10), int64(229)
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 5), // zero
		allow(1, 3), // null
		allow(1, 9), // urandom
		allow(1, 8), // random
		allow(5, 0), // tty
		allow(5, 1), // console
		{Allow: false, Type: "c", Major: &fuseMajor, Minor: &fuseMinor, Access: "rwm"},
	}
}

func boolPtr(b bool) *bool       { return &b }
func int64Ptr(v int64) *int64    { return &v }
func uint32Ptr(v uint32) *uint32 { return &v }

// blockIO adds the per-device weights and throttles of r to b, each
// device named by its path on the host (dockerd stats them at start).
func blockIO(r *container.Resources, b *specs.LinuxBlockIO) error {
	devNum := func(flag, p string) (int64, int64, error) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return 0, 0, invalid("%s %s: %v", flag, p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return 0, 0, invalid("%s %s: not a block device", flag, p)
		}
		return int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev)), nil
	}
	for _, w := range r.BlkioWeightDevice {
		major, minor, err := devNum("--blkio-weight-device", w.Path)
		if err != nil {
			return err
		}
		weight := w.Weight
		d := specs.LinuxWeightDevice{Weight: &weight}
		d.Major, d.Minor = major, minor
		b.WeightDevice = append(b.WeightDevice, d)
	}
	for _, t := range []struct {
		flag string
		in   []*blkiodev.ThrottleDevice
		out  *[]specs.LinuxThrottleDevice
	}{
		{"--device-read-bps", r.BlkioDeviceReadBps, &b.ThrottleReadBpsDevice},
		{"--device-write-bps", r.BlkioDeviceWriteBps, &b.ThrottleWriteBpsDevice},
		{"--device-read-iops", r.BlkioDeviceReadIOps, &b.ThrottleReadIOPSDevice},
		{"--device-write-iops", r.BlkioDeviceWriteIOps, &b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.in {
			if d == nil {
				continue
			}
			major, minor, err := devNum(t.flag, d.Path)
			if err != nil {
				return err
			}
			td := specs.LinuxThrottleDevice{Rate: d.Rate}
			td.Major, td.Minor = major, minor
			*t.out = append(*t.out, td)
		}
	}
	return nil
}

// cgroupFileExists says whether controller's file exists at the root of
// the host's cgroup v1 hierarchy, or file2 in the unified one.
func cgroupFileExists(controller, file, file2 string) bool {
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", controller, file)); err == nil {
		return true
	}
	if file2 == "" || !hostCgroupV2() {
		return false
	}
	_, err := os.Stat(filepath.Join("/sys/fs/cgroup", file2))
	return err == nil
}

// DiscardUnsupported drops the resource settings this host cannot apply,
// returning dockerd's warning for each, as dockerd does at create.
func DiscardUnsupported(hc *container.HostConfig) []string {
	var w []string
	r := &hc.Resources
	if len(r.BlkioWeightDevice) > 0 && !cgroupFileExists("blkio", "blkio.weight_device", "io.weight") && !cgroupFileExists("blkio", "blkio.bfq.weight_device", "io.bfq.weight") {
		w = append(w, "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.")
		r.BlkioWeightDevice = nil
	}
	for _, t := range []struct {
		list          *[]*blkiodev.ThrottleDevice
		file, warning string
	}{
		{&r.BlkioDeviceReadBps, "blkio.throttle.read_bps_device", "Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded."},
		{&r.BlkioDeviceWriteBps, "blkio.throttle.write_bps_device", "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded."},
		{&r.BlkioDeviceReadIOps, "blkio.throttle.read_iops_device", "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded."},
		{&r.BlkioDeviceWriteIOps, "blkio.throttle.write_iops_device", "Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded."},
	} {
		if len(*t.list) > 0 && !cgroupFileExists("blkio", t.file, "io.max") {
			w = append(w, t.warning)
			*t.list = nil
		}
	}
	if r.OomKillDisable != nil && *r.OomKillDisable {
		if hostCgroupV2() {
			w = append(w, "Your kernel does not support OomKillDisable. OomKillDisable discarded.")
			f := false
			r.OomKillDisable = &f
		} else if r.Memory == 0 {
			w = append(w, "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.")
		}
	}
	if r.MemorySwappiness != nil && *r.MemorySwappiness >= 0 && !cgroupFileExists("memory", "memory.swappiness", "") {
		w = append(w, "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.")
		r.MemorySwappiness = nil
	}
	if r.CPUPercent > 0 {
		w = append(w, "linux does not support CPU percent. Percent discarded.")
		r.CPUPercent = 0
	}
	if r.CPUCount > 0 {
		w = append(w, "linux does not support CPU count. Count discarded.")
		r.CPUCount = 0
	}
	return w
}
