// Package vm holds tests that boot a Linux VM under qemu to test what this
// host cannot show: TestCgroupV2InVM runs the runtime/cgroups tests and a
// berth-runtime smoke test on a pure cgroup v2 kernel (no v1 hierarchy),
// whatever the host's own cgroup layout is.
//
// The VM is Debian's kernel (scripts/vm-kernel.sh fetches and caches it
// without installing it) with an initramfs made here: static busybox, the
// statically linked cgroups test binary and berth-runtime, a busybox bundle
// and init.sh as /init. qemu runs under TCG (no KVM needed).
package vm

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/fixture"
)

//go:embed init.sh
var initScript []byte

const (
	// vmTimeout bounds the VM from qemu's start to its power-off; booting
	// and running Go test binaries under TCG is slow.
	vmTimeout  = 6 * time.Minute
	passMarker = "BERTH-VM-RESULT: PASS"
	failMarker = "BERTH-VM-RESULT: FAIL"
	qemuBinary = "qemu-system-x86_64"
)

// requiredV2 are the runtime/cgroups tests and subtests that must run, not
// skip, on a pure v2 kernel: every controller the tests cover is there.
var requiredV2 = []string{
	"TestV2DeviceFilterLoad", "TestV2Devices", "TestV2Lifecycle",
	"TestV2Lifecycle/hugetlb", "TestV2Lifecycle/unified-errors", "TestV2Lifecycle/memory",
	"TestV2Lifecycle/cpu", "TestV2Lifecycle/cpuset", "TestV2Lifecycle/io",
	"TestV2Lifecycle/pids", "TestV2Lifecycle/oom",
}

func TestCgroupV2InVM(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath(qemuBinary); err != nil {
		if testutil.InCI() {
			t.Fatalf("%s not found (Debian package qemu-system-x86, in the Makefile's TEST_DEPS)", qemuBinary)
		}
		t.Skipf("%s not found: apt-get install qemu-system-x86", qemuBinary)
	}
	start := time.Now()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	kernelDir := fetchKernel(t, repo)
	t.Logf("kernel: %s (%v)", kernelDir, time.Since(start).Round(time.Millisecond))

	bins := buildBinaries(t, repo, work)
	t.Logf("built test binaries (%v)", time.Since(start).Round(time.Millisecond))

	initrd := filepath.Join(work, "initrd.cpio")
	if err := writeInitramfs(initrd, bins, kernelDir); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(initrd); err == nil {
		t.Logf("initramfs: %d MiB (%v)", st.Size()>>20, time.Since(start).Round(time.Millisecond))
	}

	bootStart := time.Now()
	out := runVM(t, filepath.Join(kernelDir, "vmlinuz"), initrd)
	t.Logf("VM ran %v; whole test %v", time.Since(bootStart).Round(time.Second), time.Since(start).Round(time.Second))
	checkOutput(t, out)
}

// fetchKernel runs scripts/vm-kernel.sh and returns the kernel's cache dir.
func fetchKernel(t *testing.T, repo string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo, "scripts", "vm-kernel.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/vm-kernel.sh: %v\n%s", err, stderr.Bytes())
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err != nil {
		t.Fatalf("scripts/vm-kernel.sh printed %q: %v", dir, err)
	}
	return dir
}

type binaries struct{ cgroupsTest, runtime string }

// buildBinaries builds, statically linked, the runtime/cgroups test binary
// (pure Go) and berth-runtime (cgo: libseccomp.a), both in parallel.
func buildBinaries(t *testing.T, repo, work string) binaries {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	b := binaries{cgroupsTest: filepath.Join(work, "cgroups.test"), runtime: filepath.Join(work, "berth-runtime")}
	builds := []struct {
		env  string
		args []string
	}{
		{"CGO_ENABLED=0", []string{"test", "-c", "-o", b.cgroupsTest, "./runtime/cgroups"}},
		{"CGO_ENABLED=1", []string{"build", "-tags", "osusergo,netgo", "-ldflags", `-linkmode external -extldflags "-static"`,
			"-o", b.runtime, "./cmd/berth-runtime"}},
	}
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, bd := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(goBin, bd.args...)
			cmd.Dir = repo
			cmd.Env = append(os.Environ(), bd.env)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go %s: %v\n%s", strings.Join(bd.args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b.cgroupsTest, b.runtime} {
		if err := checkStatic(p); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// checkStatic fails for an executable that needs a dynamic loader: the VM
// has no libc.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (has PT_INTERP)", path)
		}
	}
	return nil
}

// writeInitramfs lays out the VM's whole root filesystem as a cpio archive.
func writeInitramfs(path string, b binaries, kernelDir string) error {
	rootfs, err := fixture.BusyboxRootfsCache()
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c := newCPIO(f)
	for _, d := range []string{"/bin", "/dev", "/proc", "/sys", "/tmp", "/bundles"} {
		c.Dir(d, 0o755)
	}
	c.CharDev("/dev/console", 0o600, 5, 1)
	c.CharDev("/dev/null", 0o666, 1, 3)
	c.File("/bin/busybox", fixture.BusyboxPath)
	c.Symlink("/bin/sh", "busybox")
	c.Bytes("/init", 0o755, initScript)
	c.File("/cgroups.test", b.cgroupsTest)
	c.File("/bin/berth-runtime", b.runtime)
	if _, err := os.Stat(filepath.Join(kernelDir, "loop.ko")); err == nil {
		c.File("/loop.ko", filepath.Join(kernelDir, "loop.ko"))
	}
	c.Tree("/rootfs", rootfs)
	for name, spec := range vmBundles() {
		js, err := json.MarshalIndent(spec, "", "\t")
		if err != nil {
			return err
		}
		c.Dir("/bundles/"+name, 0o755)
		c.Bytes("/bundles/"+name+"/config.json", 0o644, js)
	}
	if err := c.Close(); err != nil {
		return err
	}
	return f.Close()
}

