package e2eruntime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestLifecycleKillSignals(t *testing.T) {
	rt := newRuntime(t)
	for _, sig := range []string{"KILL", "SIGKILL", "9", ""} {
		t.Run("sig="+sig, func(t *testing.T) {
			// pid 1 of a pid namespace only gets the signals it handles.
			b := testutil.NewBundle(t, sh("trap 'exit 0' TERM; sleep 1000 & wait"))
			id := testutil.UniqueName(t)
			rt.MustRun("create", "--bundle", b.Dir, id)
			st := state(t, rt, id)
			if st["status"] != "created" {
				t.Fatalf("after create: status %v", st["status"])
			}
			if pid, _ := st["pid"].(float64); pid <= 0 {
				t.Fatalf("after create: pid %v", st["pid"])
			}
			if st["id"] != id || st["bundle"] != b.Dir {
				t.Errorf("state: id %v bundle %v", st["id"], st["bundle"])
			}
			rt.MustRun("start", id)
			if s := state(t, rt, id); s["status"] != "running" {
				t.Fatalf("after start: status %v", s["status"])
			}
			args := []string{"kill", id}
			if sig != "" {
				args = append(args, sig)
			}
			rt.MustRun(args...)
			waitStatus(t, rt, id, "stopped")
			rt.MustRun("delete", id)
			_, errOut, err := rt.Run("state", id)
			if err == nil || !strings.Contains(errOut, "does not exist") {
				t.Fatalf("state after delete: err %v stderr %q", err, errOut)
			}
			if stateDirExists(rt, id) {
				t.Errorf("state dir still there after delete")
			}
		})
	}
}

func TestStartTwiceFails(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	_, errOut, err := rt.Run("start", id)
	if err == nil {
		t.Fatal("second start succeeded")
	}
	wantContains(t, "stderr", errOut, "not created")
}

func TestList(t *testing.T) {
	rt := newRuntime(t)
	id1, b1 := createContainer(t, rt)
	id2, _ := startContainer(t, rt)

	out := rt.MustRun("list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list table: %q", out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		switch f[0] {
		case id1:
			if f[2] != "created" || f[3] != b1.Dir {
				t.Errorf("list row %q", l)
			}
		case id2:
			if f[2] != "running" {
				t.Errorf("list row %q", l)
			}
		default:
			t.Errorf("unexpected row %q", l)
		}
	}

	var entries []struct {
		ID     string `json:"id"`
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(rt.MustRun("list", "--format", "json")), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("list json: %+v", entries)
	}
	for _, e := range entries {
		if e.Pid <= 0 || (e.ID == id1 && e.Status != "created") || (e.ID == id2 && e.Status != "running") {
			t.Errorf("list json entry %+v", e)
		}
	}

	q := strings.Fields(rt.MustRun("list", "-q"))
	if len(q) != 2 || !(q[0] == id1 && q[1] == id2 || q[0] == id2 && q[1] == id1) {
		t.Errorf("list -q: %q", q)
	}
}

func TestListEmpty(t *testing.T) {
	rt := newRuntime(t)
	var entries []any
	out := rt.MustRun("list", "--format", "json")
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 0 {
		t.Errorf("list json on empty root: %q %v", out, err)
	}
}

func TestPs(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	pid := initPid(t, rt, id)

	var pids []int
	if err := json.Unmarshal([]byte(rt.MustRun("ps", "--format", "json", id)), &pids); err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] != pid {
		t.Errorf("ps json: %v, want [%d]", pids, pid)
	}
	out := rt.MustRun("ps", id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "PID") {
		t.Fatalf("ps table: %q", out)
	}
	found := false
	for _, f := range strings.Fields(lines[1]) {
		if f == strconv.Itoa(pid) {
			found = true
		}
	}
	if !found || !strings.Contains(lines[1], "sleep") {
		t.Errorf("ps table row %q lacks pid %d / sleep", lines[1], pid)
	}
}

func TestRunExitCodes(t *testing.T) {
	rt := newRuntime(t)
	// Without a pid namespace the shell is not an init, so the kernel's
	// default action for its own signals applies.
	noPidNS := testutil.WithNamespaces("network", "ipc", "uts", "mount")
	cases := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -KILL $$", 128 + 9},
		{"kill -TERM $$", 128 + 15},
	}
	for _, c := range cases {
		t.Run(c.script, func(t *testing.T) {
			out, errOut, code := runContainer(t, rt, noPidNS, sh(c.script))
			if code != c.want {
				t.Errorf("exit code %d, want %d (stdout %q stderr %q)", code, c.want, out, errOut)
			}
		})
	}
}

