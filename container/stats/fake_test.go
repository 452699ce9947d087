package stats

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/errdefs"
)

// writeTree writes files (path relative to root -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const fakePid = 4242

// fakeProc writes a procfs with two online CPUs, 2 GiB of memory and, for
// fakePid, a private network namespace holding lo and eth0.
func fakeProc(t *testing.T) string {
	proc := t.TempDir()
	writeTree(t, proc, map[string]string{
		"stat":    "cpu  100 1 200 1000 10 0 5 7 0 0\ncpu0 50 1 100 500 5 0 2 3 0 0\ncpu1 50 0 100 500 5 0 3 4 0 0\nintr 1 2\n",
		"meminfo": "MemTotal:        2097152 kB\nMemFree:          100 kB\n",
		"4242/net/dev": "Inter-|   Receive                                                |  Transmit\n" +
			" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			"    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n" +
			"  eth0:    1100      11    1    2    0     0          0         0     2200      22    3    4    0     0       0          0\n",
		"4242/ns/net": "container's",
		"self/ns/net": "engine's",
	})
	return proc
}

func TestReadV2(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
		"cpu.stat":           "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 50\nnr_bursts 0\nburst_usec 0\n",
		"memory.current":     "8388608\n",
		"memory.max":         "max\n",
		"memory.peak":        "9999999\n",
		"memory.stat":        "anon 4096\nfile 8192\nkernel_stack 16384\nshmem 0\nzswap 77\npgfault 12\nthp_collapse_alloc 1\n",
		"memory.events":      "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
		"pids.current":       "3\n",
		"pids.max":           "max\n",
		"io.stat":            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n",
	})
	proc := fakeProc(t)
	before := time.Now()
	s, err := reader{proc: proc, paths: map[string]string{"": dir}}.read(fakePid)
	if err != nil {
		t.Fatal(err)
	}
	if s.Read.Before(before) || time.Since(s.Read) > time.Minute {
		t.Errorf("read time %v, sampled after %v", s.Read, before)
	}
	wantCPU := container.CPUStats{
		CPUUsage:       container.CPUUsage{TotalUsage: 3000000, UsageInUsermode: 2000000, UsageInKernelmode: 1000000},
		SystemUsage:    (100 + 1 + 200 + 1000 + 10 + 0 + 5) * 1e7,
		OnlineCPUs:     2,
		ThrottlingData: container.ThrottlingData{Periods: 10, ThrottledPeriods: 4, ThrottledTime: 50000},
	}
	if !reflect.DeepEqual(s.CPUStats, wantCPU) {
		t.Errorf("cpu stats:\n got %+v\nwant %+v", s.CPUStats, wantCPU)
	}
	m := s.MemoryStats
	// No limit: the host's memory, as dockerd reports it.
	if m.Usage != 8388608 || m.Limit != 2<<30 || m.MaxUsage != 0 || m.Failcnt != 0 {
		t.Errorf("memory: usage %d limit %d max %d failcnt %d", m.Usage, m.Limit, m.MaxUsage, m.Failcnt)
	}
	if len(m.Stats) != len(v2MemoryKeys) || m.Stats["anon"] != 4096 || m.Stats["file"] != 8192 ||
		m.Stats["kernel_stack"] != 16384 || m.Stats["thp_collapse_alloc"] != 1 || m.Stats["workingset_refault"] != 0 {
		t.Errorf("memory stats map: %v", m.Stats)
	}
	if _, ok := m.Stats["zswap"]; ok {
		t.Errorf("memory stats map passes through zswap, which dockerd does not: %v", m.Stats)
	}
	if s.PidsStats != (container.PidsStats{Current: 3, Limit: math.MaxUint64}) {
		t.Errorf("pids: %+v", s.PidsStats)
	}
	wantIO := []container.BlkioStatEntry{entry(8, 0, "read", 4096), entry(8, 0, "write", 8192), entry(253, 1, "read", 1), entry(253, 1, "write", 2)}
	if !reflect.DeepEqual(s.BlkioStats, container.BlkioStats{IoServiceBytesRecursive: wantIO}) {
		t.Errorf("blkio: %+v", s.BlkioStats)
	}
	wantNet := map[string]container.NetworkStats{"eth0": {RxBytes: 1100, RxPackets: 11, RxErrors: 1, RxDropped: 2,
		TxBytes: 2200, TxPackets: 22, TxErrors: 3, TxDropped: 4}}
	if !reflect.DeepEqual(s.Networks, wantNet) {
		t.Errorf("networks: %+v", s.Networks)
	}

	// The JSON: v2 leaves every blkio list but the first null, as dockerd.
	b, _ := json.Marshal(s)
	for _, frag := range []string{`"io_serviced_recursive":null`, `"sectors_recursive":null`, `"num_procs":0`,
		`"limit":18446744073709551615`, `"online_cpus":2`} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("JSON lacks %s:\n%s", frag, b)
		}
	}
	for _, frag := range []string{`"percpu_usage"`, `"max_usage"`, `"failcnt"`} {
		if strings.Contains(string(b), frag) {
			t.Errorf("JSON has %s, which v2 does not offer:\n%s", frag, b)
		}
	}
}

