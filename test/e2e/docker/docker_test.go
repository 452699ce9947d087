// Package docker_test proves that dockerd drives berth-runtime as a
// registered runtime (`dockerd --add-runtime berth=...`, `docker run
// --runtime berth`): through its own containerd and containerd's runc
// shim, like `ctr --runc-binary`. The daemon is private: its own data and
// exec roots, socket, cgroup parent, no bridge and no firewall rules.
package docker_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/runtime/mountinfo"
)

// daemon is one private dockerd and the docker CLI pointed at it.
type daemon struct {
	t       *testing.T
	dir     string
	sock    string
	parent  string                   // cgroup parent of every container
	runtime *testutil.RuntimeWrapper // logs berth-runtime's invocations
	cmd     *exec.Cmd
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	testutil.RequireRoot(t)
	for _, bin := range []string{"dockerd", "docker"} {
		if _, err := exec.LookPath(bin); err != nil {
			if testutil.InCI() {
				t.Fatalf("%s is not installed (make test installs docker.io)", bin)
			}
			t.Skipf("%s is not installed", bin)
		}
	}
	testutil.LeakCheck(t)
	// Unix socket paths are short: t.TempDir's are long.
	dir, err := os.MkdirTemp("", "bd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// dockerd writes these whatever its roots are: remove them afterwards
	// (after the daemon stopped) if the test made them.
	for _, p := range []string{"/run/docker", "/run/containerd", "/etc/docker/key.json"} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			t.Cleanup(func() { os.RemoveAll(p) })
		}
	}
	d := &daemon{t: t, dir: dir, sock: filepath.Join(dir, "docker.sock"), parent: "/" + testutil.UniqueName(t), runtime: testutil.NewRuntimeWrapper(t, dir)}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("dockerd",
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "e"),
		"--host", "unix://"+d.sock, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--storage-driver", "vfs", "--exec-opt", "native.cgroupdriver=cgroupfs",
		"--cgroup-parent", d.parent, "--add-runtime", "berth="+d.runtime.Path, "--default-runtime", "berth")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	t.Cleanup(d.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := d.docker("version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd did not come up:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tarball := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", testutil.BusyboxRootfsShared(t), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar rootfs: %v: %s", err, out)
	}
	d.must("import", tarball, "berth-busybox:test")
	return d
}

func (d *daemon) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + d.sock}, args...)...).CombinedOutput()
	return string(out), err
}

func (d *daemon) must(args ...string) string {
	d.t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// stop ends dockerd (which stops its containerd and shims) by PID, then
// removes what it left: mounts under its roots and its cgroup parent.
func (d *daemon) stop() {
	if out, _ := d.docker("ps", "-aq"); strings.TrimSpace(out) != "" {
		d.docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	if entries, err := mountinfo.Read(); err == nil {
		for _, mp := range mountinfo.Under(entries, d.dir) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	testutil.RemoveCgroupTree(d.parent)
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
