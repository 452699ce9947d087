// Package e2eruntime drives bin/berth-runtime the way containerd or a user
// drives runc: as a subprocess with runc's flags, never through the
// library. Every test runs as root (CI runs as root and never skips), has
// its own --root state dir and cgroup path, and checks for leaks.
//
// Tests run one after another: LeakCheck attributes every new descendant
// of the test binary to the test that is checking, so a container of a
// parallel test would be reported (and killed) as a leak.
package e2eruntime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// newRuntime is the start of every test: root, leak check, own state root.
func newRuntime(t *testing.T) *testutil.Runtime {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	return testutil.NewRuntime(t)
}

// exitCode returns the exit status carried by err (0 for nil, -1 when the
// command did not run to an exit).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// runContainer runs a fresh busybox container in the foreground and
// returns its stdout, stderr and exit code.
func runContainer(t *testing.T, rt *testutil.Runtime, opts ...testutil.Option) (string, string, int) {
	t.Helper()
	b := testutil.NewBundle(t, opts...)
	return runBundle(t, rt, b)
}

func runBundle(t *testing.T, rt *testutil.Runtime, b *testutil.Bundle, extra ...string) (string, string, int) {
	t.Helper()
	id := testutil.UniqueName(t)
	args := append([]string{"run", "--bundle", b.Dir}, extra...)
	out, errOut, err := rt.Run(append(args, id)...)
	if err != nil && exitCode(err) < 0 {
		t.Fatalf("run: %v", err)
	}
	return out, errOut, exitCode(err)
}

// mustRunContainer is runContainer that wants exit 0 and returns stdout.
func mustRunContainer(t *testing.T, rt *testutil.Runtime, opts ...testutil.Option) string {
	t.Helper()
	out, errOut, code := runContainer(t, rt, opts...)
	if code != 0 {
		t.Fatalf("container exited %d; stdout %q; stderr %q", code, out, errOut)
	}
	return out
}

// sh is WithArgs("sh", "-c", script).
func sh(script string) testutil.Option { return testutil.WithArgs("sh", "-c", script) }

// startContainer creates and starts a container running args (default:
// sleep) and returns its id and bundle. NewRuntime's cleanup deletes it.
func startContainer(t *testing.T, rt *testutil.Runtime, opts ...testutil.Option) (string, *testutil.Bundle) {
	t.Helper()
	id, b := createContainer(t, rt, opts...)
	rt.MustRun("start", id)
	waitStatus(t, rt, id, "running")
	return id, b
}

// createContainer runs `create` for a sleeping busybox container.
func createContainer(t *testing.T, rt *testutil.Runtime, opts ...testutil.Option) (string, *testutil.Bundle) {
	t.Helper()
	all := append([]testutil.Option{testutil.WithArgs("sleep", "1000")}, opts...)
	b := testutil.NewBundle(t, all...)
	id := testutil.UniqueName(t)
	rt.MustRun("create", "--bundle", b.Dir, id)
	return id, b
}

func waitStatus(t *testing.T, rt *testutil.Runtime, id, want string) {
	t.Helper()
	if err := rt.WaitStatus(id, want, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, rt *testutil.Runtime, id string) map[string]any {
	t.Helper()
	out := rt.MustRun("state", id)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("state %s: %v: %q", id, err, out)
	}
	return m
}

func initPid(t *testing.T, rt *testutil.Runtime, id string) int {
	t.Helper()
	s, err := rt.State(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pid <= 0 {
		t.Fatalf("state %s: pid %d", id, s.Pid)
	}
	return s.Pid
}

// execOut runs `exec id args...` and wants exit 0.
func execOut(t *testing.T, rt *testutil.Runtime, id string, args ...string) string {
	t.Helper()
	out, errOut, err := rt.Run(append([]string{"exec", id}, args...)...)
	if err != nil {
		t.Fatalf("exec %v: %v (stdout %q, stderr %q)", args, err, out, errOut)
	}
	return out
}

// wantContains fails unless s contains every sub.
func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s: want %q in %q", what, sub, s)
		}
	}
}

// statusField returns a field of /proc/<pid>/status-like text.
func statusField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// cgroupMountpoints lists the host's cgroup hierarchy mount points.
func cgroupMountpoints(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) >= 5 && len(p) >= 1 && (p[0] == "cgroup" || p[0] == "cgroup2") {
			out = append(out, f[4])
		}
	}
	return out
}