func TestReadV2WithLimitsAndWithoutControllers(t *testing.T) {
	// A cgroup with only the always-present files: no memory, pids or io
	// controller enabled. Their fields stay empty; the read succeeds.
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cgroup.controllers": "",
		"cpu.stat":           "usage_usec 5\nuser_usec 3\nsystem_usec 2\n",
	})
	s, err := reader{proc: fakeProc(t), paths: map[string]string{"": dir}}.read(0)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUStats.CPUUsage.TotalUsage != 5000 || s.MemoryStats.Stats != nil || s.MemoryStats.Limit != 0 ||
		s.PidsStats != (container.PidsStats{}) || s.BlkioStats.IoServiceBytesRecursive != nil || s.Networks != nil {
		t.Errorf("stats: %+v", s)
	}

	writeTree(t, dir, map[string]string{
		"memory.current": "100\n", "memory.max": "67108864\n", "memory.stat": "anon 1\n",
		"pids.current": "1\n", "pids.max": "20\n",
	})
	s, err = reader{proc: fakeProc(t), paths: map[string]string{"": dir}}.read(0)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryStats.Limit != 67108864 || s.PidsStats.Limit != 20 {
		t.Errorf("limits: memory %d pids %d", s.MemoryStats.Limit, s.PidsStats.Limit)
	}
}

// v1Tree writes one directory per controller, as on this kind of host:
// cpu and cpuacct separate, memory with swap accounting, blkio without
// the CFQ files.
func v1Tree(t *testing.T) map[string]string {
	root := t.TempDir()
	paths := map[string]string{}
	for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "blkio", "devices", "freezer", "name=systemd"} {
		paths[c] = filepath.Join(root, c, "berth", "c1")
	}
	paths[""] = filepath.Join(root, "unified", "berth", "c1") // hybrid: ignored
	writeTree(t, root, map[string]string{
		"cpuacct/berth/c1/cpuacct.usage":        "2946395232\n",
		"cpuacct/berth/c1/cpuacct.usage_percpu": "1558702110 1387693122 \n",
		"cpuacct/berth/c1/cpuacct.usage_user":   "2840123456\n",
		"cpuacct/berth/c1/cpuacct.stat":         "user 284\nsystem 9\n",
		"cpu/berth/c1/cpu.stat":                 "nr_periods 7\nnr_throttled 2\nthrottled_time 123456\n",
		"memory/berth/c1/memory.stat": "cache 4096\nrss 122880\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\nwriteback 0\nswap 0\n" +
			"pgpgin 807\npgpgout 777\npgfault 1093\npgmajfault 0\ninactive_anon 114688\nactive_anon 8192\ninactive_file 0\nactive_file 0\nunevictable 0\n" +
			"hierarchical_memory_limit 67108864\nhierarchical_memsw_limit 134217728\ntotal_cache 4096\ntotal_rss 122880\ntotal_rss_huge 0\ntotal_shmem 0\n" +
			"total_mapped_file 0\ntotal_dirty 0\ntotal_writeback 0\ntotal_swap 0\ntotal_pgpgin 807\ntotal_pgpgout 777\ntotal_pgfault 1093\ntotal_pgmajfault 0\n" +
			"total_inactive_anon 114688\ntotal_active_anon 8192\ntotal_inactive_file 0\ntotal_active_file 0\ntotal_unevictable 0\n",
		"memory/berth/c1/memory.usage_in_bytes":                    "471040\n",
		"memory/berth/c1/memory.max_usage_in_bytes":                "4050944\n",
		"memory/berth/c1/memory.limit_in_bytes":                    "9223372036854771712\n",
		"memory/berth/c1/memory.failcnt":                           "5\n",
		"pids/berth/c1/pids.current":                               "2\n",
		"pids/berth/c1/pids.max":                                   "max\n",
		"blkio/berth/c1/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 0\n8:0 Sync 4096\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 4096\nTotal 4096\n",
		"blkio/berth/c1/blkio.throttle.io_service_bytes":           "8:0 Read 1\nTotal 1\n",
		"blkio/berth/c1/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 0\n8:0 Sync 1\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 1\nTotal 1\n",
		"blkio/berth/c1/blkio.bfq.io_service_bytes_recursive":      "Total 0\n",
		"devices/berth/c1/devices.list":                            "a *:* rwm\n",
	})
	return paths
}

