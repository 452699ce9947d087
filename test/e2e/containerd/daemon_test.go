package containerd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/mountinfo"
)

// daemon is a private containerd: its own root, state, sockets and
// namespace, nothing under /var/lib/containerd and no CRI plugin.
type daemon struct {
	t       *testing.T
	dir     string // everything containerd writes, except the shim sockets
	address string // gRPC socket
	ns      string // namespace every ctr call uses
	cmd     *exec.Cmd
	logPath string
	done    chan error

	hadRunContainerd bool // /run/containerd existed before we started
}

// Plugins that would touch the host outside our temp dir (/opt/containerd,
// the host network, kernel modules, devmapper pools) or that we do not
// need.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.internal.v1.opt",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
}

const configTemplate = `version = 2
root = %q
state = %q
disabled_plugins = [%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""
`

// startDaemon starts containerd, with pathDir first on its PATH, and waits
// for its socket. Its cleanup
// removes what is left in the namespace, stops containerd by pid, then
// kills any shim of this daemon by pid and detaches mounts under dir.
func startDaemon(t *testing.T, ns, pathDir string) *daemon {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir makes 0700 dirs; a container in a user namespace (ctr run
	// --uidmap) must be able to reach its rootfs below them.
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{t: t, dir: dir, address: filepath.Join(dir, "containerd.sock"), ns: ns,
		logPath: filepath.Join(dir, "containerd.log"), done: make(chan error, 1)}
	if _, err := os.Stat("/run/containerd"); err == nil {
		d.hadRunContainerd = true
	}
	quoted := make([]string, len(disabledPlugins))
	for i, p := range disabledPlugins {
		quoted[i] = strconv.Quote(p)
	}
	cfg := fmt.Sprintf(configTemplate, filepath.Join(dir, "root"), filepath.Join(dir, "state"),
		strings.Join(quoted, ", "), d.address, d.address+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("containerd", "--config", cfgPath)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.Env = append(os.Environ(), "PATH="+pathDir+":"+os.Getenv("PATH"))
	// Its own process group, so a ^C to the test does not hit it first;
	// and killed with the test binary if that dies.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start containerd: %v", err)
	}
	logf.Close()
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(d.cleanup)

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("unix", d.address)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("containerd exited early (%v):\n%s", err, d.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd socket %s did not appear in 20s:\n%s", d.address, d.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// log returns containerd's whole log.
func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// logTail returns the end of containerd's log, for failure messages.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// ctrResult is one ctr invocation's outcome.
type ctrResult struct {
	args           []string
	stdout, stderr string
	code           int
	err            error
}

func (r ctrResult) String() string {
	return fmt.Sprintf("ctr %s: exit %d (%v)\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.err, r.stdout, r.stderr)
}

// ctr runs ctr against this daemon and namespace with a timeout and no
// input.
func (d *daemon) ctr(timeout time.Duration, args ...string) ctrResult {
	return d.ctrInput(timeout, "", args...)
}

// ctrInput is ctr with stdin.
func (d *daemon) ctrInput(timeout time.Duration, stdin string, args ...string) ctrResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := d.ctrCommand(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctrResult{args: args, stdout: out.String(), stderr: errb.String(), err: err}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		r.code = ee.ExitCode()
	default:
		r.code = -1
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %s: %w", timeout, err)
		r.code = -1
	}
	return r
}

// ctrCommand is ctr against this daemon and namespace.
func (d *daemon) ctrCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ctr", append([]string{"-a", d.address, "-n", d.ns}, args...)...)
}

// mustCtr is ctr that fails the test unless ctr exits 0.
func (d *daemon) mustCtr(args ...string) string {
	d.t.Helper()
	r := d.ctr(30*time.Second, args...)
	if r.code != 0 || r.err != nil {
		d.t.Fatalf("%s\ncontainerd log:\n%s", r, d.logTail())
	}
	return r.stdout
}

// cleanup removes tasks and containers left in the namespace, stops
// containerd, then removes what survived it: shims, mounts, cgroups.
func (d *daemon) cleanup() {
	t := d.t
	if r := d.ctr(10*time.Second, "containers", "ls", "-q"); r.code == 0 {
		for _, id := range strings.Fields(r.stdout) {
			d.ctr(10*time.Second, "task", "kill", "-s", "SIGKILL", id)
			for i := 0; i < 50; i++ {
				if r := d.ctr(10*time.Second, "task", "delete", id); r.code == 0 || strings.Contains(r.stderr, "not found") {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			d.ctr(10*time.Second, "containers", "delete", id)
		}
	}
	// Shims exit on their own once their task is deleted.
	shims := d.waitShims(5 * time.Second)

	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Errorf("containerd (pid %d) ignored SIGTERM for 10s; killing it", d.cmd.Process.Pid)
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	for _, pid := range shims {
		t.Errorf("shim pid %d of this containerd still running after its tasks were deleted; killing it", pid)
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	for _, m := range mountsUnder(d.dir) {
		t.Errorf("mount %s left by containerd/shim/runtime; detaching it", m)
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	removeNamespaceCgroups(t, d.ns)
	if !d.hadRunContainerd {
		removeRunContainerd(d.ns)
	}
	// The shim reports what the runtime got wrong only as warnings.
	for _, l := range strings.Split(d.log(), "\n") {
		if strings.Contains(l, "failed to remove runc container") && strings.Contains(l, "does not exist") {
			t.Errorf("the shim's cleanup delete --force failed on an already deleted container:\n%s", l)
		}
	}
}

// waitShims waits up to timeout for this daemon's shims to exit and
// returns the pids of those still running. A shim is found by its command
// line, which names our daemon's socket.
func (d *daemon) waitShims(timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		pids := d.shimPids()
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *daemon) shimPids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == d.address {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// mountsUnder lists mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	entries, err := mountinfo.Read()
	if err != nil {
		return nil
	}
	return mountinfo.Under(entries, dir)
}

// removeNamespaceCgroups removes the cgroups ctr's default cgroupsPath
// (/<namespace>/<id>) made in every hierarchy, killing what is left in
// them (by pid) and failing the test if anything was.
func removeNamespaceCgroups(t *testing.T, ns string) {
	roots := []string{"/sys/fs/cgroup/" + ns}
	more, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	roots = append(roots, more...)
	for _, root := range roots {
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, dir := range dirs {
			if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil && len(bytes.TrimSpace(b)) > 0 {
				t.Errorf("processes left in cgroup %s: %s", dir, strings.Fields(string(b)))
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = unix.Kill(pid, unix.SIGKILL)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("remove cgroup %s: %v", dir, err)
			}
		}
	}
}

// removeRunContainerd removes the directories a containerd 1.6 shim makes
// under /run/containerd whatever the daemon's state dir, when they are
// empty: s (shim sockets) and runc/<ns> (the runtime root when a task's
// options name none).
func removeRunContainerd(ns string) {
	for _, d := range []string{"s", "runc/" + ns, "runc", ""} {
		_ = os.Remove(filepath.Join("/run/containerd", d))
	}
}
