package e2eruntime

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestRelativeBindSource: a bind source relative to the bundle, and a
// create run from inside the bundle without --bundle.
func TestRelativeBindSource(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, withMount(specs.Mount{Destination: "/data", Type: "bind", Source: "data", Options: []string{"bind", "ro"}}),
		sh("cat /data/f"))
	os.MkdirAll(filepath.Join(b.Dir, "data"), 0o755)
	os.WriteFile(filepath.Join(b.Dir, "data", "f"), []byte("relative-to-bundle\n"), 0o644)
	id := testutil.UniqueName(t)
	cmd := rt.Command(t.Context(), "run", id)
	cmd.Dir = b.Dir
	out, err := cmd.Output()
	if err != nil || string(out) != "relative-to-bundle\n" {
		t.Errorf("run in the bundle dir: %q %v %s", out, err, errText(err))
	}
	// Same bundle from elsewhere: the source is still the bundle's.
	out2, errOut, code := runBundle(t, rt, b)
	if code != 0 || out2 != "relative-to-bundle\n" {
		t.Errorf("run --bundle from another dir: exit %d %q %q", code, out2, errOut)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, sh("trap 'exit 42' TERM; echo ready; sleep 1000 & wait"))
	id := testutil.UniqueName(t)
	cmd := rt.Command(t.Context(), "run", "--bundle", b.Dir, id)
	outPath := filepath.Join(t.TempDir(), "out")
	f, _ := os.Create(outPath)
	defer f.Close()
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(outPath); strings.Contains(string(b), "ready") {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("container never got ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(err); code != 42 {
			t.Errorf("run exit %d (%v), want 42 from the container's TERM trap", code, err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("run did not exit after SIGTERM")
	}
}

func TestExecEnvOverride(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt, testutil.WithEnv("FOO=from-config"))
	// env prints the environment as execve got it: one entry per name.
	out := execOut(t, rt, "--env", "FOO=from-exec", "--env", "TERM=dumb", id, "env")
	var foo, term []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FOO=") {
			foo = append(foo, l)
		}
		if strings.HasPrefix(l, "TERM=") {
			term = append(term, l)
		}
	}
	if len(foo) != 1 || foo[0] != "FOO=from-exec" || len(term) != 1 || term[0] != "TERM=dumb" {
		t.Errorf("exec --env did not replace: FOO %q TERM %q", foo, term)
	}
}

func TestExecUserNamespace(t *testing.T) {
	rt := newRuntime(t)
	const hostID = 200000
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithNamespaces("pid", "network", "ipc", "uts", "mount", "user", "cgroup"), testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
	}))
	chownTree(t, b.Rootfs, hostID, hostID)
	openParents(t, b.Rootfs)
	id := testutil.UniqueName(t)
	rt.MustRun("create", "--bundle", b.Dir, id)
	rt.MustRun("start", id)
	pid := initPid(t, rt, id)
	out := execOut(t, rt, id, "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/self/ns/cgroup; cat /proc/self/cgroup | head -1")
	lines := strings.Split(out, "\n")
	userNS, _ := os.Readlink("/proc/" + itoa(pid) + "/ns/user")
	cgNS, _ := os.Readlink("/proc/" + itoa(pid) + "/ns/cgroup")
	if len(lines) < 5 || lines[0] != "0" || !strings.Contains(lines[1], "200000") || lines[2] != userNS || lines[3] != cgNS {
		t.Errorf("exec in user ns: %q (init user %s cgroup %s)", out, userNS, cgNS)
	}
	// In its own cgroup namespace the container's cgroup is the root.
	if len(lines) >= 5 && !strings.HasSuffix(lines[4], ":/") {
		t.Errorf("cgroup namespace: %q", lines[4])
	}
}

func TestRunHooks(t *testing.T) {
	rt := newRuntime(t)
	logDir := t.TempDir()
	hook := filepath.Join(t.TempDir(), "hook.sh")
	writeHook(t, hook)
	h := func(name string) []specs.Hook {
		return []specs.Hook{{Path: hook, Args: []string{"hook.sh", name, logDir}, Env: []string{"PATH=/usr/bin:/bin"}}}
	}
	out := mustRunContainer(t, rt, sh("echo body"), testutil.WithSpec(func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Prestart: h("prestart"), Poststart: h("poststart"), Poststop: h("poststop")}
	}))
	if out != "body\n" {
		t.Errorf("stdout %q", out)
	}
	got, _ := os.ReadFile(filepath.Join(logDir, "order"))
	if strings.Join(strings.Fields(string(got)), ",") != "prestart,poststart,poststop" {
		t.Errorf("run hooks: %q", got)
	}
}

func TestExecPreserveFds(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("exec-fd-3\n"), 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	cmd := rt.Command(t.Context(), "exec", "--preserve-fds", "1", id, "sh", "-c", "cat <&3")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.Output()
	if err != nil || string(out) != "exec-fd-3\n" {
		t.Errorf("exec --preserve-fds: %q %v %s", out, err, errText(err))
	}
}

func TestKillCreated(t *testing.T) {
	rt := newRuntime(t)
	id, b := createContainer(t, rt)
	rt.MustRun("kill", id, "KILL")
	waitStatus(t, rt, id, "stopped")
	if _, _, err := rt.Run("start", id); err == nil {
		t.Error("start of a killed container succeeded")
	}
	rt.MustRun("delete", id)
	assertNothingLeft(t, rt, id, b.Spec.Linux.CgroupsPath, b.Dir)
}

func TestEventsStatsStopped(t *testing.T) {
	rt := newRuntime(t)
	id, _ := createContainer(t, rt, testutil.WithArgs("true"))
	rt.MustRun("start", id)
	waitStatus(t, rt, id, "stopped")
	if _, errOut, err := rt.Run("events", "--stats", id); err == nil || !strings.Contains(errOut, "stopped") {
		t.Errorf("events --stats of a stopped container: %v %q", err, errOut)
	}
	if _, errOut, err := rt.Run("ps", id); err == nil || !strings.Contains(errOut, "stopped") {
		t.Errorf("ps of a stopped container: %v %q", err, errOut)
	}
	var entries []struct{ Status string }
	_ = entries
	if out := rt.MustRun("list"); !strings.Contains(out, "stopped") {
		t.Errorf("list: %q", out)
	}
}

// TestHomeFromPasswd: without HOME in the environment the process gets
// its user's home from the container's /etc/passwd (or "/"), as with runc;
// a HOME in the config is kept.
func TestHomeFromPasswd(t *testing.T) {
	rt := newRuntime(t)
	cases := []struct {
		uid  uint32
		env  string
		want string
	}{{1000, "", "/home/user"}, {0, "", "/root"}, {4242, "", "/"}, {1000, "HOME=/custom", "/custom"}}
	for _, c := range cases {
		opts := []testutil.Option{testutil.WithUser(c.uid, c.uid), sh("echo $HOME")}
		if c.env != "" {
			opts = append(opts, testutil.WithEnv(c.env))
		}
		if out := mustRunContainer(t, rt, opts...); out != c.want+"\n" {
			t.Errorf("uid %d env %q: HOME %q, want %q", c.uid, c.env, out, c.want)
		}
	}
	id, _ := startContainer(t, rt)
	if out := execOut(t, rt, "--user", "1000", id, "sh", "-c", "echo $HOME"); out != "/home/user\n" {
		t.Errorf("exec --user 1000: HOME %q", out)
	}
}
