// Package podman_test proves that podman (through conmon) drives
// berth-runtime as its OCI runtime: run, detached containers, exec, logs,
// pause, stop, a terminal. podman runs with private storage, run and tmp
// directories and a per-test cgroup parent, so nothing of the host's
// podman state is touched and everything it creates is removed.
package podman_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/runtime/mountinfo"
)

// podman is one private podman setup.
type podman struct {
	t       *testing.T
	dir     string
	args    []string                 // global flags
	parent  string                   // cgroup parent of every container
	runtime *testutil.RuntimeWrapper // logs berth-runtime's invocations
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("podman"); err != nil {
		if testutil.InCI() {
			t.Fatal("podman is not installed (make test installs it)")
		}
		t.Skip("podman is not installed")
	}
	testutil.LeakCheck(t)
	// podman refuses a runroot longer than 50 characters: t.TempDir's are.
	dir, err := os.MkdirTemp("", "bp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &podman{t: t, dir: dir, parent: "/" + testutil.UniqueName(t), runtime: testutil.NewRuntimeWrapper(t, dir)}
	p.args = []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--tmpdir", filepath.Join(dir, "tmp"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
		"--runtime", p.runtime.Path,
	}
	// podman keeps a blob cache and its network config dir at fixed host
	// paths whatever --root says, and conmon runs berth-runtime with its
	// default state root: remove them afterwards (after p.cleanup, which runs podman too) if we made them.
	for _, d := range []string{"/var/lib/containers", "/run/containers", "/run/berth-runtime"} {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	t.Cleanup(p.cleanup)
	// The image: testutil's busybox rootfs, imported offline.
	tarball := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", testutil.BusyboxRootfsShared(t), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar rootfs: %v: %s", err, out)
	}
	p.must("import", tarball, "localhost/berth-busybox:test")
	return p
}

// runFlags are what every container gets: no network (no netavark, no
// traffic), this test's cgroup parent, and rlimits this VM can grant (it
// lacks CAP_SYS_RESOURCE, so podman's default nofile of 1048576 fails with
// EPERM here, for runc too).
func (p *podman) runFlags() []string {
	return []string{"--network", "none", "--cgroup-parent", p.parent,
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"}
}

func (p *podman) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, p.args...), args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *podman) cleanup() {
	p.run("rm", "-af", "-t", "0")
	p.run("rmi", "-af")
	// podman leaves its per-container shm and storage mounts to a reset.
	if entries, err := mountinfo.Read(); err == nil {
		for _, mp := range mountinfo.Under(entries, p.dir) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	// The cgroup parent podman made, with conmon's and the containers' below.
	testutil.RemoveCgroupTree(p.parent)
}

func TestPodmanRun(t *testing.T) {
	p := newPodman(t)
	args := append(append([]string{"run", "--rm"}, p.runFlags()...), "localhost/berth-busybox:test",
		"sh", "-c", "echo hello-from-berth; hostname; exit 7")
	out, err := p.run(args...)
	var ee *exec.ExitError
	if !strings.Contains(out, "hello-from-berth") || !errorsAs(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("podman run: %v, output %q (want hello-from-berth and exit 7)", err, out)
	}
	p.runtime.RequireCalls(t, "create", "start", "delete")
}

func TestPodmanDetachedExecLogsPauseStop(t *testing.T) {
	p := newPodman(t)
	args := append(append([]string{"run", "-d", "--name", "c1"}, p.runFlags()...), "localhost/berth-busybox:test",
		"sh", "-c", "echo started; exec sleep 1000")
	p.must(args...)
	if out := p.must("exec", "c1", "sh", "-c", "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '"); !strings.Contains(out, "in-exec") || !strings.Contains(out, "sleep 1000") {
		t.Errorf("exec output %q", out)
	}
	_, err := p.run("exec", "c1", "sh", "-c", "exit 5")
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("exec exit code: %v (want 5)", err)
	}
	if out := p.must("logs", "c1"); !strings.Contains(out, "started") {
		t.Errorf("logs %q", out)
	}
	p.must("pause", "c1")
	if out := p.must("inspect", "--format", "{{.State.Status}}", "c1"); strings.TrimSpace(out) != "paused" {
		t.Errorf("after pause: status %q", out)
	}
	p.must("unpause", "c1")
	if out := p.must("top", "c1"); !strings.Contains(out, "sleep 1000") {
		t.Errorf("top %q", out)
	}
	p.must("stop", "-t", "1", "c1")
	if out := p.must("inspect", "--format", "{{.State.Status}}", "c1"); strings.TrimSpace(out) != "exited" {
		t.Errorf("after stop: status %q", out)
	}
	p.must("rm", "c1")
	p.runtime.RequireCalls(t, "create", "start", "exec", "pause", "resume", "kill", "delete")
}

func TestPodmanTerminal(t *testing.T) {
	p := newPodman(t)
	args := append(append([]string{"run", "--rm", "-t"}, p.runFlags()...), "localhost/berth-busybox:test",
		"sh", "-c", "tty; echo tty-ok")
	out := p.must(args...)
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "tty-ok") {
		t.Errorf("run -t output %q", out)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	if e, ok := err.(*exec.ExitError); ok {
		*target = e
		return true
	}
	return false
}
