package e2eruntime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestExecArgs(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt, testutil.WithHostname("exec-host"))
	if out := execOut(t, rt, id, "echo", "hello", "world"); out != "hello world\n" {
		t.Errorf("exec echo: %q", out)
	}
	if out := execOut(t, rt, id, "hostname"); out != "exec-host\n" {
		t.Errorf("exec hostname: %q", out)
	}
}

func TestExecProcessJSON(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	p := specs.Process{
		Args: []string{"sh", "-c", "echo $FOO; pwd; id -u"},
		Env:  []string{"PATH=/bin:/usr/bin", "FOO=from-json"},
		Cwd:  "/tmp",
		User: specs.User{UID: 1000, GID: 1000},
	}
	data, _ := json.Marshal(p)
	pf := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(pf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := execOut(t, rt, "--process", pf, id)
	if out != "from-json\n/tmp\n1000\n" {
		t.Errorf("exec --process: %q", out)
	}
}

func TestExecFlags(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	if out := execOut(t, rt, "--env", "A=1", "--env", "B=two", id, "sh", "-c", "echo $A-$B"); out != "1-two\n" {
		t.Errorf("--env: %q", out)
	}
	if out := execOut(t, rt, "--cwd", "/etc", id, "pwd"); out != "/etc\n" {
		t.Errorf("--cwd: %q", out)
	}
	if out := execOut(t, rt, "--user", "1000:1000", id, "sh", "-c", "id -u; id -g"); out != "1000\n1000\n" {
		t.Errorf("--user: %q", out)
	}
	if out := execOut(t, rt, "--user", "1000", id, "id", "-u"); out != "1000\n" {
		t.Errorf("--user uid only: %q", out)
	}
}

func TestExecExitCode(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	_, _, err := rt.Run("exec", id, "sh", "-c", "exit 7")
	if code := exitCode(err); code != 7 {
		t.Errorf("exec exit %d (%v), want 7", code, err)
	}
	_, _, err = rt.Run("exec", id, "sh", "-c", "sh -c 'kill -KILL $$'; exit $?")
	if code := exitCode(err); code != 137 {
		t.Errorf("exec exit %d (%v), want 137", code, err)
	}
}

func TestExecMissingBinary(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	_, errOut, err := rt.Run("exec", id, "/no/such/binary")
	if err == nil {
		t.Fatal("exec of a missing binary succeeded")
	}
	wantContains(t, "exec stderr", errOut, "/no/such/binary", "no such file")
	_, errOut, err = rt.Run("exec", id, "nosuchcommand")
	if err == nil {
		t.Fatal("exec of a missing command succeeded")
	}
	wantContains(t, "exec stderr", errOut, "nosuchcommand", "not found")
	// The container is unharmed.
	if s := state(t, rt, id); s["status"] != "running" {
		t.Errorf("status after failed exec: %v", s["status"])
	}
	var pids []int
	json.Unmarshal([]byte(rt.MustRun("ps", "--format", "json", id)), &pids)
	if len(pids) != 1 {
		t.Errorf("ps after failed exec: %v", pids)
	}
}

func TestExecDetachPidFile(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	rt.MustRun("exec", "--detach", "--pid-file", pidFile, id, "sleep", "1000")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %q", data)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.HasPrefix(string(cmdline), "sleep\x001000") {
		t.Errorf("pid %d runs %q, want sleep 1000", pid, cmdline)
	}
	var pids []int
	json.Unmarshal([]byte(rt.MustRun("ps", "--format", "json", id)), &pids)
	found := false
	for _, p := range pids {
		found = found || p == pid
	}
	if !found {
		t.Errorf("exec'd pid %d not in ps %v", pid, pids)
	}
}

// TestExecSeesContainer: an exec'd process shares every namespace and the
// cgroup of the container's init.
func TestExecSeesContainer(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt, testutil.WithHostname("walls"), testutil.WithSpec(func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/marker", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}})
	}))
	init := initPid(t, rt, id)
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	rt.MustRun("exec", "--detach", "--pid-file", pidFile, id, "sleep", "1000")
	data, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	for _, ns := range []string{"pid", "net", "ipc", "uts", "mnt"} {
		a, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", init, ns))
		b, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("ns %s: init %s, exec %s (%v %v)", ns, a, b, err1, err2)
		}
	}
	cgInit, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", init))
	cgExec, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if string(cgInit) != string(cgExec) || len(cgInit) == 0 {
		t.Errorf("cgroups differ:\ninit %s\nexec %s", cgInit, cgExec)
	}

	out := execOut(t, rt, id, "sh", "-c", "hostname; ps -o pid,args; ip -o link; grep -c ' /marker ' /proc/self/mountinfo")
	lines := strings.Split(out, "\n")
	if lines[0] != "walls" {
		t.Errorf("hostname %q", lines[0])
	}
	wantContains(t, "exec ps", out, "    1 sleep 1000")
	if strings.Contains(out, "eth") || !strings.Contains(out, "lo:") {
		t.Errorf("exec sees a network that is not the container's: %q", out)
	}
	if strings.TrimSpace(lines[len(lines)-2]) != "1" {
		t.Errorf("exec does not see the container's /marker mount: %q", out)
	}
}

func TestExecStoppedContainer(t *testing.T) {
	rt := newRuntime(t)
	id, _ := createContainer(t, rt, testutil.WithArgs("true"))
	rt.MustRun("start", id)
	waitStatus(t, rt, id, "stopped")
	lr, log := logRuntime(t, rt)
	_, errOut, err := lr.Run("exec", id, "true")
	if err == nil {
		t.Fatal("exec into a stopped container succeeded")
	}
	wantContains(t, "exec stderr", errOut, "stopped")
	wantJSONErrorLog(t, log, "stopped")
	// --process spelling, too
	pf := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(pf, []byte(`{"args":["true"],"cwd":"/"}`), 0o644)
	if _, errOut, err := rt.Run("exec", "--process", pf, id); err == nil || !strings.Contains(errOut, "stopped") {
		t.Errorf("exec --process into stopped: %v %q", err, errOut)
	}
}

func TestExecTTY(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	cs := newConsoleSocket(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := rt.Run("exec", "--tty", "--console-socket", cs.Path, id, "sh", "-c", "tty; echo tty-ok; sleep 0.2")
		done <- err
	}()
	m := cs.Master(t)
	out := readUntil(t, m, "tty-ok", 10*time.Second)
	wantContains(t, "pty output", out, "/dev/pts/", "tty-ok")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exec --tty: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exec --tty did not return")
	}
}
