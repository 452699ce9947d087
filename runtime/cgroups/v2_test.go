package cgroups

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The TestV2* tests drive the unified-hierarchy code paths. On a pure v2
// host they cover every controller; on a hybrid host they run against the
// cgroup2 mount (e.g. /sys/fs/cgroup/unified), where the core features
// (cgroup.procs, cgroup.freeze, eBPF device filters, cpu.stat) work and
// whatever controllers are bound there (often only hugetlb) can be tested;
// subtests for controllers that are absent skip individually.

// v2Manager returns a unified-only manager for a fresh cgroup.
func v2Manager(t *testing.T) *manager {
	t.Helper()
	requireRoot(t)
	h, err := discover()
	if err != nil {
		t.Fatal(err)
	}
	if h.v2 == nil {
		t.Skip("no cgroup2 hierarchy mounted")
	}
	var mi Manager
	if IsV2() {
		mi, err = New("/"+uniqueName(t), "")
	} else {
		mi, err = Load(map[string]string{"": h.v2.mountpoint + "/" + uniqueName(t)})
	}
	if err != nil {
		t.Fatal(err)
	}
	m := mi.(*manager)
	if !m.v2only {
		t.Fatalf("want a unified-only manager, got %v", m.Paths())
	}
	cleanup(t, m)
	return m
}

// needController skips unless ctrl is usable in m's directory (after Apply).
func needController(t *testing.T, m *manager, ctrl string) {
	t.Helper()
	if _, err := m.v2(ctrl); err != nil {
		t.Skipf("%v", err)
	}
}

func TestV2DeviceFilterLoad(t *testing.T) {
	requireRoot(t)
	for name, rules := range map[string][]specs.LinuxDeviceCgroup{
		"empty":    nil,
		"denyall":  {dev(false, "a", wild, wild, "rwm")},
		"allowall": {dev(true, "a", wild, wild, "rwm")},
		"typical": {
			dev(false, "a", wild, wild, "rwm"),
			dev(true, "c", 1, 3, "rwm"), dev(true, "c", 1, 5, "rwm"), dev(true, "c", 1, 7, "rwm"),
			dev(true, "c", 5, 0, "rwm"), dev(true, "c", 1, 8, "rwm"), dev(true, "c", 1, 9, "rwm"),
			dev(true, "c", 136, wild, "rwm"), dev(true, "c", 5, 2, "rwm"), dev(true, "c", 10, 200, "rwm"),
			dev(false, "b", 8, wild, "w"), dev(true, "a", wild, 3, "r"), dev(true, "u", 4, 1, "m"),
		},
	} {
		prog, err := deviceFilter(rules)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fd, err := loadDeviceProg(prog)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		unix.Close(fd)
	}
}