// TestRunKilledFromOutside: `run` reports 128+n for a container killed by
// `kill` from another invocation.
func TestRunKilledFromOutside(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := testutil.UniqueName(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := rt.Run("run", "--bundle", b.Dir, id)
		done <- err
	}()
	waitStatus(t, rt, id, "running")
	rt.MustRun("kill", id, "KILL")
	select {
	case err := <-done:
		if code := exitCode(err); code != 137 {
			t.Errorf("run exit %d (%v), want 137", code, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after kill")
	}
	if stateDirExists(rt, id) {
		t.Error("run left its state behind")
	}
}

func TestRunOutputAndCleanup(t *testing.T) {
	rt := newRuntime(t)
	out := mustRunContainer(t, rt, sh("echo hello; echo err >&2"))
	if out != "hello\n" {
		t.Errorf("stdout %q", out)
	}
	if ids, err := rt.List(); err != nil || len(ids) != 0 {
		t.Errorf("run left containers: %v %v", ids, err)
	}
}

func TestRunDetachAndPidFile(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := testutil.UniqueName(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	rt.MustRun("run", "--detach", "--pid-file", pidFile, "--bundle", b.Dir, id)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("run --detach took %v", d)
	}
	if s := state(t, rt, id); s["status"] != "running" {
		t.Fatalf("status %v", s["status"])
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), strconv.Itoa(initPid(t, rt, id)); got != want {
		t.Errorf("pid file %q, want %q", got, want)
	}
	rt.MustRun("kill", id, "KILL")
	waitStatus(t, rt, id, "stopped")
	rt.MustRun("delete", id)
}

func TestCreatePidFile(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	id := testutil.UniqueName(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	rt.MustRun("create", "--pid-file", pidFile, "--bundle", b.Dir, id)
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(data)), strconv.Itoa(initPid(t, rt, id)); got != want {
		t.Errorf("pid file %q, want %q", got, want)
	}
	rt.MustRun("delete", "--force", id)
}

func TestStoppedOnItsOwn(t *testing.T) {
	rt := newRuntime(t)
	id, _ := createContainer(t, rt, testutil.WithArgs("sleep", "1"))
	rt.MustRun("start", id)
	waitStatus(t, rt, id, "running")
	waitStatus(t, rt, id, "stopped")
	s := state(t, rt, id)
	if pid, _ := s["pid"].(float64); pid != 0 {
		t.Errorf("stopped container reports pid %v", s["pid"])
	}
	// kill of a stopped container fails, delete works without --force.
	if _, _, err := rt.Run("kill", id, "KILL"); err == nil {
		t.Error("kill of a stopped container succeeded")
	}
	rt.MustRun("delete", id)
}

func TestDeleteRunning(t *testing.T) {
	rt := newRuntime(t)
	id, b := startContainer(t, rt)
	pid := initPid(t, rt, id)
	_, errOut, err := rt.Run("delete", id)
	if err == nil {
		t.Fatal("delete of a running container succeeded without --force")
	}
	wantContains(t, "delete stderr", errOut, "not stopped")
	if s := state(t, rt, id); s["status"] != "running" {
		t.Fatalf("after refused delete: %v", s["status"])
	}
	rt.MustRun("delete", "--force", id)
	if stateDirExists(rt, id) {
		t.Error("state dir left after delete --force")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(st), ") Z") {
			t.Errorf("process %d alive after delete --force", pid)
		}
	}
	assertNothingLeft(t, rt, id, b.Spec.Linux.CgroupsPath, b.Dir)
}

func TestDeleteCreated(t *testing.T) {
	rt := newRuntime(t)
	id, b := createContainer(t, rt)
	rt.MustRun("delete", id)
	assertNothingLeft(t, rt, id, b.Spec.Linux.CgroupsPath, b.Dir)
}

func TestKillAll(t *testing.T) {
	rt := newRuntime(t)
	// pid 1 traps TERM and keeps running; its children die.
	id, _ := startContainer(t, rt, sh("trap '' TERM; sleep 1000 & sleep 1000 & wait; wait; sleep 1000"))
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) < 3 && time.Now().Before(deadline) {
		json.Unmarshal([]byte(rt.MustRun("ps", "--format", "json", id)), &pids)
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) < 3 {
		t.Fatalf("ps: %v, want 3 processes", pids)
	}
	rt.MustRun("kill", "--all", id, "KILL")
	waitStatus(t, rt, id, "stopped")
	for _, p := range pids {
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat"); err == nil && !strings.Contains(string(st), ") Z") {
			t.Errorf("process %d survived kill --all", p)
		}
	}
	rt.MustRun("delete", id)
}