func TestReadV1(t *testing.T) {
	paths := v1Tree(t)
	s, err := reader{proc: fakeProc(t), paths: paths}.read(fakePid)
	if err != nil {
		t.Fatal(err)
	}
	wantCPU := container.CPUStats{
		CPUUsage: container.CPUUsage{TotalUsage: 2946395232, PercpuUsage: []uint64{1558702110, 1387693122},
			// cpuacct.stat's ticks, not cpuacct.usage_user: dockerd's numbers.
			UsageInUsermode: 2840000000, UsageInKernelmode: 90000000},
		SystemUsage:    (100 + 1 + 200 + 1000 + 10 + 0 + 5) * 1e7,
		OnlineCPUs:     2,
		ThrottlingData: container.ThrottlingData{Periods: 7, ThrottledPeriods: 2, ThrottledTime: 123456},
	}
	if !reflect.DeepEqual(s.CPUStats, wantCPU) {
		t.Errorf("cpu stats:\n got %+v\nwant %+v", s.CPUStats, wantCPU)
	}
	m := s.MemoryStats
	if m.Usage != 471040 || m.MaxUsage != 4050944 || m.Failcnt != 5 || m.Limit != 2<<30 {
		t.Errorf("memory: usage %d max %d failcnt %d limit %d", m.Usage, m.MaxUsage, m.Failcnt, m.Limit)
	}
	// The 32 keys dockerd 20.10 shows on this host, and no others
	// (memory.stat's shmem and swap are not among them).
	var keys []string
	for k := range m.Stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "active_anon active_file cache dirty hierarchical_memory_limit hierarchical_memsw_limit inactive_anon inactive_file " +
		"mapped_file pgfault pgmajfault pgpgin pgpgout rss rss_huge total_active_anon total_active_file total_cache total_dirty " +
		"total_inactive_anon total_inactive_file total_mapped_file total_pgfault total_pgmajfault total_pgpgin total_pgpgout " +
		"total_rss total_rss_huge total_unevictable total_writeback unevictable writeback"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("memory stats keys:\n got %s\nwant %s", got, want)
	}
	if m.Stats["total_rss"] != 122880 || m.Stats["hierarchical_memory_limit"] != 67108864 || m.Stats["pgpgin"] != 807 {
		t.Errorf("memory stats values: %v", m.Stats)
	}
	// v1 reports an unlimited pids cgroup without a limit (v2: MaxUint64).
	if s.PidsStats != (container.PidsStats{Current: 2}) {
		t.Errorf("pids: %+v", s.PidsStats)
	}
	b := s.BlkioStats
	wantBytes := []container.BlkioStatEntry{entry(8, 0, "Read", 4096), entry(8, 0, "Write", 0), entry(8, 0, "Sync", 4096), entry(8, 0, "Async", 0), entry(8, 0, "Discard", 0), entry(8, 0, "Total", 4096)}
	if !reflect.DeepEqual(b.IoServiceBytesRecursive, wantBytes) {
		t.Errorf("io_service_bytes_recursive: %+v", b.IoServiceBytesRecursive)
	}
	if len(b.IoServicedRecursive) != 6 || b.IoServicedRecursive[0] != entry(8, 0, "Read", 1) {
		t.Errorf("io_serviced_recursive: %+v", b.IoServicedRecursive)
	}
	js, _ := json.Marshal(s)
	// Every v1 blkio list is a list, as dockerd sends them, even empty.
	for _, frag := range []string{`"io_queue_recursive":[]`, `"io_service_time_recursive":[]`, `"io_wait_time_recursive":[]`,
		`"io_merged_recursive":[]`, `"io_time_recursive":[]`, `"sectors_recursive":[]`, `"percpu_usage":[1558702110,1387693122]`} {
		if !strings.Contains(string(js), frag) {
			t.Errorf("JSON lacks %s:\n%s", frag, js)
		}
	}
	if len(s.Networks) != 1 {
		t.Errorf("networks: %+v", s.Networks)
	}
}

