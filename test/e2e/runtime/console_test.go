package e2eruntime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestCreateTerminalConsoleSocket(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithSpec(func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 33, Width: 101}
	}), sh("tty; ls -l /dev/console; stty size; echo console-done; sleep 1000"))
	id := testutil.UniqueName(t)
	cs := newConsoleSocket(t)
	rt.MustRun("create", "--console-socket", cs.Path, "--bundle", b.Dir, id)
	m := cs.Master(t)
	rt.MustRun("start", id)
	out := readUntil(t, m, "console-done", 10*time.Second)
	wantContains(t, "pty output", out, "/dev/pts/0", "/dev/console", "33 101", "console-done")
	rt.MustRun("delete", "--force", id)
}

func TestTerminalNeedsConsoleSocket(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) { s.Process.Terminal = true }))
	id := testutil.UniqueName(t)
	_, errOut, err := rt.Run("create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatal("create with terminal and no console socket succeeded")
	}
	wantContains(t, "stderr", errOut, "console-socket")
	assertNothingLeft(t, rt, id, b.Spec.Linux.CgroupsPath, b.Dir)
}

func TestNoPivot(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, sh("cat /etc/hostname; ls / | wc -l; grep -c . /proc/self/mountinfo"))
	out, errOut, code := runBundle(t, rt, b, "--no-pivot")
	if code != 0 {
		t.Fatalf("--no-pivot: exit %d %q %q", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	ents, _ := os.ReadDir(b.Rootfs)
	if lines[0] != "berth" || lines[1] != itoa(len(ents)) {
		t.Errorf("--no-pivot root: %q (rootfs has %d entries)", out, len(ents))
	}
}

func TestPreserveFds(t *testing.T) {
	rt := newRuntime(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "passed")
	os.WriteFile(p, []byte("through-fd-3\n"), 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := testutil.NewBundle(t, sh("cat <&3; ls /proc/self/fd | wc -l"))
	id := testutil.UniqueName(t)
	cmd := rt.Command(t.Context(), "run", "--preserve-fds", "1", "--bundle", b.Dir, id)
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run --preserve-fds: %v: %s", err, errText(err))
	}
	// fds 0-3 plus the one ls opens for the directory
	if string(out) != "through-fd-3\n5\n" {
		t.Errorf("stdout %q", out)
	}
	// Without --preserve-fds, fd 3 does not reach the container.
	b2 := testutil.NewBundle(t, sh("cat <&3"))
	cmd = rt.Command(t.Context(), "run", "--bundle", b2.Dir, testutil.UniqueName(t))
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.Output(); err == nil || strings.Contains(string(out), "through") {
		t.Errorf("fd 3 leaked into a container without --preserve-fds: %q %v", out, err)
	}
}

func errText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