func TestPauseResume(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	pid := initPid(t, rt, id)
	rt.MustRun("pause", id)
	if s := state(t, rt, id); s["status"] != "paused" {
		t.Fatalf("after pause: %v", s["status"])
	}
	st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if !strings.Contains(string(st), ") D") && !strings.Contains(string(st), ") S") {
		t.Logf("paused process state: %s", st)
	}
	if _, _, err := rt.Run("pause", id); err == nil {
		t.Error("pausing a paused container succeeded")
	}
	rt.MustRun("resume", id)
	if s := state(t, rt, id); s["status"] != "running" {
		t.Fatalf("after resume: %v", s["status"])
	}
	if _, _, err := rt.Run("resume", id); err == nil {
		t.Error("resuming a running container succeeded")
	}
	// A paused container can be force-deleted.
	rt.MustRun("pause", id)
	rt.MustRun("delete", "--force", id)
}

func TestEventsStats(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt, testutil.WithMemoryLimit(64<<20))
	out := rt.MustRun("events", "--stats", id)
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Memory struct {
				Usage struct {
					Usage uint64 `json:"usage"`
					Limit uint64 `json:"limit"`
				} `json:"usage"`
			} `json:"memory"`
			Pids struct {
				Current uint64 `json:"current"`
			} `json:"pids"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("events --stats: %v: %q", err, out)
	}
	if ev.Type != "stats" || ev.ID != id {
		t.Errorf("event %+v", ev)
	}
	if ev.Data.Memory.Usage.Usage == 0 {
		t.Errorf("memory usage 0 in %s", out)
	}
	if ev.Data.Memory.Usage.Limit != 64<<20 {
		t.Errorf("memory limit %d in %s", ev.Data.Memory.Usage.Limit, out)
	}
	if ev.Data.Pids.Current != 1 {
		t.Errorf("pids.current %d", ev.Data.Pids.Current)
	}
}

func TestSpecCommand(t *testing.T) {
	testutil.RequireRoot(t)
	rt := testutil.NewRuntime(t)
	dir := t.TempDir()
	rt.MustRun("spec", "--bundle", dir)
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		OCIVersion string `json:"ociVersion"`
		Process    struct {
			Args []string `json:"args"`
		} `json:"process"`
		Root struct {
			Path string `json:"path"`
		} `json:"root"`
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
			} `json:"namespaces"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.OCIVersion == "" || spec.Root.Path != "rootfs" || len(spec.Process.Args) == 0 || len(spec.Linux.Namespaces) == 0 {
		t.Errorf("spec: %s", data)
	}
	_, errOut, err := rt.Run("spec", "--bundle", dir)
	if err == nil {
		t.Fatal("spec over an existing config.json succeeded")
	}
	wantContains(t, "spec stderr", errOut, "exists")
	if after, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(after) != string(data) {
		t.Error("spec changed the existing config.json")
	}
}

func TestFeatures(t *testing.T) {
	testutil.RequireRoot(t)
	rt := testutil.NewRuntime(t)
	var f struct {
		OCIVersionMin string   `json:"ociVersionMin"`
		OCIVersionMax string   `json:"ociVersionMax"`
		Hooks         []string `json:"hooks"`
		Linux         struct {
			Namespaces []string `json:"namespaces"`
			Seccomp    struct {
				Enabled *bool    `json:"enabled"`
				Actions []string `json:"actions"`
				Archs   []string `json:"archs"`
			} `json:"seccomp"`
		} `json:"linux"`
	}
	out := rt.MustRun("features")
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("features: %v: %q", err, out)
	}
	for _, ns := range []string{"pid", "network", "ipc", "uts", "mount", "user", "cgroup"} {
		if !strings.Contains(strings.Join(f.Linux.Namespaces, " "), ns) {
			t.Errorf("features: namespace %q missing from %v", ns, f.Linux.Namespaces)
		}
	}
	if f.Linux.Seccomp.Enabled == nil || !*f.Linux.Seccomp.Enabled || len(f.Linux.Seccomp.Actions) == 0 || len(f.Linux.Seccomp.Archs) == 0 {
		t.Errorf("features: seccomp %+v", f.Linux.Seccomp)
	}
	if f.OCIVersionMax == "" || len(f.Hooks) != 6 {
		t.Errorf("features: %s", out)
	}
}

func TestVersion(t *testing.T) {
	testutil.RequireRoot(t)
	rt := testutil.NewRuntime(t)
	out := rt.MustRun("--version")
	wantContains(t, "--version", out, "berth-runtime version", "spec: 1.")
}
