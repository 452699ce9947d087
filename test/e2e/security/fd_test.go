package security

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

// hostDir is a host directory the container must never reach: it holds a
// marker file and a copy of the attacker binary.
type hostDir struct {
	path, marker string
}

func newHostDir(t *testing.T) hostDir {
	t.Helper()
	dir := t.TempDir()
	marker := "host-secret-" + testutil.UniqueName(t)
	if err := os.WriteFile(filepath.Join(dir, marker), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile(t, attackerPath, filepath.Join(dir, "hostbin"), 0o755)
	return hostDir{dir, marker}
}

// openFiles opens dir n times, for the runtime to inherit at fds 3..3+n-1.
func (h hostDir) openFiles(t *testing.T, n int) []*os.File {
	t.Helper()
	var fs []*os.File
	for i := 0; i < n; i++ {
		f, err := os.Open(h.path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fs = append(fs, f)
	}
	return fs
}

// runWithFiles runs the runtime with args and extra open files at fds 3..
// in its own process, the way a careless caller would, and returns the
// combined output.
func runWithFiles(t *testing.T, rt *testutil.Runtime, extra []*os.File, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := rt.Command(ctx, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = extra
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.String(), err
}

// fdLines returns the "fd N TARGET" lines of the attacker's fds output.
func fdLines(out string) []string {
	var fds []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "fd ") {
			fds = append(fds, l)
		}
	}
	return fds
}

func fdNums(out string) string {
	var nums []string
	for _, l := range fdLines(out) {
		nums = append(nums, strings.Fields(l)[1])
	}
	return strings.Join(nums, ",")
}

// TestNoHostFdReachesContainer is the CVE-2024-21626 class, part one: the
// container's process holds exactly stdio and the fds passed with
// --preserve-fds, whatever the runtime itself had open, on both the create
// and the exec path.
//
// Defense: the init marks every fd above 3+preserve close-on-exec before
// the user's program runs, and the runtime passes none of its own
// inherited fds to the container process. Without closeExtraFds the fd
// lists show the runtime's init socket and the inherited host directories.
func TestNoHostFdReachesContainer(t *testing.T) {
	rt := setup(t)
	host := newHostDir(t)
	extra := host.openFiles(t, 5) // fds 3..7 in the runtime

	t.Run("create", func(t *testing.T) {
		b := testutil.NewBundle(t, testutil.WithArgs("/attacker", "fds"))
		installAttacker(t, b.Rootfs)
		out, err := runWithFiles(t, rt, extra, "run", "--bundle", b.Dir, testutil.UniqueName(t))
		if err != nil {
			t.Fatalf("run: %v: %s", err, out)
		}
		if got := fdNums(out); got != "0,1,2" {
			t.Errorf("container process has fds %s, want 0,1,2:\n%s", got, out)
		}
		expectLines(t, out, "cwd /")
	})
	t.Run("create-preserve-fds", func(t *testing.T) {
		b := testutil.NewBundle(t, testutil.WithArgs("/attacker", "fds"))
		installAttacker(t, b.Rootfs)
		out, err := runWithFiles(t, rt, extra, "run", "--preserve-fds", "2", "--bundle", b.Dir, testutil.UniqueName(t))
		if err != nil {
			t.Fatalf("run: %v: %s", err, out)
		}
		if got := fdNums(out); got != "0,1,2,3,4" {
			t.Errorf("container process has fds %s, want 0,1,2,3,4 (two preserved):\n%s", got, out)
		}
	})
	t.Run("exec", func(t *testing.T) {
		b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
		installAttacker(t, b.Rootfs)
		id := testutil.UniqueName(t)
		rt.MustRun("run", "--detach", "--bundle", b.Dir, id)
		t.Cleanup(func() { rt.Run("delete", "--force", id) })
		out, err := runWithFiles(t, rt, extra, "exec", id, "/attacker", "fds")
		if err != nil {
			t.Fatalf("exec: %v: %s", err, out)
		}
		if got := fdNums(out); got != "0,1,2" {
			t.Errorf("exec'd process has fds %s, want 0,1,2:\n%s", got, out)
		}
		out, err = runWithFiles(t, rt, extra, "exec", "--preserve-fds", "1", id, "/attacker", "fds")
		if err != nil {
			t.Fatalf("exec: %v: %s", err, out)
		}
		if got := fdNums(out); got != "0,1,2,3" {
			t.Errorf("exec'd process has fds %s, want 0,1,2,3 (one preserved):\n%s", got, out)
		}
	})
}

// TestLeakedFdCannotBecomeCwdOrProgram is the CVE-2024-21626 class, part
// two: a runtime that holds host directories open at fds 3..7 (inherited,
// not passed with --preserve-fds) is asked for process.cwd
// /proc/self/fd/N, exec --cwd /proc/self/fd/N, or a program reached through
// /proc/self/fd/N. The container must fail to start or run inside its root:
// it must never list the host directory's marker file, run with an
// "(unreachable)" cwd, or run the host's binary.
//
// The same cwds are tried with the fds passed on purpose (--preserve-fds 5):
// a cwd outside the root is refused even then.
//
// Defense: the runtime passes the container process none of the fds it
// inherited (spawn.go), and the init refuses a cwd outside the root
// (init.go). Without the first the container runs the host's binary;
// without the second it starts in the host directory.
func TestLeakedFdCannotBecomeCwdOrProgram(t *testing.T) {
	rt := setup(t)
	host := newHostDir(t)
	extra := host.openFiles(t, 5)
	breach := func(t *testing.T, how, out string, err error) {
		t.Helper()
		if strings.Contains(out, host.marker) {
			t.Errorf("%s: the container listed the host directory (err %v):\n%s", how, err, out)
		}
		if strings.Contains(out, "(unreachable)") {
			t.Errorf("%s: the container ran with a cwd outside its root (err %v):\n%s", how, err, out)
		}
		if strings.Contains(out, "exe ") {
			t.Errorf("%s: the container ran the host's binary (err %v):\n%s", how, err, out)
		}
		if err == nil && !strings.Contains(out, "cwd /") && !strings.Contains(how, "args") {
			t.Errorf("%s: started, but printed no cwd inside the root:\n%s", how, out)
		}
	}
	// What the container runs when it does start: where it is and what is
	// around it.
	look := []string{"/bin/sh", "-c", "pwd -P; ls -a . ..; /attacker fds"}

	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	installAttacker(t, b.Rootfs)
	running := testutil.UniqueName(t)
	rt.MustRun("run", "--detach", "--bundle", b.Dir, running)
	t.Cleanup(func() { rt.Run("delete", "--force", running) })

	for fd := 3; fd <= 7; fd++ {
		via := fmt.Sprintf("/proc/self/fd/%d", fd)
		t.Run(fmt.Sprint("fd", fd), func(t *testing.T) {
			b := testutil.NewBundle(t, testutil.WithArgs(look...), testutil.WithSpec(func(s *specs.Spec) { s.Process.Cwd = via }))
			installAttacker(t, b.Rootfs)
			out, err := runWithFiles(t, rt, extra, "run", "--bundle", b.Dir, testutil.UniqueName(t))
			breach(t, "run with process.cwd "+via, out, err)

			b = testutil.NewBundle(t, testutil.WithArgs(via+"/hostbin", "selfexe"))
			out, err = runWithFiles(t, rt, extra, "run", "--bundle", b.Dir, testutil.UniqueName(t))
			breach(t, "run with process.args "+via+"/hostbin", out, err)

			out, err = runWithFiles(t, rt, extra, append([]string{"exec", "--cwd", via, running}, look...)...)
			breach(t, "exec --cwd "+via, out, err)

			out, err = runWithFiles(t, rt, extra, "exec", running, via+"/hostbin", "selfexe")
			breach(t, "exec args "+via+"/hostbin", out, err)

			// Passed on purpose, a host directory is still no place to
			// start in.
			b = testutil.NewBundle(t, testutil.WithArgs(look...), testutil.WithSpec(func(s *specs.Spec) { s.Process.Cwd = via }))
			installAttacker(t, b.Rootfs)
			out, err = runWithFiles(t, rt, extra, "run", "--preserve-fds", "5", "--bundle", b.Dir, testutil.UniqueName(t))
			breach(t, "run --preserve-fds 5 with process.cwd "+via, out, err)

			out, err = runWithFiles(t, rt, extra, append([]string{"exec", "--preserve-fds", "5", "--cwd", via, running}, look...)...)
			breach(t, "exec --preserve-fds 5 --cwd "+via, out, err)
		})
	}
}
