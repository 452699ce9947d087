package stats

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

const memLimit = 64 << 20

// running is a container started by berth-runtime for a test.
type running struct {
	id, cgroupsPath, rootfs string
	pid                     int
}

// start runs a busybox container with args under a cgroup parent of its
// own, with a 64 MiB memory limit and a limit of 20 pids. It is deleted
// and its cgroups removed at the end of the test.
func start(t *testing.T, args []string, opts ...testutil.Option) running {
	t.Helper()
	testutil.RequireRoot(t)
	rt := testutil.NewRuntime(t)
	parent, id := testutil.UniqueName(t), testutil.UniqueName(t)
	cg := "/" + parent + "/" + id
	all := append([]testutil.Option{testutil.WithCgroupsPath(cg), testutil.WithMemoryLimit(memLimit),
		testutil.WithPidsLimit(20), testutil.WithArgs(args...)}, opts...)
	b := testutil.NewBundle(t, all...)
	rt.MustRun("create", "--bundle", b.Dir, id)
	// Registered after NewRuntime's cleanup, so it runs first: the
	// container must be gone before its cgroups can be removed.
	t.Cleanup(func() {
		if _, _, err := rt.Run("delete", "--force", id); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
		testutil.RemoveCgroupTree("/" + parent)
	})
	rt.MustRun("start", id)
	st, err := rt.State(id)
	if err != nil {
		t.Fatal(err)
	}
	return running{id: id, cgroupsPath: cg, rootfs: b.Rootfs, pid: st.Pid}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitPids waits until the container's cgroup holds n processes, each
// running its own program.
func waitPids(t *testing.T, c running, n int) []int {
	t.Helper()
	var pids []int
	waitFor(t, fmt.Sprintf("%d processes in %s", n, c.cgroupsPath), func() bool {
		var err error
		pids, err = Pids(c.cgroupsPath)
		if err != nil {
			t.Fatal(err)
		}
		// A child forked but not yet exec'd has its parent's cmdline.
		cmds := map[string]bool{}
		for _, p := range pids {
			cmds[cmdline(p)] = true
		}
		return len(pids) == n && len(cmds) == n
	})
	return pids
}

func read(t *testing.T, c running) *container.StatsResponse {
	t.Helper()
	s, err := Read(c.cgroupsPath, c.pid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func TestPidsAndLimits(t *testing.T) {
	testutil.LeakCheck(t)
	c := start(t, []string{"sh", "-c", "sleep 1001 & sleep 1002 & wait"})
	pids := waitPids(t, c, 3)
	var cmds []string
	for _, p := range pids {
		cmds = append(cmds, cmdline(p))
	}
	sort.Strings(cmds)
	if want := []string{"sh -c sleep 1001 & sleep 1002 & wait", "sleep 1001", "sleep 1002"}; !reflect.DeepEqual(cmds, want) {
		t.Errorf("processes of the cgroup: %q, want %q", cmds, want)
	}
	if !contains(pids, c.pid) {
		t.Errorf("pids %v lack the container's init %d", pids, c.pid)
	}

	before := time.Now()
	s := read(t, c)
	if s.Read.Before(before) || time.Since(s.Read) > time.Minute {
		t.Errorf("read time %v", s.Read)
	}
	if s.PidsStats != (container.PidsStats{Current: 3, Limit: 20}) {
		t.Errorf("pids stats %+v, want 3 of 20", s.PidsStats)
	}
	m := s.MemoryStats
	if m.Limit != memLimit || m.Usage == 0 || m.Usage > memLimit {
		t.Errorf("memory: usage %d limit %d, want a usage under the limit %d", m.Usage, m.Limit, memLimit)
	}
	online := uint32(0)
	stat, _ := os.ReadFile("/proc/stat")
	for _, l := range strings.Split(string(stat), "\n") {
		if strings.HasPrefix(l, "cpu") && !strings.HasPrefix(l, "cpu ") {
			online++
		}
	}
	if s.CPUStats.OnlineCPUs != online || s.CPUStats.SystemUsage == 0 || s.CPUStats.CPUUsage.TotalUsage == 0 {
		t.Errorf("cpu: %+v (online CPUs here: %d)", s.CPUStats, online)
	}
	// A network namespace holding only lo: no networks, as dockerd
	// reports a --network none container.
	if s.Networks != nil {
		t.Errorf("networks: %+v", s.Networks)
	}
	if s.NumProcs != 0 {
		t.Errorf("num_procs %d", s.NumProcs)
	}
	if unified(t, c) {
		if _, ok := m.Stats["anon"]; !ok || len(m.Stats) != len(v2MemoryKeys) {
			t.Errorf("v2 memory stats: %v", m.Stats)
		}
		return
	}
	if m.MaxUsage < m.Usage || len(m.Stats) != len(v1MemoryKeys) || m.Stats["hierarchical_memory_limit"] != memLimit {
		t.Errorf("v1 memory: max %d usage %d stats %v", m.MaxUsage, m.Usage, m.Stats)
	}
	if n := len(s.CPUStats.CPUUsage.PercpuUsage); n < int(online) {
		t.Errorf("per-cpu usage %v for %d CPUs", s.CPUStats.CPUUsage.PercpuUsage, online)
	}
	if s.BlkioStats.IoServiceBytesRecursive == nil || s.BlkioStats.SectorsRecursive == nil {
		t.Errorf("v1 blkio lists must be lists: %+v", s.BlkioStats)
	}

}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// unified reports whether the container lives in a pure v2 hierarchy.
func unified(t *testing.T, c running) bool {
	paths, err := resolve(c.cgroupsPath)
	if err != nil {
		t.Fatal(err)
	}
	_, ok := paths[""]
	return ok && len(paths) == 1
}

func TestCPUUsageRises(t *testing.T) {
	testutil.LeakCheck(t)
	c := start(t, []string{"sh", "-c", "while :; do :; done"})
	s1 := read(t, c)
	time.Sleep(time.Second)
	s2 := read(t, c)
	SetPrevious(s2, s1)
	cpuDelta := float64(s2.CPUStats.CPUUsage.TotalUsage - s2.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s2.CPUStats.SystemUsage - s2.PreCPUStats.SystemUsage)
	if sysDelta <= 0 {
		t.Fatalf("system usage did not grow: %d -> %d", s1.CPUStats.SystemUsage, s2.CPUStats.SystemUsage)
	}
	// docker stats' CPU %: a busy loop keeps about one CPU busy (wide
	// bounds: a loaded host starves it, and the two clocks of a sample are
	// not read at one instant; two CPUs or none would be wrong).
	percent := cpuDelta / sysDelta * float64(s2.CPUStats.OnlineCPUs) * 100
	if percent < 25 || percent > 150 {
		t.Errorf("CPU %% of a busy loop: %.1f (cpu delta %.0f ns, system delta %.0f ns)", percent, cpuDelta, sysDelta)
	}
	if s2.CPUStats.CPUUsage.UsageInUsermode <= s1.CPUStats.CPUUsage.UsageInUsermode {
		t.Errorf("user mode time did not grow: %d -> %d", s1.CPUStats.CPUUsage.UsageInUsermode, s2.CPUStats.CPUUsage.UsageInUsermode)
	}
	// On a hybrid host the container also sits in the cgroup2 hierarchy,
	// whose cpu.stat exists without any controller: the v2 reader on a
	// real kernel must see the same busy loop.
	if paths, err := resolve(c.cgroupsPath); err == nil && len(paths) > 1 && paths[""] != "" {
		v2 := reader{proc: "/proc", paths: map[string]string{"": paths[""]}}
		a, err := v2.read(0)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		b, err := v2.read(0)
		if err != nil {
			t.Fatal(err)
		}
		d := float64(b.CPUStats.CPUUsage.TotalUsage-a.CPUStats.CPUUsage.TotalUsage) / float64(b.CPUStats.SystemUsage-a.CPUStats.SystemUsage)
		if p := d * float64(b.CPUStats.OnlineCPUs) * 100; p < 25 || p > 150 {
			t.Errorf("CPU %% from the unified hierarchy's cpu.stat: %.1f", p)
		}
	}
	if pc := s2.CPUStats.CPUUsage.PercpuUsage; len(pc) > 0 {
		var sum uint64
		for _, v := range pc {
			sum += v
		}
		if sum < s2.CPUStats.CPUUsage.TotalUsage*9/10 {
			t.Errorf("per-cpu usage %v sums to %d, total is %d", pc, sum, s2.CPUStats.CPUUsage.TotalUsage)
		}
	}
}

func TestMemoryUsageRises(t *testing.T) {
	testutil.LeakCheck(t)
	// The shell holds 24 MB in a variable once /go exists (the last command
	// keeps the shell from exec-ing sleep, which would free it).
	c := start(t, []string{"sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done; x=$(head -c 24000000 /dev/zero | tr '\\000' a); touch /done; sleep 1000; echo ${#x}"})
	s1 := read(t, c)
	if err := os.WriteFile(filepath.Join(c.rootfs, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the allocation", func() bool {
		_, err := os.Stat(filepath.Join(c.rootfs, "done"))
		return err == nil
	})
	s2 := read(t, c)
	if grew := int64(s2.MemoryStats.Usage) - int64(s1.MemoryStats.Usage); grew < 20e6 {
		t.Errorf("memory usage grew by %d bytes (%d -> %d), want about 24 MB", grew, s1.MemoryStats.Usage, s2.MemoryStats.Usage)
	}
	key := "total_rss"
	if unified(t, c) {
		key = "anon"
	} else if s2.MemoryStats.MaxUsage < s2.MemoryStats.Usage {
		t.Errorf("max usage %d below usage %d", s2.MemoryStats.MaxUsage, s2.MemoryStats.Usage)
	}
	if grew := int64(s2.MemoryStats.Stats[key]) - int64(s1.MemoryStats.Stats[key]); grew < 20e6 {
		t.Errorf("%s grew by %d bytes, want about 24 MB", key, grew)
	}
}

func TestNetworkCounters(t *testing.T) {
	testutil.LeakCheck(t)
	c := start(t, []string{"sleep", "1000"})
	// A veth pair inside the container's namespace (it goes away with
	// it), and a few datagrams out of eth0: ARP requests cross to eth1.
	script := "ip link add eth0 type veth peer name eth1 && ip addr add 10.199.0.1/24 dev eth0 && " +
		"ip link set eth0 up && ip link set eth1 up && sleep 0.3 && " +
		"for i in 1 2 3; do echo hi > /dev/udp/10.199.0.9/9; done; sleep 0.3"
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(c.pid), "-n", "bash", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("set up interfaces in the container: %v\n%s", err, out)
	}
	var s *container.StatsResponse
	waitFor(t, "traffic on eth0", func() bool {
		s = read(t, c)
		return s.Networks["eth0"].TxPackets > 0 && s.Networks["eth1"].RxPackets > 0
	})
	if _, ok := s.Networks["lo"]; ok || len(s.Networks) != 2 {
		t.Errorf("networks: %+v, want eth0 and eth1 only", s.Networks)
	}
	e0, e1 := s.Networks["eth0"], s.Networks["eth1"]
	if e0.TxBytes == 0 || e0.TxBytes != e1.RxBytes || e0.TxPackets != e1.RxPackets {
		t.Errorf("eth0 sent %d bytes/%d packets, eth1 received %d/%d", e0.TxBytes, e0.TxPackets, e1.RxBytes, e1.RxPackets)
	}

	// A container in the engine's own network namespace reports none.
	host := start(t, []string{"sleep", "1000"}, testutil.WithNamespaces(specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace))
	if s := read(t, host); s.Networks != nil {
		t.Errorf("host network container: networks %+v", s.Networks)
	}
	b, _ := json.Marshal(read(t, host))
	if strings.Contains(string(b), `"networks"`) {
		t.Errorf("JSON has networks: %s", b)
	}
}

func TestTop(t *testing.T) {
	testutil.LeakCheck(t)
	c := start(t, []string{"sh", "-c", "sleep 1001 & sleep 1002 & wait"})
	pids := waitPids(t, c, 3)

	// dockerd 20.10's titles for its default and for "aux" on this host.
	for _, tc := range []struct {
		args         string
		titles       []string
		pidCol, last int
	}{
		{"", []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}, 1, 7},
		{"-ef", []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}, 1, 7},
		{"aux", []string{"USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"}, 1, 10},
		{"-o pid,comm", []string{"PID", "COMMAND"}, 0, 1},
	} {
		top, err := Top(pids, tc.args)
		if err != nil {
			t.Errorf("top %q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(top.Titles, tc.titles) {
			t.Errorf("top %q: titles %q, want %q", tc.args, top.Titles, tc.titles)
		}
		var got []int
		var cmds []string
		for _, p := range top.Processes {
			if len(p) != len(tc.titles) {
				t.Errorf("top %q: row %q has %d columns", tc.args, p, len(p))
				continue
			}
			n, _ := strconv.Atoi(p[tc.pidCol])
			got = append(got, n)
			cmds = append(cmds, p[tc.last])
		}
		sort.Ints(got)
		sort.Strings(cmds)
		if !reflect.DeepEqual(got, pids) {
			t.Errorf("top %q: pids %v, want %v", tc.args, got, pids)
		}
		want := []string{"sh -c sleep 1001 & sleep 1002 & wait", "sleep 1001", "sleep 1002"}
		if tc.args == "-o pid,comm" {
			want = []string{"sh", "sleep", "sleep"}
		}
		if !reflect.DeepEqual(cmds, want) {
			t.Errorf("top %q: commands %q, want %q", tc.args, cmds, want)
		}
	}

	for _, tc := range []struct{ args, err string }{
		{"-o comm", "Couldn't find PID field in ps output"},
		{"-o user=PID", `specifying "user=PID" is not allowed`},
		{"--no-such-option", "ps: error: unknown gnu long option"},
	} {
		if _, err := Top(pids, tc.args); err == nil || !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("top %q: error %v, want %q", tc.args, err, tc.err)
		}
	}
}

func TestGoneContainer(t *testing.T) {
	testutil.RequireRoot(t)
	path := "/" + testutil.UniqueName(t) + "/none"
	if _, err := Read(path, 0); !errdefs.IsNotFound(err) {
		t.Errorf("Read of a cgroup that does not exist: %v, want not found", err)
	}
	if _, err := Pids(path); !errdefs.IsNotFound(err) {
		t.Errorf("Pids of a cgroup that does not exist: %v, want not found", err)
	}
}
