package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the child process put into cgroups: with
// BERTH_CGTEST_HELPER set it waits for one byte on stdin (so the test can
// move it first), then performs the action.
const helperEnv = "BERTH_CGTEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		return 2
	}
	verb, arg, _ := strings.Cut(mode, ":")
	switch verb {
	case "open": // exit 0 if the device opens, 13 on EPERM
		f, err := os.OpenFile(arg, os.O_RDWR, 0)
		if err == nil {
			f.Close()
			return 0
		}
		if errors.Is(err, syscall.EPERM) {
			return 13
		}
		os.Stderr.WriteString(err.Error())
		return 1
	case "alloc": // touch arg MiB; expected to be OOM-killed
		mib, _ := strconv.Atoi(arg)
		var keep [][]byte
		for i := 0; i < mib; i++ {
			c := make([]byte, 1<<20)
			for j := 0; j < len(c); j += 4096 {
				c[j] = 1
			}
			keep = append(keep, c)
		}
		return len(keep) & 0
	case "wait": // block until stdin closes
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	return 3
}

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   int
}

// startHelper starts the test binary (or argv if given) blocked on stdin.
func startHelper(t *testing.T, mode string, argv ...string) *helper {
	t.Helper()
	var cmd *exec.Cmd
	if len(argv) > 0 {
		cmd = exec.Command(argv[0], argv[1:]...)
	} else {
		cmd = exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: in, pid: cmd.Process.Pid}
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	})
	return h
}

// run releases the helper and returns its exit code (-signal if killed).
func (h *helper) run(t *testing.T) int {
	t.Helper()
	h.stdin.Write([]byte{'x'})
	h.stdin.Close()
	err := h.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func uniqueName(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return "berth-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + hex.EncodeToString(b[:])
}

// cleanup kills whatever is left in the cgroup, destroys it, and checks that
// every directory is gone.
func cleanup(t *testing.T, m Manager) {
	t.Helper()
	t.Cleanup(func() {
		_ = m.Thaw()
		for i := 0; i < 50; i++ {
			pids, _ := m.Pids()
			if len(pids) == 0 {
				break
			}
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := m.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		for k, d := range m.Paths() {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("%s: %s still exists after Destroy", k, d)
			}
		}
	})
}

// readBack reads a cgroup file for assertions.
func readBack(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func wantFile(t *testing.T, dir, name, want string) {
	t.Helper()
	if got := readBack(t, dir, name); got != want {
		t.Errorf("%s/%s = %q, want %q", dir, name, got, want)
	}
}

func contains(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// blockDevice returns "major:minor" of some block device, or "".
func blockDevice() (int64, int64, bool) {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err != nil {
			continue
		}
		ma, mi, ok := parseDev(strings.TrimSpace(string(b)))
		if ok {
			return int64(ma), int64(mi), true
		}
	}
	return 0, 0, false
}

// mknodNull makes a char device 1:3 (/dev/null's numbers) in a temp dir.
func mknodNull(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "null")
	if err := syscall.Mknod(p, syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	return p
}

// smallestHugePage returns the host's smallest huge page size, as cgroup
// file names spell it ("2MB") and in bytes, or ok=false if there is none.
// The kernel rounds hugetlb limits down to whole pages (8 MiB of 1 GB pages
// reads back as 0), so tests use multiples of this size, and the smallest
// because it is the one the tests' limits fit.
func smallestHugePage() (name string, size int, ok bool) {
	ents, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	for _, e := range ents {
		kb, found := strings.CutPrefix(e.Name(), "hugepages-")
		kb, isKB := strings.CutSuffix(kb, "kB")
		n, err := strconv.Atoi(kb)
		if !found || !isKB || err != nil || n <= 0 {
			continue
		}
		if !ok || n*1024 < size {
			size, ok = n*1024, true
		}
	}
	if !ok {
		return "", 0, false
	}
	return pageSizeName(uint64(size)), size, true
}

// checkFreezeThaw freezes and thaws m, checking the state after each step.
func checkFreezeThaw(t *testing.T, m Manager) {
	t.Helper()
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != Frozen {
		t.Errorf("State = %q, %v; want FROZEN", st, err)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != Thawed {
		t.Errorf("State = %q, %v; want THAWED", st, err)
	}
}