func TestReadV1MissingFiles(t *testing.T) {
	// No blkio files at all, no cpu.stat, a memory dir without
	// max_usage: the present numbers are read, the rest stays empty.
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"memory/c/memory.stat":           "rss 1\n",
		"memory/c/memory.usage_in_bytes": "10\n",
		"pids/c/pids.current":            "1\n",
		"pids/c/pids.max":                "5\n",
		"blkio/c/cgroup.procs":           "",
		"cpuacct/c/cpuacct.usage":        "99\n",
	})
	paths := map[string]string{}
	for _, c := range []string{"memory", "pids", "blkio", "cpuacct", "cpu"} {
		paths[c] = filepath.Join(root, c, "c")
	}
	s, err := reader{proc: fakeProc(t), paths: paths}.read(0)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryStats.Usage != 10 || s.MemoryStats.Stats["rss"] != 1 || s.PidsStats.Limit != 5 ||
		s.CPUStats.CPUUsage.TotalUsage != 99 || s.CPUStats.CPUUsage.PercpuUsage != nil ||
		s.BlkioStats.IoServiceBytesRecursive == nil || len(s.BlkioStats.IoServiceBytesRecursive) != 0 {
		t.Errorf("stats: %+v", s)
	}
}

func TestReadBadFiles(t *testing.T) {
	paths := v1Tree(t)
	writeTree(t, paths["memory"], map[string]string{"memory.usage_in_bytes": "lots\n"})
	_, err := reader{proc: fakeProc(t), paths: paths}.read(0)
	if err == nil || !strings.Contains(err.Error(), "memory.usage_in_bytes") || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("error %v, want one naming memory.usage_in_bytes and its content", err)
	}
}

func TestReadMissingCgroup(t *testing.T) {
	root := t.TempDir()
	_, err := reader{proc: fakeProc(t), paths: map[string]string{"memory": filepath.Join(root, "memory/gone"), "pids": filepath.Join(root, "pids/gone")}}.read(0)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "memory/gone") {
		t.Errorf("error %v, want not found naming the cgroup", err)
	}
	if _, err := Read("", 0); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Read without a path: %v, want invalid argument", err)
	}
	if _, err := Pids(""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Pids without a path: %v, want invalid argument", err)
	}
}

func TestNetworks(t *testing.T) {
	proc := fakeProc(t)
	// Sharing the engine's namespace (--network host): not the
	// container's interfaces, none reported.
	if err := os.Remove(filepath.Join(proc, "self/ns/net")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(proc, "4242/ns/net"), filepath.Join(proc, "self/ns/net")); err != nil {
		t.Fatal(err)
	}
	if n, err := readNetworks(proc, fakePid); err != nil || n != nil {
		t.Errorf("shared namespace: %v, %v; want none", n, err)
	}
	// A process that is gone has no counters, and that is not an error.
	if n, err := readNetworks(proc, 99999); err != nil || n != nil {
		t.Errorf("gone process: %v, %v", n, err)
	}
	// Only lo (--network none): none, so the JSON omits "networks".
	n, err := parseNetDev("Inter-|\n face |\n    lo:  1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
	if err != nil || n != nil {
		t.Errorf("lo only: %v, %v", n, err)
	}
	if _, err := parseNetDev("  eth0: 1 2 3\n"); err == nil || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("short line: %v", err)
	}
}

func TestSetPrevious(t *testing.T) {
	prev := &container.StatsResponse{Read: time.Unix(100, 0), CPUStats: container.CPUStats{SystemUsage: 5, CPUUsage: container.CPUUsage{TotalUsage: 3}}}
	cur := &container.StatsResponse{Read: time.Unix(101, 0), CPUStats: container.CPUStats{SystemUsage: 9}}
	SetPrevious(cur, prev)
	if !cur.PreRead.Equal(prev.Read) || !reflect.DeepEqual(cur.PreCPUStats, prev.CPUStats) || cur.CPUStats.SystemUsage != 9 {
		t.Errorf("after SetPrevious: %+v", cur)
	}
	SetPrevious(cur, nil)
	if !cur.PreRead.IsZero() || !reflect.DeepEqual(cur.PreCPUStats, container.CPUStats{}) {
		t.Errorf("after SetPrevious(nil): %+v", cur)
	}
}

func TestHostCPU(t *testing.T) {
	proc := t.TempDir()
	writeTree(t, proc, map[string]string{"stat": "intr 5\n"})
	if _, err := readHostCPU(proc); err == nil || !strings.Contains(err.Error(), "no cpu line") {
		t.Errorf("no cpu line: %v", err)
	}
	writeTree(t, proc, map[string]string{"stat": "cpu 1 2 x 4 5 6 7\n"})
	if _, err := readHostCPU(proc); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("bad number: %v", err)
	}
	// The real one: as many cpuN lines as online CPUs, a growing total.
	h, err := readHostCPU("/proc")
	if err != nil || h.onlineCPUs == 0 || h.systemUsage == 0 {
		t.Errorf("/proc/stat: %+v, %v", h, err)
	}
}

// entry builds a BlkioStatEntry.
func entry(major, minor uint64, op string, v uint64) container.BlkioStatEntry {
	return container.BlkioStatEntry{Major: major, Minor: minor, Op: op, Value: v}
}
