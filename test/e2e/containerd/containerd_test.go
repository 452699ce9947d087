// Package containerd_test proves that a real runc consumer, containerd
// 1.6 with its io.containerd.runc.v2 shim driven by ctr, runs containers
// with berth-runtime in runc's place.
package containerd_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/fixture"
)

const imageName = "docker.io/berth-test/busybox:latest"

// env is one test's containerd, image and berth-runtime wrapper.
type env struct {
	*daemon
	wrapper  string // --runc-binary: logs argv, then execs berth-runtime
	argvLog  string // one line per berth-runtime invocation: "runc-binary|path ARGS"
	runcRoot string // --runc-root: berth-runtime's --root
	fifoDir  string // ctr's stdio fifos, instead of /run/containerd/fifo
}

func setup(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found (make test installs Debian's containerd): %v", bin, err)
		}
	}
	runtimeBin, err := fixture.BerthRuntimePath()
	if err != nil {
		t.Fatalf("berth-runtime: %v (run make build)", err)
	}
	if runtimeBin, err = filepath.Abs(runtimeBin); err != nil {
		t.Fatal(err)
	}
	testutil.LeakCheck(t)

	dir := t.TempDir()
	e := &env{
		wrapper:  filepath.Join(dir, "berth-runtime-wrapper"),
		argvLog:  filepath.Join(dir, "argv.log"),
		runcRoot: filepath.Join(dir, "runc-root"),
		fifoDir:  filepath.Join(dir, "fifo"),
	}
	// Two wrappers log each invocation and exec berth-runtime: the one
	// passed as --runc-binary, and a "runc" first on containerd's PATH. Some
	// ctr flags (--no-pivot, --uidmap) replace the task's runtime options and
	// drop --runc-binary, and the shim then runs plain "runc": that must be
	// berth-runtime too, never the host's runc.
	pathDir := filepath.Join(dir, "path")
	if err := os.MkdirAll(pathDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, via := range map[string]string{e.wrapper: "runc-binary", filepath.Join(pathDir, "runc"): "path"} {
		script := fmt.Sprintf("#!/bin/sh\nprintf '%%s %%s\\n' %s \"$*\" >> %q\nexec %q \"$@\"\n", via, e.argvLog, runtimeBin)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{e.runcRoot, e.fifoDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// The namespace carries the test's marker: ctr's default cgroupsPath
	// is /<namespace>/<id>, so LeakCheck attributes those cgroups to us.
	e.daemon = startDaemon(t, testutil.Marker(t), pathDir)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(e.argvLog)
			t.Logf("berth-runtime invocations:\n%s", b)
		}
	})

	archive := filepath.Join(dir, "busybox-oci.tar")
	if err := writeOCIArchive(archive, testutil.BusyboxRootfsShared(t), imageName); err != nil {
		t.Fatalf("write image archive: %v", err)
	}
	e.mustCtr("images", "import", "--all-platforms", "--snapshotter", "overlayfs", archive)
	if ls := e.mustCtr("images", "ls", "-q"); !strings.Contains(ls, imageName) {
		t.Fatalf("ctr images ls does not list %s after import:\n%s", imageName, ls)
	}
	return e
}

// runArgs are the ctr run flags that put berth-runtime in runc's place.
func (e *env) runArgs(extra ...string) []string {
	args := []string{"run", "--runtime", "io.containerd.runc.v2", "--runc-binary", e.wrapper,
		"--runc-root", e.runcRoot, "--snapshotter", "overlayfs", "--fifo-dir", e.fifoDir}
	return append(args, extra...)
}

// invocations returns the berth-runtime argv lines logged so far that
// mention id.
func (e *env) invocations(t *testing.T, id string) []string {
	b, err := os.ReadFile(e.argvLog)
	if err != nil {
		t.Fatalf("berth-runtime was never invoked: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, id) {
			out = append(out, l)
		}
	}
	return out
}

// requireCommands fails unless berth-runtime, called through --runc-binary,
// saw each command for id.
func (e *env) requireCommands(t *testing.T, id string, cmds ...string) {
	t.Helper()
	lines := e.invocations(t, id)
	for _, c := range cmds {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, "runc-binary ") && strings.Contains(" "+l+" ", " "+c+" ") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("berth-runtime never ran %q for %s; it saw:\n%s", c, id, strings.Join(lines, "\n"))
		}
	}
}

func TestCtrRunRm(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	args := e.runArgs("--rm", imageName, id, "sh", "-c", "echo hello-from-berth; exit 7")
	r := e.ctr(60*time.Second, args...)
	if r.err != nil && r.code <= 0 {
		t.Fatalf("%s\ncontainerd log:\n%s", r, e.logTail())
	}
	if r.code != 7 {
		t.Errorf("exit code %d, want 7\n%s\ncontainerd log:\n%s", r.code, r, e.logTail())
	}
	if !strings.Contains(r.stdout, "hello-from-berth") {
		t.Errorf("output %q does not contain hello-from-berth\n%s", r.stdout, r)
	}
	e.requireCommands(t, id, "create", "start", "delete")
	if ls := e.mustCtr("containers", "ls", "-q"); strings.Contains(ls, id) {
		t.Errorf("--rm left container %s:\n%s", id, ls)
	}
}

