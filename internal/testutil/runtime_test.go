package testutil

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// runHello runs `echo hello` and a look at the walls in a default bundle
// with rt, proving the default spec is one real runtimes accept.
func runHello(t *testing.T, rt *Runtime) {
	b := NewBundle(t,
		WithArgs("/bin/sh", "-c", "echo hello; hostname; id -u; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"),
		WithHostname("berth-test"),
		WithMemoryLimit(64<<20),
		WithPidsLimit(32),
		WithUser(1000, 1000),
	)
	id := UniqueName(t)
	out, _, err := rt.Run("run", "--bundle", b.Dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello\nberth-test\n1000\n32\n"; out != want {
		t.Fatalf("%s printed %q, want %q", rt.Binary, out, want)
	}
	if ids, err := rt.List(); err != nil || len(ids) != 0 {
		t.Fatalf("after run: list %v, %v", ids, err)
	}
}

func TestDefaultBundleRunsWithRunc(t *testing.T) {
	RequireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed")
	}
	LeakCheck(t)
	runHello(t, RuntimeFor(t, "runc"))
}

func TestDefaultBundleRunsWithCrun(t *testing.T) {
	RequireRoot(t)
	if _, err := exec.LookPath("crun"); err != nil {
		t.Skip("crun not installed")
	}
	LeakCheck(t)
	runHello(t, RequireCrun(t))
}

func TestRuntimeLifecycleWithRunc(t *testing.T) {
	RequireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed")
	}
	LeakCheck(t)
	rt := RuntimeFor(t, "runc")
	b := NewBundle(t, WithArgs("sleep", "1000"))
	id := UniqueName(t)
	rt.MustRun("create", "--bundle", b.Dir, id)
	if s, err := rt.State(id); err != nil || s.Status != "created" || s.Pid == 0 {
		t.Fatalf("state after create: %+v, %v", s, err)
	}
	rt.MustRun("start", id)
	if err := rt.WaitStatus(id, "running", 5e9); err != nil {
		t.Fatal(err)
	}
	if out := rt.MustRun("exec", id, "echo", "in"); strings.TrimSpace(out) != "in" {
		t.Fatalf("exec printed %q", out)
	}
	rt.MustRun("kill", id, "KILL")
	if err := rt.WaitStatus(id, "stopped", 5e9); err != nil {
		t.Fatal(err)
	}
	rt.MustRun("delete", id)
}

func TestLeakCheckFindsLeakedContainer(t *testing.T) {
	RequireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed")
	}
	dirs := t.TempDir()
	snap, err := fixture.TakeLeakSnapshot(fixture.LeakScope{Marker: Marker(t), Dirs: []string{filepath.Dir(dirs)}})
	if err != nil {
		t.Fatal(err)
	}
	rt := &fixture.Runner{Binary: "runc", Root: StateRoot(t)}
	b := NewBundle(t, WithArgs("sleep", "1000"), WithPidsLimit(8))
	id := UniqueName(t)
	if _, _, err := rt.Run("run", "-d", "--bundle", b.Dir, id); err != nil {
		t.Fatal(err)
	}
	leaks, err := snap.Check()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range leaks {
		kinds = append(kinds, l.Kind)
	}
	if err := fixture.Clean(leaks); err != nil {
		t.Error(err)
	}
	_ = rt.Cleanup()
	if !slices.Contains(kinds, "process") || !slices.Contains(kinds, "cgroup") {
		t.Fatalf("leaked container gave leaks %v", leaks)
	}
	if left, err := snap.Check(); err != nil || len(left) != 0 {
		t.Fatalf("after Clean: %v, %v", left, err)
	}
}
