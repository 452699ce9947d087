package cgroups

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v1Manager creates a manager through New (the runtime's path) on a host
// with v1 hierarchies.
func v1Manager(t *testing.T) *manager {
	t.Helper()
	requireRoot(t)
	if IsV2() {
		t.Skip("host is pure cgroup v2; see TestV2*")
	}
	mi, err := New("/"+uniqueName(t), "")
	if err != nil {
		t.Fatal(err)
	}
	m := mi.(*manager)
	if m.v1("memory") == "" {
		t.Skip("no v1 memory hierarchy")
	}
	cleanup(t, m)
	return m
}

func u16(v uint16) *uint16  { return &v }
func u64p(v uint64) *uint64 { return &v }
func boolp(v bool) *bool    { return &v }

func TestV1Lifecycle(t *testing.T) {
	m := v1Manager(t)
	h := startHelper(t, "", "sleep", "60")
	if err := m.Apply(h.pid); err != nil {
		t.Fatal(err)
	}
	for k, d := range m.Paths() {
		procs := readBack(t, d, "cgroup.procs")
		if !strings.Contains(procs, itoa(h.pid)) {
			t.Errorf("%s: pid %d not in %s/cgroup.procs (%q)", k, h.pid, d, procs)
		}
	}
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: p64(128 << 20), Swap: p64(256 << 20), Reservation: p64(64 << 20),
			Swappiness: u64p(10), DisableOOMKiller: boolp(false)},
		CPU: &specs.LinuxCPU{Shares: u64p(512), Quota: p64(50000), Period: u64p(100000), Burst: u64p(1000),
			Cpus: "0", Mems: "0"},
		Pids: &specs.LinuxPids{Limit: p64(64)},
		Devices: []specs.LinuxDeviceCgroup{
			dev(false, "", wild, wild, "rwm"),
			dev(true, "c", 1, 3, "rwm"),
			dev(true, "c", 1, 5, "rw"),
		},
	}
	major, minor, haveBlk := blockDevice()
	if haveBlk {
		r.BlockIO = &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 1 << 20}}}
	}
	hpSize, hpBytes, haveHP := smallestHugePage()
	if haveHP {
		r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: hpSize, Limit: uint64(2 * hpBytes)}}
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	mem := m.v1("memory")
	wantFile(t, mem, "memory.limit_in_bytes", itoa(128<<20))
	wantFile(t, mem, "memory.memsw.limit_in_bytes", itoa(256<<20))
	wantFile(t, mem, "memory.soft_limit_in_bytes", itoa(64<<20))
	wantFile(t, mem, "memory.swappiness", "10")
	cpu := m.v1("cpu")
	wantFile(t, cpu, "cpu.shares", "512")
	wantFile(t, cpu, "cpu.cfs_quota_us", "50000")
	wantFile(t, cpu, "cpu.cfs_period_us", "100000")
	wantFile(t, cpu, "cpu.cfs_burst_us", "1000")
	wantFile(t, m.v1("cpuset"), "cpuset.cpus", "0")
	wantFile(t, m.v1("pids"), "pids.max", "64")
	wantFile(t, m.v1("devices"), "devices.list", "c 1:3 rwm\nc 1:5 rw")
	if haveBlk {
		wantFile(t, m.v1("blkio"), "blkio.throttle.read_bps_device", itoa(int(major))+":"+itoa(int(minor))+" 1048576")
	}
	if haveHP {
		dir, v2, err := m.controllerDir("hugetlb")
		if err != nil {
			t.Fatal(err)
		}
		f := "hugetlb." + hpSize + ".limit_in_bytes"
		if v2 {
			f = "hugetlb." + hpSize + ".max"
		}
		wantFile(t, dir, f, itoa(2*hpBytes))
	}

	// Lower then raise memory+swap: exercises both write orders.
	for _, lim := range [][2]int64{{32 << 20, 32 << 20}, {512 << 20, 1 << 30}, {-1, -1}} {
		if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(lim[0]), Swap: p64(lim[1])}}); err != nil {
			t.Fatalf("set memory %v: %v", lim, err)
		}
	}
	if got := readBack(t, mem, "memory.limit_in_bytes"); len(got) < 15 {
		t.Errorf("limit after -1 = %s, want unlimited", got)
	}

	pids, err := m.Pids()
	if err != nil || !contains(pids, h.pid) {
		t.Errorf("Pids = %v, %v; want %d in it", pids, err, h.pid)
	}

	checkFreezeThaw(t, m)

	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Usage may legitimately be 0: v1 does not move charges with a task and
	// sleep did its work before it was moved.
	if st.Memory.Usage.Limit == 0 || st.Memory.Raw == nil || st.Pids.Current != 1 || st.Pids.Limit != 64 {
		t.Errorf("stats look empty: %+v", st)
	}
	js, _ := json.Marshal(st)
	t.Logf("stats: %s", js)
	if n, err := m.OOMKillCount(); err != nil || n != 0 {
		t.Errorf("OOMKillCount = %d, %v", n, err)
	}

	// Load from saved paths sees the same cgroup.
	lm, err := Load(m.Paths())
	if err != nil {
		t.Fatal(err)
	}
	if pids, _ := lm.Pids(); !contains(pids, h.pid) {
		t.Errorf("loaded manager Pids = %v", pids)
	}
}