func TestCtrDetachedTask(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	e.mustCtr(e.runArgs("-d", imageName, id, "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done")...)

	// berth-runtime, not runc, holds the container's state: its
	// state.json has berth's init_pid (runc's has init_process_pid).
	if b, err := os.ReadFile(filepath.Join(e.runcRoot, e.ns, id, "state.json")); err != nil {
		t.Errorf("no berth-runtime state under --runc-root: %v", err)
	} else if !strings.Contains(string(b), `"init_pid":`) {
		t.Errorf("state under --runc-root is not berth-runtime's: %.200s", b)
	}
	waitTaskStatus(t, e, id, "RUNNING")

	out := e.mustCtr("task", "exec", "--exec-id", "x1", "--fifo-dir", e.fifoDir, id, "echo", "hi")
	if strings.TrimSpace(out) != "hi" {
		t.Errorf("task exec output %q, want hi", out)
	}
	r := e.ctr(30*time.Second, "task", "exec", "--exec-id", "x2", "--fifo-dir", e.fifoDir, id, "sh", "-c", "exit 3")
	if r.code != 3 {
		t.Errorf("task exec exit 3: got %s", r)
	}

	ps := e.mustCtr("task", "ps", id)
	if len(strings.Split(strings.TrimSpace(ps), "\n")) < 2 {
		t.Errorf("task ps lists no process:\n%s", ps)
	}

	e.mustCtr("task", "pause", id)
	waitTaskStatus(t, e, id, "PAUSED")
	e.mustCtr("task", "resume", id)
	waitTaskStatus(t, e, id, "RUNNING")

	e.mustCtr("task", "kill", id) // SIGTERM: the trap exits 0
	waitTaskStatus(t, e, id, "STOPPED")
	e.mustCtr("task", "delete", id)
	e.mustCtr("containers", "delete", id)
	e.requireCommands(t, id, "create", "start", "exec", "ps", "pause", "resume", "kill", "delete")
	if _, err := os.Stat(filepath.Join(e.runcRoot, e.ns, id)); !os.IsNotExist(err) {
		t.Errorf("berth-runtime state for %s still there after task delete (%v)", id, err)
	}
}

// waitTaskStatus waits until ctr task ls shows id with status want.
func waitTaskStatus(t *testing.T, e *env, id, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = e.mustCtr("task", "ls")
		for _, l := range strings.Split(last, "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == id && f[2] == want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("task %s never reached %s; ctr task ls:\n%s\ncontainerd log:\n%s", id, want, last, e.logTail())
}

// ctr run copies its stdin into the container. (It never closes the
// container's stdin on EOF, with runc too, so the command reads a known
// number of lines instead of waiting for EOF.)
func TestCtrStdin(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	r := e.ctrInput(60*time.Second, "line-one\nline-two\n", e.runArgs("--rm", imageName, id, "sh", "-c", "head -n 2; echo done >&2")...)
	if r.code != 0 || r.err != nil {
		t.Fatalf("%s\ncontainerd log:\n%s", r, e.logTail())
	}
	if r.stdout != "line-one\nline-two\n" {
		t.Errorf("stdout %q, want the input back", r.stdout)
	}
	if strings.TrimSpace(r.stderr) != "done" {
		t.Errorf("stderr %q, want done", r.stderr)
	}
}

func TestCtrTTY(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	r := e.ctrTTY(60*time.Second, e.runArgs("--rm", "-t", imageName, id, "sh", "-c", "tty; test -t 0 && echo stdin-is-tty; exit 5")...)
	if r.code != 5 {
		t.Fatalf("exit %d, want 5\n%s\ncontainerd log:\n%s", r.code, r, e.logTail())
	}
	for _, want := range []string{"/dev/pts/0", "stdin-is-tty"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("tty output %q lacks %q", r.stdout, want)
		}
	}
	e.requireCommands(t, id, "--console-socket")

	// exec -t into a detached container.
	id2 := testutil.UniqueName(t)
	e.mustCtr(e.runArgs("-d", imageName, id2, "sleep", "1000")...)
	waitTaskStatus(t, e, id2, "RUNNING")
	r = e.ctrTTY(30*time.Second, "task", "exec", "-t", "--exec-id", "t1", "--fifo-dir", e.fifoDir, id2, "sh", "-c", "tty; exit 4")
	if r.code != 4 || !strings.Contains(r.stdout, "/dev/pts/") {
		t.Errorf("exec -t: want a /dev/pts tty and exit 4, got %s\ncontainerd log:\n%s", r, e.logTail())
	}
	e.mustCtr("task", "kill", "-s", "SIGKILL", id2)
	waitTaskStatus(t, e, id2, "STOPPED")
	e.mustCtr("task", "delete", id2)
	e.mustCtr("containers", "delete", id2)
}

