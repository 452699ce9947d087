// Package dockerd runs private Docker daemons for tests and benchmarks:
// their own data and exec roots and socket, no bridge, no firewall rules,
// an optional cgroup parent and extra runtimes. Stop leaves nothing: not
// the daemon, its containers and shims, its mounts, its cgroups, nor the
// fixed host paths dockerd writes whatever its roots are.
package dockerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/runtime/mountinfo"
)

// Options configure a daemon.
type Options struct {
	// StorageDriver defaults to vfs (no mounts per layer).
	StorageDriver string
	// CgroupParent is the cgroup of every container ("/name"); removed on Stop.
	CgroupParent string
	// Runtimes are registered with --add-runtime name=path.
	Runtimes map[string]string
	// DefaultRuntime, if set, is --default-runtime.
	DefaultRuntime string
	// Args are more dockerd flags.
	Args []string
}

// Daemon is a running private dockerd.
type Daemon struct {
	// Dir holds the daemon's roots, socket and log.
	Dir string
	// Host is the -H value for the docker CLI.
	Host    string
	opts    Options
	cmd     *exec.Cmd
	created []string
}

// hostPaths are written by dockerd whatever its roots are.
var hostPaths = []string{"/run/docker", "/run/containerd", "/etc/docker/key.json"}

// PID is dockerd's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Launch starts a daemon and waits until it answers.
func Launch(opts Options) (*Daemon, error) {
	if opts.StorageDriver == "" {
		opts.StorageDriver = "vfs"
	}
	// The exec root holds containerd's sockets: unix socket paths are short.
	dir, err := os.MkdirTemp("", "bd")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), opts: opts}
	for _, p := range hostPaths {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			d.created = append(d.created, p)
		}
	}
	logPath := filepath.Join(dir, "dockerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	args := []string{
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "e"),
		"--host", d.Host, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--storage-driver", opts.StorageDriver, "--exec-opt", "native.cgroupdriver=cgroupfs",
	}
	if opts.CgroupParent != "" {
		args = append(args, "--cgroup-parent", opts.CgroupParent)
	}
	for name, path := range opts.Runtimes {
		args = append(args, "--add-runtime", name+"="+path)
	}
	if opts.DefaultRuntime != "" {
		args = append(args, "--default-runtime", opts.DefaultRuntime)
	}
	d.cmd = exec.Command("dockerd", append(args, opts.Args...)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := d.Docker("version"); err == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			d.Stop()
			return nil, fmt.Errorf("dockerd did not come up:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Start is Launch for a test: it skips when dockerd is missing outside CI
// (fails in CI or as root, where make test installs docker.io) and stops
// the daemon at cleanup.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	for _, bin := range []string{"dockerd", "docker"} {
		if _, err := exec.LookPath(bin); err != nil {
			if testutil.InCI() || os.Geteuid() == 0 {
				t.Fatalf("%s is not installed (make test installs docker.io)", bin)
			}
			t.Skipf("%s is not installed", bin)
		}
	}
	d, err := Launch(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	return d
}

// Docker runs the docker CLI against the daemon.
func (d *Daemon) Docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", d.Host}, args...)...).CombinedOutput()
	return string(out), err
}

// Must is Docker that fails t on error.
func (d *Daemon) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.Docker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Stop removes the daemon's containers, ends it by PID (it stops its
// containerd and shims), then removes what it left behind.
func (d *Daemon) Stop() error {
	if out, _ := d.Docker("ps", "-aq"); strings.TrimSpace(out) != "" {
		d.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
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
		for _, mp := range mountinfo.Under(entries, d.Dir) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	if d.opts.CgroupParent != "" {
		testutil.RemoveCgroupTree(d.opts.CgroupParent)
	}
	for _, p := range d.created {
		os.RemoveAll(p)
	}
	return os.RemoveAll(d.Dir)
}