// cgroupDir returns the directory of cgroup path cg in the hierarchy that
// holds controller (e.g. "memory"), or the cgroup2 mount for "".
func cgroupDir(t *testing.T, controller, cg string) string {
	t.Helper()
	for _, mp := range cgroupMountpoints(t) {
		if controller != "" && filepath.Base(mp) == controller {
			return filepath.Join(mp, cg)
		}
		if controller == "" && filepath.Base(mp) == "unified" {
			return filepath.Join(mp, cg)
		}
	}
	if controller != "" {
		// unified layout
		return filepath.Join("/sys/fs/cgroup", cg)
	}
	t.Fatalf("no cgroup hierarchy for %q", controller)
	return ""
}

// assertNothingLeft checks that a failed create left no trace: no state
// dir, no `state`, no cgroup dir named cg in any hierarchy, no mount
// under the bundle, no process with the bundle's rootfs as root.
func assertNothingLeft(t *testing.T, rt *testutil.Runtime, id, cg, bundleDir string) {
	t.Helper()
	if id != "" && !strings.ContainsAny(id, "/") && id != ".." && id != "." {
		if _, err := os.Stat(filepath.Join(rt.Root, id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state dir %s still exists (err %v)", filepath.Join(rt.Root, id), err)
		}
		if _, errOut, err := rt.Run("state", id); err == nil || !(strings.Contains(errOut, "does not exist") || strings.Contains(errOut, "invalid container id")) {
			t.Errorf("state %s after failed create: err %v, stderr %q", id, err, errOut)
		}
	}
	if ids, err := rt.List(); err != nil || len(ids) != 0 {
		t.Errorf("list after failed create: %v %v", ids, err)
	}
	if ents, _ := os.ReadDir(rt.Root); len(ents) != 0 {
		t.Errorf("state root not empty after failed create: %v", ents)
	}
	if cg != "" {
		for _, mp := range cgroupMountpoints(t) {
			p := filepath.Join(mp, cg)
			if _, err := os.Stat(p); err == nil {
				t.Errorf("cgroup %s left behind", p)
			}
		}
	}
	if bundleDir != "" {
		data, _ := os.ReadFile("/proc/self/mountinfo")
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], bundleDir) {
				t.Errorf("mount left behind: %s", l)
			}
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if r, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err == nil && strings.HasPrefix(r, bundleDir) {
				t.Errorf("process %d left behind with root %s", pid, r)
			}
		}
	}
}

// consoleSocket listens on a unix socket for a runtime's pty master.
type consoleSocket struct {
	Path   string
	ln     *net.UnixListener
	master chan *os.File
	err    chan error
}

func newConsoleSocket(t *testing.T) *consoleSocket {
	t.Helper()
	// sun_path is short: keep the socket name short.
	dir, err := os.MkdirTemp("", "bcs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	cs := &consoleSocket{Path: p, ln: ln, master: make(chan *os.File, 1), err: make(chan error, 1)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			cs.err <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 256)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			cs.err <- err
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			cs.err <- fmt.Errorf("no control message: %v", err)
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			cs.err <- fmt.Errorf("no fd: %v", err)
			return
		}
		cs.master <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return cs
}

// Master waits for the pty master.
func (cs *consoleSocket) Master(t *testing.T) *os.File {
	t.Helper()
	select {
	case m := <-cs.master:
		t.Cleanup(func() { m.Close() })
		return m
	case err := <-cs.err:
		t.Fatalf("console socket: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("console socket: no pty master within 10s")
	}
	return nil
}

// readUntil reads from the pty master until want shows up (or EIO / the
// deadline), returning what it read.
func readUntil(t *testing.T, master *os.File, want string, timeout time.Duration) string {
	t.Helper()
	var got strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(master)
		buf := make([]byte, 1024)
		for {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if err != nil || strings.Contains(got.String(), want) {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		master.SetReadDeadline(time.Now()) // best effort
		t.Fatalf("pty: %q not seen within %v; got %q", want, timeout, got.String())
	}
	return got.String()
}

// stateDirExists reports whether the runtime has a state dir for id.
func stateDirExists(rt *testutil.Runtime, id string) bool {
	_, err := os.Stat(filepath.Join(rt.Root, id))
	return err == nil
}

// logRuntime is a copy of rt that logs JSON to a file in a temp dir.
func logRuntime(t *testing.T, rt *testutil.Runtime) (*fixture.Runner, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "runtime.log")
	r := *rt.Runner
	r.GlobalArgs = append(append([]string{}, r.GlobalArgs...), "--log", log, "--log-format", "json")
	return &r, log
}

// wantJSONErrorLog checks the --log-format json file has an error line
// containing msg.
func wantJSONErrorLog(t *testing.T, log, msg string) {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %q", l)
			continue
		}
		if m["level"] == "error" && strings.Contains(fmt.Sprint(m["msg"]), msg) {
			return
		}
	}
	t.Errorf("log %s: no error line with %q in %q", log, msg, data)
}

func itoa(n int) string { return strconv.Itoa(n) }