// A failing create must reach the user with berth-runtime's own message:
// the shim reads it from the --log JSON file.
func TestCtrRuntimeError(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	r := e.ctr(60*time.Second, e.runArgs("--rm", imageName, id, "/no/such/binary")...)
	if r.code == 0 {
		t.Fatalf("running a missing binary succeeded: %s", r)
	}
	if !strings.Contains(r.stderr, "/no/such/binary") {
		t.Errorf("ctr's error does not carry berth-runtime's message about the binary:\n%s", r)
	}
	t.Logf("ctr reported: %s", strings.TrimSpace(r.stderr))

	// exec of a missing binary in a running container fails the same way.
	id2 := testutil.UniqueName(t)
	e.mustCtr(e.runArgs("-d", imageName, id2, "sleep", "1000")...)
	r = e.ctr(30*time.Second, "task", "exec", "--exec-id", "bad", "--fifo-dir", e.fifoDir, id2, "/no/such/exec")
	if r.code == 0 || !strings.Contains(r.stderr, "/no/such/exec") {
		t.Errorf("exec of a missing binary: want a failure naming it, got %s", r)
	}
	e.mustCtr("task", "kill", "--all", "-s", "SIGKILL", id2)
	waitTaskStatus(t, e, id2, "STOPPED")
	e.mustCtr("task", "delete", id2)
	e.mustCtr("containers", "delete", id2)
	e.requireCommands(t, id2, "kill --all")
}

func TestCtrMetrics(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	e.mustCtr(e.runArgs("-d", "--memory-limit", "67108864", imageName, id, "sleep", "1000")...)
	waitTaskStatus(t, e, id, "RUNNING")
	// The shim reads the cgroup berth-runtime made from the spec's
	// cgroupsPath; the limit shows there.
	out := e.mustCtr("task", "metrics", id)
	if !strings.Contains(out, "67108864") {
		t.Errorf("task metrics does not show the 64 MiB memory limit:\n%s", out)
	}
	e.mustCtr("task", "kill", "-s", "SIGKILL", id)
	waitTaskStatus(t, e, id, "STOPPED")
	e.mustCtr("task", "delete", id)
	e.mustCtr("containers", "delete", id)
}

// The spec containerd writes differs from ours (its own masked paths,
// devices, rlimits, cgroup mount); options from ctr's flags must hold
// inside the container.
func TestCtrSpecOptions(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "in"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"echo uid=$(id -u):$(id -g)",
		"echo env=$FOO",
		"echo cwd=$(pwd)",
		"cat /data/in",
		"touch /data/x 2>/dev/null || echo data-ro",
		"touch /x 2>/dev/null || echo rootfs-ro",
		"grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
		"ls /dev/null /dev/zero /dev/pts/ptmx /dev/shm >/dev/null && echo devs-ok",
		"cat /proc/kcore 2>&1 | head -c 0; test -s /proc/kcore || echo kcore-masked",
	}, "; ")
	r := e.ctr(60*time.Second, e.runArgs("--rm", "--read-only", "--seccomp", "--env", "FOO=bar",
		"--cwd", "/tmp",
		"--mount", "type=bind,src="+data+",dst=/data,options=rbind:ro",
		imageName, id, "sh", "-c", script)...)
	if r.code != 0 || r.err != nil {
		t.Fatalf("%s\ncontainerd log:\n%s", r, e.logTail())
	}
	t.Logf("inside:\n%s", r.stdout)
	for _, want := range []string{"env=bar", "cwd=/tmp", "from-host", "data-ro", "rootfs-ro",
		"Seccomp:\t2", "NoNewPrivs:\t1", "devs-ok", "kcore-masked"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inside the container: no %q in\n%s", want, r.stdout)
		}
	}
}

// ctr run --uidmap/--gidmap (containerd chowns a copy of the snapshot) and
// --no-pivot. Both make ctr replace the task's runtime options, dropping
// --runc-binary, so the shim runs "runc" from containerd's PATH: our
// second wrapper.
func TestCtrUserNamespace(t *testing.T) {
	e := setup(t)
	id := testutil.UniqueName(t)
	e.mustCtr(e.runArgs("-d", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", "--no-pivot",
		imageName, id, "sleep", "1000")...)
	waitTaskStatus(t, e, id, "RUNNING")
	out := e.mustCtr("task", "exec", "--exec-id", "u1", "--fifo-dir", e.fifoDir, id,
		"sh", "-c", "cat /proc/self/uid_map; id -u; touch /x && echo write-ok")
	if f := strings.Fields(out); len(f) < 5 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" || f[3] != "0" || f[4] != "write-ok" {
		t.Errorf("in the user namespace: got %q, want uid_map 0 100000 65536, uid 0, a writable rootfs", out)
	}
	e.mustCtr("task", "kill", "-s", "SIGKILL", id)
	waitTaskStatus(t, e, id, "STOPPED")
	e.mustCtr("task", "delete", id)
	e.mustCtr("containers", "delete", id)

	var sawCreate bool
	for _, l := range e.invocations(t, id) {
		if strings.HasPrefix(l, "path ") && strings.Contains(l, " create ") && strings.Contains(l, " --no-pivot ") {
			sawCreate = true
		}
	}
	if !sawCreate {
		t.Errorf("berth-runtime (as runc on PATH) never saw create --no-pivot for %s:\n%s", id, strings.Join(e.invocations(t, id), "\n"))
	}
}