// smokeScript runs as the container's process: it checks the limits from
// inside, a device rule (WANT_KMSG: can a mknod'ed /dev/kmsg, 1:11, be
// opened for writing) and that forks beyond pids.max are refused.
const smokeScript = `set -e
m=$(cat /sys/fs/cgroup/memory.max); p=$(cat /sys/fs/cgroup/pids.max)
echo "memory.max=$m pids.max=$p"
[ "$m" = 67108864 ] && [ "$p" = 32 ] || { echo "wrong limits"; exit 1; }
grep ' /sys/fs/cgroup ' /proc/mounts
echo ok > /dev/null
mknod /dev/kmsgtest c 1 11
if echo "berth-vm: device rule allows 1:11 w" 2>/dev/null > /dev/kmsgtest; then got=allow; else got=deny; fi
echo "open /dev/kmsgtest (1:11) for write: $got, want $WANT_KMSG"
[ "$got" = "$WANT_KMSG" ]
( i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done ) 2>/dev/null || true
c=$(cat /sys/fs/cgroup/pids.current); e=$(cat /sys/fs/cgroup/pids.events)
echo "pids.current=$c pids.events: $e"
[ "$c" -le 32 ]
[ "${e#max }" -gt 0 ]
kill $(pidof sleep) 2>/dev/null || true
echo SMOKE-OK
`

// oomScript makes a child use more than memory.max; the child, not the
// container's init, must be OOM-killed and counted in memory.events.
const oomScript = `sh -c 'x=$(head -c 200000000 /dev/zero | tr "\000" a); echo survived'
rc=$?
echo "memory hog exited $rc"
cat /sys/fs/cgroup/memory.events
[ $rc -eq 137 ] || exit 1
grep -q '^oom_kill [1-9]' /sys/fs/cgroup/memory.events || exit 1
echo OOM-OK
`

// vmBundles returns the config.json of each bundle the VM runs; all share
// /rootfs, the busybox root filesystem.
func vmBundles() map[string]*specs.Spec {
	mk := func(name, script string, withCgroupNS bool, memory int64, env ...string) *specs.Spec {
		s := fixture.DefaultSpec()
		s.Root.Path = "/rootfs"
		s.Process.Args = []string{"sh", "-c", script}
		s.Process.Env = append(s.Process.Env, env...)
		for _, set := range []*[]string{&s.Process.Capabilities.Bounding, &s.Process.Capabilities.Effective, &s.Process.Capabilities.Permitted} {
			*set = append(*set, "CAP_MKNOD")
		}
		if withCgroupNS {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		}
		s.Linux.CgroupsPath = "/vmtest/" + name
		pids := int64(32)
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &memory}
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
		return s
	}
	ns := mk("smoke-cgroupns", smokeScript, true, 64<<20, "WANT_KMSG=allow")
	kmsg := int64(11)
	ns.Linux.Resources.Devices = append(ns.Linux.Resources.Devices,
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: p64(1), Minor: &kmsg, Access: "w"})
	return map[string]*specs.Spec{
		"smoke-cgroupns": ns,
		"smoke-bind":     mk("smoke-bind", smokeScript, false, 64<<20, "WANT_KMSG=deny"),
		"oom":            mk("oom", oomScript, true, 32<<20),
	}
}

func p64(v int64) *int64 { return &v }

// runVM boots the VM and returns its serial console output, streamed to the
// test log line by line. qemu is killed (by pid) if it outlives vmTimeout.
func runVM(t *testing.T, kernel, initrd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBinary,
		"-accel", "tcg,thread=multi", "-cpu", "max", "-m", "1024", "-smp", "2",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-monitor", "none",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 edd=off panic=-1 oops=panic cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 loglevel=4 rdinit=/init")
	cmd.WaitDelay = 5 * time.Second
	// If this test binary dies (go test's own timeout), qemu goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := ansiEscape.ReplaceAllString(strings.TrimRight(sc.Text(), "\r"), "")
		out.WriteString(line + "\n")
		t.Log(line)
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("VM timed out after %v; qemu (pid %d) killed", vmTimeout, cmd.Process.Pid)
	}
	if err != nil {
		t.Errorf("qemu: %v", err)
	}
	return out.String()
}

// ansiEscape matches the terminal control sequences the firmware prints.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

var testLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// checkOutput fails the test unless the VM printed the PASS marker, no
// FAIL, and every required v2 test ran and passed.
func checkOutput(t *testing.T, out string) {
	t.Helper()
	results := map[string]string{}
	var passed []string
	for _, line := range strings.Split(out, "\n") {
		if m := testLine.FindStringSubmatch(line); m != nil {
			results[m[2]] = m[1]
			if m[1] == "PASS" && strings.HasPrefix(m[2], "TestV2") {
				passed = append(passed, m[2])
			}
		}
	}
	t.Logf("v2 tests passed in the VM: %s", strings.Join(passed, " "))
	for _, name := range requiredV2 {
		if r := results[name]; r != "PASS" {
			t.Errorf("%s in the VM: %q, want PASS", name, r)
		}
	}
	for name, r := range results {
		if r == "FAIL" {
			t.Errorf("%s failed in the VM", name)
		}
	}
	switch {
	case strings.Contains(out, failMarker):
		t.Errorf("the VM reported failure: %s", lineWith(out, failMarker))
	case !strings.Contains(out, passMarker):
		t.Errorf("the VM printed no %q line", passMarker)
	}
}

func lineWith(out, s string) string {
	i := strings.Index(out, s)
	line, _, _ := strings.Cut(out[i:], "\n")
	return line
}
