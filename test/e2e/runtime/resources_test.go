package e2eruntime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestMemoryLimitVisible(t *testing.T) {
	rt := newRuntime(t)
	id, b := startContainer(t, rt, testutil.WithMemoryLimit(48<<20))
	host := readTrim(t, filepath.Join(cgroupDir(t, "memory", b.Spec.Linux.CgroupsPath), "memory.limit_in_bytes"))
	if host != "50331648" {
		t.Errorf("host memory.limit_in_bytes %s", host)
	}
	out := execOut(t, rt, id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
	if strings.TrimSpace(out) != "50331648" {
		t.Errorf("container sees memory.limit_in_bytes %q", out)
	}
}

func TestMemoryLimitOOMKill(t *testing.T) {
	rt := newRuntime(t)
	limit := int64(32 << 20)
	out, errOut, code := runContainer(t, rt, testutil.WithMemoryLimit(limit), testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Resources.Memory.Swap = &limit // no swap beyond the limit
	}), sh(`x=$(head -c 200000000 /dev/zero | tr '\0' a); echo survived ${#x}`))
	if code != 137 || strings.Contains(out, "survived") {
		t.Errorf("allocation beyond the limit: exit %d, stdout %q, stderr %q (want 137)", code, out, errOut)
	}
}

func TestPidsLimit(t *testing.T) {
	rt := newRuntime(t)
	id, b := startContainer(t, rt, testutil.WithPidsLimit(8))
	if got := readTrim(t, filepath.Join(cgroupDir(t, "pids", b.Spec.Linux.CgroupsPath), "pids.max")); got != "8" {
		t.Errorf("pids.max %s", got)
	}
	// A fork loop stops at the limit; the exec'd shell counts too.
	_, errOut, _ := rt.Run("exec", id, "sh", "-c", "for i in $(seq 30); do sleep 30 & done; wait")
	if !strings.Contains(errOut, "fork") {
		t.Errorf("fork loop stderr %q: want a fork failure", errOut)
	}
	got := readTrim(t, filepath.Join(cgroupDir(t, "pids", b.Spec.Linux.CgroupsPath), "pids.current"))
	if got == "" || len(got) > 1 || got > "8" {
		t.Errorf("pids.current %s beyond the limit", got)
	}
	rt.MustRun("kill", "--all", id, "KILL")
}

func TestCPUResources(t *testing.T) {
	rt := newRuntime(t)
	shares, quota, period := uint64(512), int64(50000), uint64(100000)
	_, b := startContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period}
	}))
	dir := cgroupDir(t, "cpu", b.Spec.Linux.CgroupsPath)
	for f, want := range map[string]string{"cpu.shares": "512", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"} {
		if got := readTrim(t, filepath.Join(dir, f)); got != want {
			t.Errorf("%s = %s, want %s", f, got, want)
		}
	}
}

func TestContainerCgroup(t *testing.T) {
	rt := newRuntime(t)
	id, b := startContainer(t, rt)
	cg, _ := os.ReadFile("/proc/" + itoa(initPid(t, rt, id)) + "/cgroup")
	for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		if strings.Contains(l, "name=systemd") || strings.HasSuffix(l, ":") {
			continue
		}
		if !strings.HasSuffix(l, b.Spec.Linux.CgroupsPath) {
			t.Errorf("init cgroup line %q not in %s", l, b.Spec.Linux.CgroupsPath)
		}
	}
}

func TestAnnotationsInState(t *testing.T) {
	rt := newRuntime(t)
	id, _ := createContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Annotations = map[string]string{"org.example.key": "value", "second": "2"}
	}))
	a, _ := state(t, rt, id)["annotations"].(map[string]any)
	if a["org.example.key"] != "value" || a["second"] != "2" {
		t.Errorf("annotations %v", a)
	}
}

func TestDevices(t *testing.T) {
	rt := newRuntime(t)
	mode := os.FileMode(0o640)
	uid, gid := uint32(1000), uint32(1000)
	out, errOut, code := runContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode, UID: &uid, GID: &gid})
		// /dev/kmsg bound in from the host: the device cgroup must deny it.
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/kmsg", Type: "bind", Source: "/dev/kmsg", Options: []string{"bind"}})
	}), sh(`stat -c '%F %a %u %g %t %T' /dev/fuse
echo x > /dev/null && echo null-ok
head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c
echo x > /dev/full; echo full=$?
ls -l /dev/ptmx /dev/fd /dev/stdin | wc -l
head -c 1 /dev/kmsg; echo kmsg=$?`))
	if code != 0 {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	want := "character special file 640 1000 1000 a e5\nnull-ok\n4\n4\nfull=1\n3\nkmsg=1\n"
	if out != want {
		t.Errorf("stdout %q, want %q (stderr %q)", out, want, errOut)
	}
	wantContains(t, "stderr", errOut, "/dev/kmsg: Operation not permitted")
}
