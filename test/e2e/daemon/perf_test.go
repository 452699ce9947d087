package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rootMountOptions picks the options of the container's root (overlay)
// mount out of its /proc/mounts.
func rootMountOptions(t *testing.T, mounts string) []string {
	t.Helper()
	for _, l := range strings.Split(mounts, "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[1] == "/" && f[2] == "overlay" {
			return strings.Split(f[3], ",")
		}
	}
	t.Fatalf("no overlay root mount in:\n%s", mounts)
	return nil
}

// volatile reports whether overlay options say "volatile" (newer kernels
// show it as fsync=volatile).
func volatile(opts []string) bool {
	for _, x := range opts {
		if x == "volatile" || x == "fsync=volatile" {
			return true
		}
	}
	return false
}

// TestRunRmVolatileRoot: a --rm container's writable layer is mounted
// "volatile" (its exit then unmounts without syncing the disk), a kept
// container's is not, and a --rm container still sees what it wrote.
func TestRunRmVolatileRoot(t *testing.T) {
	d := withBusybox(t)
	out, code := docker(t, d, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo kept > /f && cat /f && cat /proc/mounts")
	if code != 0 || !strings.HasPrefix(out, "kept\n") {
		t.Fatalf("run --rm: exit %d:\n%s", code, out)
	}
	if opts := rootMountOptions(t, out); !volatile(opts) {
		t.Errorf("--rm container's root options %v lack volatile", opts)
	}
	stdout, stderr, code := d.Berth(t, "", "run", "--rm", "--network", "none", "busybox", "cat", "/proc/mounts")
	if code != 0 {
		t.Fatalf("berth run --rm: exit %d: %s", code, stderr)
	}
	if opts := rootMountOptions(t, stdout); !volatile(opts) {
		t.Errorf("berth run --rm: root options %v lack volatile", opts)
	}
	out, code = docker(t, d, "run", "--name", "kept", "--network", "none", "busybox", "cat", "/proc/mounts")
	if code != 0 {
		t.Fatalf("run: exit %d:\n%s", code, out)
	}
	if opts := rootMountOptions(t, out); volatile(opts) {
		t.Errorf("a container without --rm has a volatile root: %v", opts)
	}
	d.Must(t, "rm", "kept")
}

// TestRunDetachedConcurrent: `berth run -d` started many at once prints
// each container's id and nothing else (no wait left to be cancelled at
// exit), and every container is running when its run returns.
func TestRunDetachedConcurrent(t *testing.T) {
	d := withBusybox(t)
	const n = 12
	type result struct{ stdout, stderr string }
	res := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, e, code := d.Berth(t, "", "run", "-d", "--network", "none", "busybox", "sleep", "1000")
			if code != 0 {
				e += fmt.Sprintf(" (exit %d)", code)
			}
			res[i] = result{o, e}
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, r := range res {
		id := strings.TrimSpace(r.stdout)
		if len(id) != 64 || r.stderr != "" {
			t.Errorf("run -d #%d: stdout %q stderr %q", i, r.stdout, r.stderr)
			continue
		}
		ids[id] = true
	}
	running := d.Must(t, "ps", "-q", "--no-trunc", "--filter", "status=running")
	for _, id := range strings.Fields(running) {
		delete(ids, id)
	}
	if len(ids) != 0 {
		t.Errorf("not running after run -d returned: %v\nps:\n%s", ids, running)
	}
	d.Must(t, append([]string{"rm", "-f"}, strings.Fields(d.Must(t, "ps", "-aq"))...)...)
}

// TestStartFailureEndsEarlyShim: berthd starts a container's shim while
// it still makes the bundle; when that fails (joining the network of a
// container that is not running) the start fails as dockerd's does and
// the shim is gone with the bundle.
func TestStartFailureEndsEarlyShim(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "create", "--name", "idle", "busybox", "sleep", "100")
	d.Must(t, "create", "--name", "joiner", "--network", "container:idle", "busybox", "true")
	out, code := docker(t, d, "start", "joiner")
	if code == 0 || !strings.Contains(out, "non running container") {
		t.Fatalf("start joiner: exit %d: %s", code, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		shims := shimsUnder(t, d.ExecRoot)
		if len(shims) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shims left after the failed start: %v", shims)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ents, err := os.ReadDir(filepath.Join(d.ExecRoot, "containers")); err == nil && len(ents) != 0 {
		t.Errorf("bundles left after the failed start: %v", ents)
	}
	d.Must(t, "rm", "idle", "joiner")
}

// shimsUnder lists the berth-shim processes whose state dir is under root.
func shimsUnder(t *testing.T, root string) []string {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 2 && filepath.Base(args[0]) == "berth-shim" && strings.HasPrefix(args[1], root+"/") {
			out = append(out, p.Name()+" "+args[1])
		}
	}
	return out
}
