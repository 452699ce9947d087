package walls_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

var probeBin string

// probePath builds testdata/probe once (static, so it runs in busybox).
func probePath(t *testing.T) string {
	t.Helper()
	if probeBin != "" {
		return probeBin
	}
	// Not t.TempDir(): that goes with the test, the binary serves them
	// all (TestMain removes it).
	pdir, err := os.MkdirTemp("", "berth-walls-probe-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pdir, "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	probeBin = bin
	probeDirs = append(probeDirs, pdir)
	return bin
}

var probeDirs []string

// probe runs /probe args in a new busybox container created with flags
// (by c's CLI), the probe copied in before the start; it returns the
// probe's answer and exit code.
func probe(t *testing.T, d *berthd.Daemon, c cli, flags []string, args ...string) (string, int) {
	t.Helper()
	bin := probePath(t)
	out, code := c.run(t, d, append(append([]string{"create"}, flags...), append([]string{"busybox", "/probe"}, args...)...)...)
	if code != 0 {
		t.Fatalf("%s create %v: exit %d: %s", c.name, flags, code, out)
	}
	id := lastLine(out)
	defer d.Docker("rm", "-f", id)
	d.Must(t, "cp", bin, id+":/probe")
	out, code = c.run(t, d, "start", "-a", id)
	return strings.TrimSpace(out), code
}

func hostHas(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l[len(l)-1])
}

// TestDefaultWallsHold attacks each default wall from inside a container,
// with both CLIs, and checks that it holds; the same attempt under
// --privileged succeeds, as it does with Docker.
func TestDefaultWallsHold(t *testing.T) {
	d := daemon(t)
	// A host process to trace: ours, so it is killed by us.
	host := exec.Command("sleep", "1000")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() })
	hostPid := strconv.Itoa(host.Process.Pid)

	cases := []struct {
		name  string
		flags []string
		args  []string
		deny  string // the default's answer
	}{
		{"mount", nil, []string{"mount"}, "EPERM"},
		{"module load", nil, []string{"module"}, "EPERM"},
		{"raw socket without NET_RAW", []string{"--cap-drop", "NET_RAW"}, []string{"rawsock"}, "EPERM"},
		{"ptrace of a host process", []string{"--pid", "host"}, []string{"ptrace", hostPid}, "EPERM"},
		{"write /proc/sysrq-trigger", nil, []string{"openw", "/proc/sysrq-trigger"}, "EROFS"},
		{"write /sys", nil, []string{"openw", "/sys/kernel/mm/transparent_hugepage/enabled"}, "EROFS"},
		{"keyctl", nil, []string{"keyctl"}, "EPERM"},
		{"unshare", nil, []string{"unshare"}, "EPERM"},
	}
	for _, c := range clis {
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				if tc.args[0] == "openw" && !hostHas(tc.args[1]) {
					// This kernel has no such file: neither may the
					// container (nothing was created in its place).
					if out, _ := probe(t, d, c, tc.flags, tc.args...); out != "ENOENT" {
						t.Errorf("%s is absent on the host, in the container: %q", tc.args[1], out)
					}
					return
				}
				out, code := probe(t, d, c, tc.flags, tc.args...)
				if code != 1 || out != tc.deny {
					t.Errorf("default: %q (exit %d), want %s", out, code, tc.deny)
				}
				out, code = probe(t, d, c, append([]string{"--privileged"}, tc.flags...), tc.args...)
				switch {
				case tc.args[0] == "module":
					// Allowed: the kernel looks at the file and refuses
					// it as a module, not the caller.
					if code != 1 || out == "EPERM" {
						t.Errorf("privileged module load: %q (exit %d), want a format error", out, code)
					}
				case code != 0 || out != "ok":
					t.Errorf("privileged: %q (exit %d), want ok", out, code)
				}
			})
		}
	}
	// /proc/kcore reads as an empty file (masked); privileged, it is the
	// kernel's memory image.
	if !hostHas("/proc/kcore") {
		if out, _ := probe(t, d, clis[0], nil, "read", "/proc/kcore"); out != "ENOENT" {
			t.Errorf("/proc/kcore is absent on the host, in the container: %q", out)
		}
	} else if out, _ := probe(t, d, clis[0], nil, "read", "/proc/kcore"); out != "read 0 bytes" {
		t.Errorf("read /proc/kcore: %q, want it masked", out)
	}
	if out, _ := probe(t, d, clis[0], []string{"--privileged"}, "read", "/proc/kcore"); hostHas("/proc/kcore") && (out == "read 0 bytes" || !strings.HasPrefix(out, "read ")) {
		t.Errorf("privileged read /proc/kcore: %q", out)
	}
	// busybox's unshare is single-threaded: a user namespace is refused by
	// the default seccomp profile, and only by it.
	if out, code := docker(t, d, "run", "--rm", "busybox", "unshare", "-U", "true"); code == 0 {
		t.Errorf("unshare -U under the default profile: %q", out)
	}
	if out, code := docker(t, d, "run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "unshare", "-U", "true"); code != 0 {
		t.Errorf("unshare -U with seccomp=unconfined: exit %d: %s", code, out)
	}
	if host.ProcessState != nil {
		t.Errorf("host process was disturbed: %v", host.ProcessState)
	}
	if err := host.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("host process: %v", err)
	}
}
