package daemon_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

// TestCrashAtRandomMoments kills berthd with SIGKILL at random moments
// of create, start, rm and pull, restarts it, and requires every time
// that it starts, that each container it lists is whole (inspectable; a
// running one takes an exec) and removable, and that once everything is
// removed no mount, shim or cgroup of its containers is left.
func TestCrashAtRandomMoments(t *testing.T) {
	cgroup := "/" + testutil.UniqueName(t) + "-crash"
	t.Cleanup(func() { testutil.RemoveCgroupTree(cgroup) })
	d := start(t, "--cgroup-parent", cgroup)
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	reg := registry.Start(t)
	reg.Push(t, images.Busybox(t).Layout, "crash/busybox:latest")
	pullRef := reg.Host + "/crash/busybox:latest"

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	ops := []struct {
		name string
		args func(i int) []string
	}{
		{"create", func(i int) []string {
			return []string{"create", "--name", fmt.Sprintf("c%d", i), "busybox", "sleep", "600"}
		}},
		{"run", func(i int) []string {
			return []string{"run", "-d", "--name", fmt.Sprintf("r%d", i), "busybox", "sleep", "600"}
		}},
		{"run --rm", func(i int) []string { return []string{"run", "--rm", "busybox", "true"} }},
		{"rm", func(i int) []string {
			ids := strings.Fields(d.Must(t, "ps", "-aq"))
			if len(ids) == 0 {
				return []string{"ps"}
			}
			return []string{"rm", "-f", ids[rng.IntN(len(ids))]}
		}},
		{"pull", func(i int) []string {
			d.Docker("rmi", "-f", pullRef)
			return []string{"pull", pullRef}
		}},
	}
	const rounds = 30
	for i := 0; i < rounds; i++ {
		op := ops[rng.IntN(len(ops))]
		args := op.args(i)
		done := make(chan struct{})
		go func() { d.Docker(args...); close(done) }()
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		d.Crash()
		<-done
		if err := d.Restart(); err != nil {
			t.Fatalf("round %d (%s, killed after %s): berthd does not start again: %v", i, op.name, delay, err)
		}
		checkWhole(t, d, fmt.Sprintf("round %d (%s, killed after %s)", i, op.name, delay))
	}
	// Remove everything: nothing of the containers may remain.
	if ids := strings.Fields(d.Must(t, "ps", "-aq")); len(ids) > 0 {
		d.Must(t, append([]string{"rm", "-f"}, ids...)...)
	}
	if out := d.Must(t, "ps", "-aq"); out != "" {
		t.Fatalf("containers left after rm -f: %q", out)
	}
	// The pulled image is whole too when it is listed.
	if out, _ := d.Docker("images", "-q", pullRef); strings.TrimSpace(out) != "" {
		d.Must(t, "run", "--rm", pullRef, "true")
	}
	leftovers(t, d, cgroup)
}

// checkWhole requires each container d lists to be inspectable, a
// running one to take an exec, and the daemon to run a new container.
func checkWhole(t *testing.T, d *berthd.Daemon, when string) {
	t.Helper()
	out, err := d.Docker("ps", "-a", "--format", "{{.ID}} {{.State}}")
	if err != nil {
		t.Fatalf("%s: ps after restart: %v\n%s\n%s", when, err, out, d.Log())
	}
	for _, l := range berthd.Lines(out) {
		id, state, _ := strings.Cut(l, " ")
		if o, err := d.Docker("inspect", "-f", "{{.State.Status}} {{.Config.Image}}", id); err != nil {
			t.Fatalf("%s: container %s (%s) cannot be inspected: %v\n%s", when, id, state, err, o)
		}
		if state == "running" {
			if o, err := d.Docker("exec", id, "true"); err != nil {
				t.Fatalf("%s: running container %s takes no exec: %v\n%s", when, id, err, o)
			}
		}
	}
	if o, err := d.Docker("run", "--rm", "busybox", "true"); err != nil {
		t.Fatalf("%s: run --rm after restart: %v\n%s", when, err, o)
	}
}

// leftovers fails t when a mount under d's directory, a process other
// than berthd naming its directory, or a container cgroup under cgroup is
// left.
func leftovers(t *testing.T, d *berthd.Daemon, cgroup string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, d.Dir) {
			t.Errorf("mount left: %s", l)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), d.Dir) {
			continue
		}
		if pid := filepath.Base(filepath.Dir(p)); pid != fmt.Sprint(d.PID()) {
			t.Errorf("process %s left: %s", pid, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	for _, ctl := range []string{"memory", "pids", "cpu,cpuacct", "freezer"} {
		entries, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", ctl, cgroup))
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("cgroup left: %s", filepath.Join(ctl, cgroup, e.Name()))
			}
		}
	}
}
