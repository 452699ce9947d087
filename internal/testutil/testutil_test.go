package testutil

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

func TestBusyboxRootfsRunsShInChroot(t *testing.T) {
	RequireRoot(t)
	LeakCheck(t)
	root := BusyboxRootfs(t)
	out, err := exec.Command("chroot", root, "/bin/sh", "-c", "echo hi from $(id -u); ls /proc /sys /dev /tmp >/dev/null && echo dirs").CombinedOutput()
	if err != nil {
		t.Fatalf("chroot sh: %v: %s", err, out)
	}
	if got := string(out); got != "hi from 0\ndirs\n" {
		t.Fatalf("chroot sh printed %q", got)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"root:x:0:0:", ":1000:1000:", "nobody:x:65534:"} {
		if !strings.Contains(string(passwd), want) {
			t.Errorf("/etc/passwd lacks %q", want)
		}
	}
}

func TestBusyboxRootfsCopiesArePrivate(t *testing.T) {
	a, b := BusyboxRootfs(t), BusyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(a, "etc/hostname"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(b, "etc/hostname"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == "changed\n" {
		t.Fatal("a write to one copy showed in another")
	}
	shared := BusyboxRootfsShared(t)
	if got, _ := os.ReadFile(filepath.Join(shared, "etc/hostname")); string(got) != "berth\n" {
		t.Fatalf("shared rootfs hostname %q", got)
	}
	if target, err := os.Readlink(filepath.Join(b, "bin/sh")); err != nil || target != "/bin/busybox" {
		t.Fatalf("bin/sh -> %q, %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(a, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("tmp mode %v, %v", fi.Mode(), err)
	}
}

func TestNewBundleAppliesOptions(t *testing.T) {
	b := NewBundle(t,
		WithArgs("/bin/echo", "x"),
		WithEnv("FOO=bar", "TERM=dumb"),
		WithNamespaces(specs.PIDNamespace, specs.MountNamespace),
		WithMemoryLimit(64<<20),
		WithPidsLimit(10),
		WithUser(1000, 1000),
		WithSpec(func(s *specs.Spec) { s.Hostname = "h" }),
	)
	data, err := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Process.Args, " "); got != "/bin/echo x" {
		t.Errorf("args %q", got)
	}
	env := strings.Join(s.Process.Env, ",")
	if !strings.Contains(env, "FOO=bar") || !strings.Contains(env, "TERM=dumb") || strings.Contains(env, "TERM=xterm") {
		t.Errorf("env %q", env)
	}
	if len(s.Linux.Namespaces) != 2 || s.Linux.Namespaces[1].Type != specs.MountNamespace {
		t.Errorf("namespaces %v", s.Linux.Namespaces)
	}
	if *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.Pids.Limit != 10 {
		t.Errorf("resources %+v", s.Linux.Resources)
	}
	if s.Process.User.UID != 1000 || s.Hostname != "h" || s.Process.Terminal {
		t.Errorf("user %+v hostname %q terminal %v", s.Process.User, s.Hostname, s.Process.Terminal)
	}
	if !strings.HasPrefix(s.Linux.CgroupsPath, "/"+Marker(t)) {
		t.Errorf("cgroupsPath %q does not carry the test marker %q", s.Linux.CgroupsPath, Marker(t))
	}
	if _, err := os.Stat(filepath.Join(b.Rootfs, "bin/busybox")); err != nil {
		t.Error(err)
	}

	other := NewBundle(t, WithRootfs(b.Rootfs))
	if other.Spec.Root.Path != b.Rootfs {
		t.Errorf("WithRootfs: root.path %q", other.Spec.Root.Path)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName(t), UniqueName(t)
	if a == b || !strings.HasPrefix(a, Marker(t)) || !strings.HasPrefix(a, fixture.MarkerPrefix) {
		t.Fatalf("UniqueName gave %q and %q (marker %q)", a, b, Marker(t))
	}
}

// kinds lists the kinds of leaks, sorted.
func kinds(leaks []fixture.Leak) string {
	var k []string
	for _, l := range leaks {
		k = append(k, l.Kind)
	}
	return strings.Join(k, ",")
}

func TestLeakCheckFindsAndCleansLeaks(t *testing.T) {
	RequireRoot(t)
	dir := t.TempDir()
	marker := Marker(t)
	// No Names: only what carries this test's marker or lies in its dir, so
	// packages testing in parallel cannot disturb the count.
	snap, err := fixture.TakeLeakSnapshot(fixture.LeakScope{Marker: marker, Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if leaks, err := snap.Check(); err != nil || len(leaks) != 0 {
		t.Fatalf("fresh snapshot reports %v, %v", leaks, err)
	}

	// A tmpfs mount under the test's dir.
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })

	// A child process that nobody waits for.
	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })

	// A cgroup named with the marker, in the first v1 or v2 hierarchy we can write.
	var cg string
	for _, h := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if err := os.Mkdir(filepath.Join(h, marker), 0o755); err == nil {
			cg = filepath.Join(h, marker)
			break
		}
	}
	if cg == "" {
		t.Fatal("could not create a cgroup")
	}
	t.Cleanup(func() { _ = os.Remove(cg) })

	// A named netns entry (an empty file is enough to be listed).
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	ns := filepath.Join("/run/netns", marker)
	if err := os.WriteFile(ns, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(ns) })

	leaks, err := snap.Check()
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(leaks); got != "cgroup,mount,netns,process" {
		t.Fatalf("leaks %v (kinds %q), want one of each", leaks, got)
	}
	for _, l := range leaks {
		if l.Kind == "process" && !strings.HasPrefix(l.What, strconv.Itoa(sleeper.Process.Pid)+" ") {
			t.Errorf("process leak %q is not the sleeper %d", l.What, sleeper.Process.Pid)
		}
	}
	if err := fixture.Clean(leaks); err != nil {
		t.Fatal(err)
	}
	_ = sleeper.Wait() // reap the killed sleeper
	if leaks, err := snap.Check(); err != nil || len(leaks) != 0 {
		t.Fatalf("after Clean: %v, %v", leaks, err)
	}
}

func TestLeakCheckIgnoresOtherTestsAndNoise(t *testing.T) {
	RequireRoot(t)
	snap, err := fixture.TakeLeakSnapshot(fixture.LeakScope{Marker: Marker(t), Dirs: []string{t.TempDir()}, Names: []string{"berth"}})
	if err != nil {
		t.Fatal(err)
	}
	// Another test's cgroup, and a mount in an unrelated temp dir.
	other := filepath.Join("/sys/fs/cgroup/pids", fixture.MarkerPrefix+"someoneelse-1")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(other)
	unrelated, err := os.MkdirTemp("", "unrelated-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(unrelated)
	if err := unix.Mount("tmpfs", unrelated, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(unrelated, unix.MNT_DETACH)
	if leaks, err := snap.Check(); err != nil || len(leaks) != 0 {
		t.Fatalf("noise reported as leaks: %v, %v", leaks, err)
	}
}
