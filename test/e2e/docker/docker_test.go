// Package docker_test proves that dockerd drives berth-runtime as a
// registered runtime (`dockerd --add-runtime berth=...`, `docker run
// --runtime berth`): through its own containerd and containerd's runc
// shim, like `ctr --runc-binary`. The daemon is private: its own data and
// exec roots, socket, cgroup parent, no bridge and no firewall rules.
package docker_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
)

// daemon is a private dockerd whose runtime is berth-runtime.
type daemon struct {
	*dockerd.Daemon
	t       *testing.T
	parent  string                   // cgroup parent of every container
	runtime *testutil.RuntimeWrapper // logs berth-runtime's invocations
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	w := testutil.NewRuntimeWrapper(t, t.TempDir())
	parent := "/" + testutil.UniqueName(t)
	d := &daemon{t: t, parent: parent, runtime: w, Daemon: dockerd.Start(t, dockerd.Options{
		CgroupParent: parent, Runtimes: map[string]string{"berth": w.Path}, DefaultRuntime: "berth",
	})}
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", testutil.BusyboxRootfsShared(t), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar rootfs: %v: %s", err, out)
	}
	d.must("import", tarball, "berth-busybox:test")
	return d
}

func (d *daemon) docker(args ...string) (string, error) { return d.Docker(args...) }

func (d *daemon) must(args ...string) string {
	d.t.Helper()
	return d.Must(d.t, args...)
}

func exitCode(err error) int {
	if e, ok := err.(*exec.ExitError); ok {
		return e.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

func TestDockerRun(t *testing.T) {
	d := startDaemon(t)
	out, err := d.docker("run", "--rm", "--network", "none", "berth-busybox:test", "sh", "-c", "echo hello-from-berth; exit 3")
	if !strings.Contains(out, "hello-from-berth") || exitCode(err) != 3 {
		t.Fatalf("docker run: %v, output %q (want hello-from-berth, exit 3)", err, out)
	}
	d.runtime.RequireCalls(t, "create", "start", "delete")
}

func TestDockerLifecycle(t *testing.T) {
	d := startDaemon(t)
	d.must("run", "-d", "--name", "c1", "--network", "none", "berth-busybox:test", "sh", "-c", "echo started; exec sleep 1000")
	if out := d.must("exec", "c1", "sh", "-c", "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '"); !strings.Contains(out, "in-exec") || !strings.Contains(out, "sleep 1000") {
		t.Errorf("exec output %q", out)
	}
	if _, err := d.docker("exec", "c1", "sh", "-c", "exit 4"); exitCode(err) != 4 {
		t.Errorf("exec exit code: %v (want 4)", err)
	}
	if out := d.must("logs", "c1"); !strings.Contains(out, "started") {
		t.Errorf("logs %q", out)
	}
	d.must("pause", "c1")
	if st := strings.TrimSpace(d.must("inspect", "-f", "{{.State.Status}}", "c1")); st != "paused" {
		t.Errorf("after pause: %q", st)
	}
	d.must("unpause", "c1")
	// docker update goes through the runtime's `update`.
	d.must("update", "--memory", "64m", "--memory-swap", "64m", "c1")
	id := strings.TrimSpace(d.must("inspect", "-f", "{{.Id}}", "c1"))
	limit, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", d.parent, id, "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(limit)) != strconv.Itoa(64<<20) {
		t.Errorf("memory limit after docker update: %q, %v", limit, err)
	}
	if out := d.must("stats", "--no-stream", "--format", "{{.MemUsage}}", "c1"); !strings.Contains(out, "64MiB") {
		t.Errorf("stats %q", out)
	}
	d.must("stop", "-t", "1", "c1")
	if st := strings.TrimSpace(d.must("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "c1")); st != "exited 137" {
		t.Errorf("after stop: %q", st)
	}
	d.must("rm", "c1")
	if out := d.must("run", "--rm", "-t", "--network", "none", "berth-busybox:test", "tty"); !strings.Contains(out, "/dev/pts/") {
		t.Errorf("run -t: %q", out)
	}
	d.runtime.RequireCalls(t, "create", "start", "exec", "pause", "resume", "update", "kill", "delete")
}