func TestV1SetErrors(t *testing.T) {
	m := v1Manager(t)
	h := startHelper(t, "", "sleep", "60")
	if err := m.Apply(h.pid); err != nil {
		t.Fatal(err)
	}

	err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(100 << 20), Swap: p64(50 << 20)}})
	if err == nil || !strings.Contains(err.Error(), "memory+swap limit (52428800) should be >= memory limit (104857600)") {
		t.Errorf("swap < limit: %v", err)
	}
	err = m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "4095"}})
	want := "write " + filepath.Join(m.v1("cpuset"), "cpuset.cpus") + ": 4095: "
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad cpus: %v, want it to contain %q", err, want)
	}
	err = m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(1 << 30)}})
	if err == nil || !strings.Contains(err.Error(), "clamped") {
		t.Errorf("huge shares: %v", err)
	}
	err = m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB", Limit: 1}}})
	if err == nil || !strings.Contains(err.Error(), "page size 3MB is not supported") {
		t.Errorf("bad hugepage: %v", err)
	}
	err = m.Set(&specs.LinuxResources{Unified: map[string]string{"memory.high": "1G"}})
	if err == nil || !strings.Contains(err.Error(), "memory controller is on a cgroup v1 hierarchy") {
		t.Errorf("unified on v1 controller: %v", err)
	}
	if m.v1("net_cls") == "" {
		err = m.Set(&specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: new(uint32)}})
		if err == nil || !strings.Contains(err.Error(), "net_cls controller is not mounted") {
			t.Errorf("net_cls: %v", err)
		}
	}
	// Nothing requested: no error even for absent controllers.
	if err := m.Set(&specs.LinuxResources{Network: &specs.LinuxNetwork{}, Memory: &specs.LinuxMemory{}}); err != nil {
		t.Errorf("empty resources: %v", err)
	}
}

func TestV1MemoryOOM(t *testing.T) {
	m := v1Manager(t)
	h := startHelper(t, "alloc:512")
	if err := m.Apply(h.pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(48 << 20), Swap: p64(48 << 20)}}); err != nil {
		t.Fatal(err)
	}
	if code := h.run(t); code != -9 {
		t.Fatalf("helper exit = %d, want killed by SIGKILL (-9)", code)
	}
	n, err := m.OOMKillCount()
	if err != nil || n < 1 {
		t.Errorf("OOMKillCount = %d, %v; want >= 1", n, err)
	}
	st, err := m.Stats()
	if err != nil || st.Memory.OOMKill < 1 {
		t.Errorf("stats after OOM: %+v, %v", st.Memory.Usage, err)
	}
}

func TestV1PidsMax(t *testing.T) {
	m := v1Manager(t)
	if m.v1("pids") == "" {
		t.Skip("no v1 pids hierarchy")
	}
	h := startHelper(t, "", "sh", "-c", "read x; for i in 1 2 3 4 5 6 7 8; do sleep 60 & done; wait")
	if err := m.Apply(h.pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: p64(4)}}); err != nil {
		t.Fatal(err)
	}
	// dash gives up ("Cannot fork") at the first refused fork, leaving the
	// sleeps it did start: at most 4 tasks ever exist.
	if code := h.run(t); code == 0 {
		t.Errorf("shell exited 0; want a fork failure")
	}
	pids, _ := m.Pids()
	if len(pids) != 3 {
		t.Errorf("pids in cgroup after the shell died = %v, want the 3 sleeps it could fork", pids)
	}
	ev, _ := readKV(m.v1("pids"), "pids.events")
	if ev["max"] == 0 {
		t.Errorf("pids.events max = 0, want forks refused")
	}
	st, err := m.Stats()
	if err != nil || st.Pids.Current != uint64(len(pids)) || st.Pids.Limit != 4 {
		t.Errorf("pids stats = %+v, %v", st.Pids, err)
	}
}

func itoa(i int) string { return i64(int64(i)) }