func TestV2Devices(t *testing.T) {
	m := v2Manager(t)
	if err := m.create(); err != nil {
		t.Fatal(err)
	}
	node := mknodNull(t)
	for i, tc := range []struct {
		rules []specs.LinuxDeviceCgroup
		want  int
	}{
		{[]specs.LinuxDeviceCgroup{dev(false, "a", wild, wild, "rwm"), dev(true, "c", 1, 3, "rw")}, 0},
		{[]specs.LinuxDeviceCgroup{dev(false, "a", wild, wild, "rwm"), dev(true, "c", 1, 5, "rwm")}, 13},
		{[]specs.LinuxDeviceCgroup{dev(true, "a", wild, wild, "rwm"), dev(false, "c", 1, 3, "w")}, 13},
		{[]specs.LinuxDeviceCgroup{dev(false, "a", wild, wild, "rwm"), dev(true, "c", 1, 3, "r")}, 13},
		{[]specs.LinuxDeviceCgroup{dev(false, "a", wild, wild, "rwm"), dev(true, "c", 1, wild, "rw"), dev(false, "b", 1, 3, "rw")}, 0},
		{nil, 0}, // nil leaves the previous program in place
	} {
		if err := m.Set(&specs.LinuxResources{Devices: tc.rules}); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		h := startHelper(t, "open:"+node)
		if err := m.Apply(h.pid); err != nil {
			t.Fatal(err)
		}
		if got := h.run(t); got != tc.want {
			t.Errorf("case %d: open %s (1:3, O_RDWR) in cgroup exited %d, want %d", i, node, got, tc.want)
		}
	}
	// Replacing rules must not pile up programs.
	fd, err := unix.Open(m.unified(), unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fds, err := attachedDeviceProgs(fd)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(fds)
	if len(fds) != 1 {
		t.Errorf("%d device programs attached, want 1", len(fds))
	}
}

func TestV2Lifecycle(t *testing.T) {
	m := v2Manager(t)
	h := startHelper(t, "wait")
	if err := m.Apply(h.pid); err != nil {
		t.Fatal(err)
	}
	if procs := readBack(t, m.unified(), "cgroup.procs"); procs != itoa(h.pid) {
		t.Errorf("cgroup.procs = %q, want %d", procs, h.pid)
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 1 || pids[0] != h.pid {
		t.Errorf("Pids = %v, %v", pids, err)
	}

	checkFreezeThaw(t, m)

	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(st)
	t.Logf("stats: %s", js)
	if st.CPU.Usage.Total == 0 {
		t.Errorf("cpu usage is 0 (cpu.stat usage_usec)")
	}

	t.Run("hugetlb", func(t *testing.T) {
		needController(t, m, "hugetlb")
		size, pg, ok := smallestHugePage()
		if !ok {
			t.Skip("no huge page sizes")
		}
		if err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: size, Limit: uint64(4 * pg)}}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "hugetlb."+size+".max", itoa(4*pg))
		if exists(m.unified(), "hugetlb."+size+".rsvd.max") {
			wantFile(t, m.unified(), "hugetlb."+size+".rsvd.max", itoa(4*pg))
		}
		// unified map is written verbatim, after the typed fields.
		if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"hugetlb." + size + ".max": itoa(pg)}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "hugetlb."+size+".max", itoa(pg))
		if st, err := m.Stats(); err != nil || st.Hugetlb[size].Max != uint64(pg) {
			t.Errorf("hugetlb stats = %+v, %v", st.Hugetlb, err)
		}
		err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB", Limit: 1}}})
		if err == nil || !strings.Contains(err.Error(), "page size 3MB is not supported") {
			t.Errorf("bad page size: %v", err)
		}
	})

	t.Run("unified-errors", func(t *testing.T) {
		err := m.Set(&specs.LinuxResources{Unified: map[string]string{"no.such.file": "1"}})
		if err == nil || !strings.Contains(err.Error(), "write "+m.unified()+"/no.such.file: 1: ") {
			t.Errorf("unknown unified key: %v", err)
		}
		if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"../x": "1"}}); err == nil {
			t.Error("key with a slash must fail")
		}
		err = m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: p64(1000)}})
		if err == nil {
			t.Error("realtime on v2 must fail")
		}
	})

	t.Run("memory", func(t *testing.T) {
		needController(t, m, "memory")
		r := &specs.LinuxResources{
			Memory:  &specs.LinuxMemory{Limit: p64(64 << 20), Swap: p64(96 << 20), Reservation: p64(16 << 20)},
			Unified: map[string]string{"memory.high": itoa(60 << 20)},
		}
		if !exists(m.unified(), "memory.swap.max") {
			r.Memory.Swap = nil
		}
		if err := m.Set(r); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "memory.max", itoa(64<<20))
		wantFile(t, m.unified(), "memory.low", itoa(16<<20))
		wantFile(t, m.unified(), "memory.high", itoa(60<<20))
		if r.Memory.Swap != nil {
			wantFile(t, m.unified(), "memory.swap.max", itoa(32<<20))
		}
		if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(-1)}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "memory.max", "max")
		// On v2 a process's memory stays charged where it was when it moves,
		// so the idle helper may add nothing: charge page cache here by
		// writing a file from inside the cgroup.
		w := startHelper(t, "", "sh", "-c", "read x; head -c 1048576 /dev/zero > "+filepath.Join(t.TempDir(), "f"))
		if err := m.Apply(w.pid); err != nil {
			t.Fatal(err)
		}
		if code := w.run(t); code != 0 {
			t.Fatalf("writer exited %d", code)
		}
		st, err := m.Stats()
		if err != nil || st.Memory.Usage.Usage == 0 || st.Memory.Usage.Limit != ^uint64(0) {
			t.Errorf("memory stats = %+v, %v", st.Memory.Usage, err)
		}
		err = m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(100), Swap: p64(50)}})
		if err == nil || !strings.Contains(err.Error(), "memory+swap limit") {
			t.Errorf("swap < limit: %v", err)
		}
	})

	t.Run("cpu", func(t *testing.T) {
		needController(t, m, "cpu")
		if err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(1024), Quota: p64(50000), Period: u64p(100000)}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "cpu.weight", "39")
		wantFile(t, m.unified(), "cpu.max", "50000 100000")
		if err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: p64(20000)}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "cpu.max", "20000 100000")
		if err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: p64(-1)}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "cpu.max", "max 100000")
	})

	t.Run("cpuset", func(t *testing.T) {
		needController(t, m, "cpuset")
		if err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0", Mems: "0"}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.unified(), "cpuset.cpus", "0")
		wantFile(t, m.unified(), "cpuset.mems", "0")
	})

	t.Run("io", func(t *testing.T) {
		needController(t, m, "io")
		major, minor, ok := blockDevice()
		if !ok {
			t.Skip("no block device")
		}
		d := specs.LinuxBlockIODevice{Major: major, Minor: minor}
		if err := m.Set(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: d, Rate: 1 << 20}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: d, Rate: 100}},
		}}); err != nil {
			t.Fatal(err)
		}
		got := readBack(t, m.unified(), "io.max")
		if !strings.Contains(got, "rbps=1048576") || !strings.Contains(got, "wiops=100") {
			t.Errorf("io.max = %q", got)
		}
	})

	t.Run("pids", func(t *testing.T) {
		needController(t, m, "pids")
		pm := v2Manager(t)
		sh := startHelper(t, "", "sh", "-c", "read x; for i in 1 2 3 4 5 6 7 8; do sleep 60 & done; wait")
		if err := pm.Apply(sh.pid); err != nil {
			t.Fatal(err)
		}
		if err := pm.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: p64(4)}}); err != nil {
			t.Fatal(err)
		}
		wantFile(t, pm.unified(), "pids.max", "4")
		if code := sh.run(t); code == 0 {
			t.Errorf("shell exited 0; want a fork failure")
		}
		if ev, _ := readKV(pm.unified(), "pids.events"); ev["max"] == 0 {
			t.Errorf("pids.events max = 0, want forks refused")
		}
		if st, err := pm.Stats(); err != nil || st.Pids.Limit != 4 || st.Pids.Current > 4 {
			t.Errorf("pids stats = %+v, %v", st.Pids, err)
		}
	})

	t.Run("oom", func(t *testing.T) {
		needController(t, m, "memory")
		om := v2Manager(t)
		a := startHelper(t, "alloc:512")
		if err := om.Apply(a.pid); err != nil {
			t.Fatal(err)
		}
		r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(48 << 20), Swap: p64(48 << 20)}}
		if !exists(om.unified(), "memory.swap.max") {
			r.Memory.Swap = nil
		}
		if err := om.Set(r); err != nil {
			t.Fatal(err)
		}
		if code := a.run(t); code != -9 {
			t.Fatalf("helper exit = %d, want SIGKILL", code)
		}
		if n, err := om.OOMKillCount(); err != nil || n < 1 {
			t.Errorf("OOMKillCount = %d, %v", n, err)
		}
	})
}
