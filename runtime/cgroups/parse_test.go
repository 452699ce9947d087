package cgroups

import (
	"encoding/json"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const hybridMountinfo = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const hybridProcCgroup = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/250b
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/user.slice
`

const v2Mountinfo = `25 1 0:23 / /sys rw,nosuid shared:2 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:3 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
99 1 0:24 / /mnt/other\040cg rw,relatime shared:3 - cgroup2 cgroup2 rw
`

// A container-ish view: comma-joined controllers, and a bind mount of a
// sub-cgroup as the hierarchy (root field not "/").
const joinedMountinfo = `40 30 0:40 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct
41 30 0:41 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
42 30 0:41 /sub /other/memory rw - cgroup cgroup rw,memory
43 30 0:42 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
`

func TestParseMountinfoHybrid(t *testing.T) {
	h, err := parseMountinfo(hybridMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "cpuset": "/sys/fs/cgroup/cpuset",
		"memory": "/sys/fs/cgroup/memory", "devices": "/sys/fs/cgroup/devices", "freezer": "/sys/fs/cgroup/freezer",
		"blkio": "/sys/fs/cgroup/blkio", "pids": "/sys/fs/cgroup/pids", "name=systemd": "/sys/fs/cgroup/systemd",
	}
	if len(h.v1) != len(want) {
		t.Fatalf("v1 = %v, want %v", h.v1, want)
	}
	for k, v := range want {
		if h.v1[k] == nil || h.v1[k].mountpoint != v || h.v1[k].root != "/" {
			t.Errorf("v1[%s] = %+v, want %s", k, h.v1[k], v)
		}
	}
	if h.v2 == nil || h.v2.mountpoint != "/sys/fs/cgroup/unified" {
		t.Errorf("v2 = %+v", h.v2)
	}
}

func TestParseMountinfoV2(t *testing.T) {
	h, err := parseMountinfo(v2Mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.v1) != 0 || h.v2 == nil || h.v2.mountpoint != "/sys/fs/cgroup" {
		t.Fatalf("got v1=%v v2=%+v", h.v1, h.v2)
	}
}

func TestParseMountinfoJoined(t *testing.T) {
	h, err := parseMountinfo(joinedMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"cpu", "cpuacct"} {
		if m := h.v1[c]; m == nil || m.mountpoint != "/sys/fs/cgroup/cpu,cpuacct" || m.root != "/docker/abc" {
			t.Errorf("%s: %+v", c, m)
		}
	}
	if m := h.v1["memory"]; m.mountpoint != "/sys/fs/cgroup/memory" {
		t.Errorf("memory should prefer the root mount: %+v", m)
	}
	if h.v1["net_cls"] == nil || h.v1["net_prio"] == nil || h.v2 != nil {
		t.Errorf("got %+v", h)
	}
	own := map[string]string{"cpu": "/docker/abc", "cpuacct": "/docker/abc", "memory": "/docker/abc", "net_cls": "/", "net_prio": "/"}
	m, err := newFromHierarchies(h, own, "sub")
	if err != nil {
		t.Fatal(err)
	}
	// The bind-mounted root is stripped from our own path.
	if got := m.paths["cpu"]; got != "/sys/fs/cgroup/cpu,cpuacct/sub" {
		t.Errorf("cpu = %s", got)
	}
	if got := m.paths["memory"]; got != "/sys/fs/cgroup/memory/docker/abc/sub" {
		t.Errorf("memory = %s", got)
	}
	if d := m.dirs(); len(d) != 3 {
		t.Errorf("dirs = %v (cpu and cpuacct share one)", d)
	}
}

func TestParseProcCgroup(t *testing.T) {
	own, err := parseProcCgroup(hybridProcCgroup + "10:cpu,cpuacct:/x\n")
	if err != nil {
		t.Fatal(err)
	}
	if own["memory"] != "/process_api/250b" || own[""] != "/user.slice" || own["name=systemd"] != "/" || own["cpuacct"] != "/x" {
		t.Errorf("got %v", own)
	}
	if _, err := parseProcCgroup("garbage\n"); err == nil {
		t.Error("want error for malformed line")
	}
}

func TestResolvePaths(t *testing.T) {
	h, _ := parseMountinfo(hybridMountinfo)
	own, _ := parseProcCgroup(hybridProcCgroup)
	for _, tc := range []struct {
		path, sub, want string
	}{
		{"/berth/c1", "memory", "/sys/fs/cgroup/memory/berth/c1"},
		{"/berth/c1", "", "/sys/fs/cgroup/unified/berth/c1"},
		{"/berth/c1", "name=systemd", "/sys/fs/cgroup/systemd/berth/c1"},
		{"rel/c1", "memory", "/sys/fs/cgroup/memory/process_api/250b/rel/c1"},
		{"rel/c1", "cpu", "/sys/fs/cgroup/cpu/rel/c1"},
		{"rel/c1", "", "/sys/fs/cgroup/unified/user.slice/rel/c1"},
	} {
		m, err := newFromHierarchies(h, own, tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.paths[tc.sub]; got != tc.want {
			t.Errorf("%s [%s] = %s, want %s", tc.path, tc.sub, got, tc.want)
		}
		if m.v2only {
			t.Error("hybrid manager must not be v2only")
		}
	}
	// ".." cannot climb out of a hierarchy.
	if m, err := newFromHierarchies(h, own, "../../../etc"); err != nil || m.paths["memory"] != "/sys/fs/cgroup/memory/etc" {
		t.Errorf("dot-dot path: %v %v", m.paths, err)
	}
	v2h, _ := parseMountinfo(v2Mountinfo)
	m, err := newFromHierarchies(v2h, map[string]string{"": "/"}, "/berth/x")
	if err != nil {
		t.Fatal(err)
	}
	if !m.v2only || m.paths[""] != "/sys/fs/cgroup/berth/x" || len(m.paths) != 1 {
		t.Errorf("v2 paths = %v", m.paths)
	}
	if _, err := New("system.slice:berth:x", "x"); err == nil || !strings.Contains(err.Error(), "systemd") {
		t.Errorf("systemd-style path: err = %v", err)
	}
	lm, err := Load(map[string]string{"": "/sys/fs/cgroup/unified/a"})
	if err != nil || !lm.(*manager).v2only {
		t.Errorf("Load v2: %v", err)
	}
}

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 0, 2: 1, 1024: 39, 262144: 10000, 512: 20, 100: 4} {
		if got := SharesToWeight(shares); got != want {
			t.Errorf("SharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	for w, want := range map[uint16]uint64{10: 1, 1000: 10000, 500: 4950} {
		if got := blkioWeightToIOWeight(w); got != want {
			t.Errorf("blkioWeightToIOWeight(%d) = %d, want %d", w, got, want)
		}
	}
}

func p64(v int64) *int64 { return &v }

func TestSwapV2(t *testing.T) {
	for _, tc := range []struct {
		limit, swap *int64
		want        string
		ok          bool
		err         string
	}{
		{p64(100), p64(300), "200", true, ""},
		{p64(100), p64(100), "0", true, ""},
		{p64(100), p64(-1), "max", true, ""},
		{p64(-1), nil, "max", true, ""},
		{p64(100), nil, "", false, ""},
		{nil, nil, "", false, ""},
		{p64(100), p64(50), "", false, "memory+swap limit (50) should be >= memory limit (100)"},
		{nil, p64(50), "", false, "needs a finite memory limit"},
	} {
		got, ok, err := swapV2(tc.limit, tc.swap)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v/%v: err = %v, want %q", tc.limit, tc.swap, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || ok != tc.ok {
			t.Errorf("%v/%v: got %q %v %v", tc.limit, tc.swap, got, ok, err)
		}
	}
}

func dev(allow bool, typ string, maj, min int64, acc string) specs.LinuxDeviceCgroup {
	d := specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Access: acc}
	if maj != -2 {
		d.Major = &maj
	}
	if min != -2 {
		d.Minor = &min
	}
	return d
}

const wild = -2 // "nil" in dev()

func TestV1DeviceRules(t *testing.T) {
	for _, tc := range []struct {
		d     specs.LinuxDeviceCgroup
		file  string
		lines string
	}{
		{dev(false, "", wild, wild, "rwm"), "devices.deny", "a"},
		{dev(true, "a", wild, wild, ""), "devices.allow", "a"},
		{dev(true, "c", 1, 3, "rwm"), "devices.allow", "c 1:3 rwm"},
		{dev(true, "c", 136, wild, "wr"), "devices.allow", "c 136:* rw"},
		{dev(false, "a", 8, wild, "m"), "devices.deny", "b 8:* m|c 8:* m"},
		{dev(true, "b", -1, -1, "r"), "devices.allow", "b *:* r"},
		{dev(true, "p", wild, wild, "r"), "devices.allow", ""},
	} {
		file, lines, err := v1DeviceRules(tc.d)
		if err != nil || file != tc.file || strings.Join(lines, "|") != tc.lines {
			t.Errorf("%+v: got %s %q %v, want %s %q", tc.d, file, lines, err, tc.file, tc.lines)
		}
	}
	if _, _, err := v1DeviceRules(dev(true, "c", 1, 3, "rx")); err == nil {
		t.Error("bad access must fail")
	}
	if _, _, err := v1DeviceRules(dev(true, "z", 1, 3, "r")); err == nil {
		t.Error("bad type must fail")
	}
}

func TestDeviceFilterShape(t *testing.T) {
	// deny-all first, then allow 1:3: the allow block comes first and the
	// wildcard deny terminates the program unconditionally.
	prog, err := deviceFilter([]specs.LinuxDeviceCgroup{dev(false, "a", wild, wild, "rwm"), dev(true, "c", 1, 3, "rwm")})
	if err != nil {
		t.Fatal(err)
	}
	// 6 prologue + (type, major, minor, mov, exit) + (mov, exit)
	if len(prog) != 6+5+2 {
		t.Fatalf("len = %d: %+v", len(prog), prog)
	}
	if prog[6].code != clsJMP|jmpJNE|srcK || prog[6].imm != devcgDevChar || prog[6].off != 4 {
		t.Errorf("type check = %+v", prog[6])
	}
	if last := prog[len(prog)-2]; last.imm != 0 {
		t.Errorf("default must deny: %+v", last)
	}
	// Rules after an allow-all are still honoured; rules before are dead.
	prog, _ = deviceFilter([]specs.LinuxDeviceCgroup{dev(true, "c", 1, 3, "r"), dev(true, "a", wild, wild, "rwm"), dev(false, "b", 8, 0, "w")})
	// 6 + deny block (type, mov, and, jeq, major, minor, mov, exit) + allow-all (mov, exit)
	if len(prog) != 6+8+2 || prog[len(prog)-2].imm != 1 {
		t.Errorf("got %d insns: %+v", len(prog), prog)
	}
	if b := encode(prog[:1]); len(b) != 8 || b[0] != 0x61 || b[1] != 0x12 {
		t.Errorf("encode ldxw r2,[r1] = % x", b)
	}
	if _, err := deviceFilter([]specs.LinuxDeviceCgroup{dev(true, "c", 1, 3, "q")}); err == nil {
		t.Error("bad access must fail")
	}
}

func TestParseIOStat(t *testing.T) {
	b, ios := parseIOStat("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n")
	if len(b) != 4 || b[0] != (BlkioEntry{254, 0, "Read", 4096}) || b[3] != (BlkioEntry{254, 0, "Total", 12288}) {
		t.Errorf("bytes = %+v", b)
	}
	if len(ios) != 4 || ios[3].Value != 3 {
		t.Errorf("ios = %+v", ios)
	}
	if pageSizeName(2<<20) != "2MB" || pageSizeName(1<<30) != "1GB" || pageSizeName(64<<10) != "64KB" {
		t.Error("pageSizeName")
	}
	js, _ := json.Marshal(&Stats{})
	for _, k := range []string{`"cpu":`, `"memory":`, `"pids":`, `"blkio":`} {
		if !strings.Contains(string(js), k) {
			t.Errorf("stats JSON %s lacks %s", js, k)
		}
	}
}
