// Package security holds end-to-end tests that attack berth-runtime's walls
// from inside a container, the way published container escapes did, and
// assert that each attempt fails. They drive the real binary as a user of
// runc would; the attacks themselves are busybox shell scripts or a small
// static Go program (testdata/attacker) copied into the container's rootfs.
//
// Each test was checked to fail against a runtime with the defense it
// covers disabled; the test's comment says which defense that is.
package security

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

// attackerPath is the static attacker binary built once for the package.
var attackerPath string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "berth-security-attacker-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	attackerPath = filepath.Join(dir, "attacker")
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", attackerPath, "./testdata/attacker")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build attacker: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// installAttacker copies the attacker binary to /attacker in rootfs.
func installAttacker(t *testing.T, rootfs string) {
	t.Helper()
	copyFile(t, attackerPath, filepath.Join(rootfs, "attacker"), 0o755)
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// setup is the common start of every test: root, a leak check and the
// runtime under test.
func setup(t *testing.T) *testutil.Runtime {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	return testutil.NewRuntime(t)
}

// runScript runs `sh -c script` in a fresh container with opts applied and
// returns its combined stdout and stderr (the container's stderr is
// redirected into stdout so that their order is kept).
func runScript(t *testing.T, rt *testutil.Runtime, script string, opts ...testutil.Option) string {
	t.Helper()
	opts = append([]testutil.Option{testutil.WithArgs("/bin/sh", "-c", "exec 2>&1; "+script)}, opts...)
	b := testutil.NewBundle(t, opts...)
	installAttacker(t, b.Rootfs)
	out, _, err := rt.Run("run", "--bundle", b.Dir, testutil.UniqueName(t))
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out)
	}
	return out
}

// expectLines fails the test for every want line missing from out.
func expectLines(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("missing line %q in container output:\n%s", w, out)
		}
	}
}

// withCaps sets every capability set of the process to caps (ambient
// stays empty).
func withCaps(caps ...string) testutil.Option {
	return testutil.WithSpec(func(s *specs.Spec) {
		c := func() []string { return append([]string(nil), caps...) }
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding: c(), Effective: c(), Permitted: c(), Inheritable: c(),
		}
	})
}

// dockerCaps is Docker's default capability set (14 capabilities).
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCapsButSysResource is every capability up to CAP_CHECKPOINT_RESTORE
// except CAP_SYS_RESOURCE (which the test VM cannot grant): a process as
// privileged as a container gets short of CAP_SYS_RESOURCE.
var allCapsButSysResource = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// hostMountsUnder returns the host's mount points at or below dir.
func hostMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if f[4] == dir || strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// listDir returns the sorted names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
