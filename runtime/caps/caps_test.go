package caps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	envMode = "BERTH_CAPS_HELPER"
	envSpec = "BERTH_CAPS_HELPER_SPEC"
	envUID  = "BERTH_CAPS_HELPER_UID"
)

// TestHelperProcess is not a test: it is the child the tests below re-exec,
// so that capability changes never touch the test binary itself.
//
//	mode "status": apply, then print this thread's /proc/thread-self/status
//	mode "exec":   apply (optionally as another uid), then exec /bin/sh
//	mode "apply":  apply and print only the error, if any
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envMode)
	if mode == "" {
		return
	}
	// Credentials are per thread: do everything, and exec, from this one.
	runtime.LockOSThread()
	var c specs.LinuxCapabilities
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &c); err != nil {
		fail(err)
	}
	s, err := New(&c)
	if err != nil {
		fail(err)
	}
	if err := s.DropBounding(); err != nil {
		fail(err)
	}
	if uid := os.Getenv(envUID); uid != "" {
		id, _ := strconv.Atoi(uid)
		if err := KeepCaps(true); err != nil {
			fail(err)
		}
		// Raw syscalls: this thread only (syscall.Setresuid would change
		// every thread, and the others lack KEEPCAPS).
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			fail(e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
			fail(e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
			fail(e)
		}
		if err := KeepCaps(false); err != nil {
			fail(err)
		}
	}
	err = s.Apply()
	switch mode {
	case "apply":
		if err != nil {
			fmt.Print(err)
		}
		os.Exit(0)
	case "status":
		if err != nil {
			fail(err)
		}
		b, err := os.ReadFile("/proc/thread-self/status") // not self: that is the main thread
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(b)
		os.Exit(0)
	case "exec":
		if err != nil {
			fail(err)
		}
		err = syscall.Exec("/bin/sh", []string{"sh", "-c", "grep -E '^(Cap|Uid)' /proc/self/status"}, []string{"PATH=/usr/bin:/bin"})
		fail(err)
	}
	fail(fmt.Errorf("bad mode %q", mode))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(3)
}

func runHelper(t *testing.T, mode string, c *specs.LinuxCapabilities, uid string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("capability tests must run as root")
	}
	js, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envMode+"="+mode, envSpec+"="+string(js), envUID+"="+uid)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v: %s", mode, err, stderr.String())
	}
	return stdout.String()
}

// statusMasks parses the Cap* (and Uid) lines of a /proc status file.
func statusMasks(t *testing.T, status string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(k, "Cap"):
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatalf("bad %s line %q", k, line)
			}
			out[k] = n
		case k == "Uid":
			n, _ := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			out[k] = n
		}
	}
	return out
}

func bits(caps ...uint) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << c
	}
	return m
}

func check(t *testing.T, got map[string]uint64, want map[string]uint64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing from status", k)
		} else if g != w {
			t.Errorf("%s = %016x (%v), want %016x (%v)", k, g, mask(g).names(), w, mask(w).names())
		}
	}
}

// ownBounding is the bounding set the tests start from (on this VM it lacks
// CAP_SYS_RESOURCE).
func ownBounding(t *testing.T) mask {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return mask(statusMasks(t, string(b))["CapBnd"])
}

func TestApplySets(t *testing.T) {
	c := &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE"},
		Effective:   []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"},
		Permitted:   []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"},
		Inheritable: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
		Ambient:     []string{"CAP_NET_BIND_SERVICE"},
	}
	got := statusMasks(t, runHelper(t, "status", c, ""))
	check(t, got, map[string]uint64{
		"CapBnd": bits(unix.CAP_CHOWN, unix.CAP_NET_BIND_SERVICE, unix.CAP_KILL, unix.CAP_AUDIT_WRITE),
		"CapEff": bits(unix.CAP_CHOWN, unix.CAP_NET_BIND_SERVICE),
		"CapPrm": bits(unix.CAP_CHOWN, unix.CAP_NET_BIND_SERVICE, unix.CAP_KILL),
		"CapInh": bits(unix.CAP_NET_BIND_SERVICE, unix.CAP_KILL),
		"CapAmb": bits(unix.CAP_NET_BIND_SERVICE),
	})
}

func TestBoundingDropSurvivesExec(t *testing.T) {
	// Everything this process may have, minus CAP_SYS_MODULE.
	keep := ownBounding(t) &^ (1 << unix.CAP_SYS_MODULE)
	names := keep.names()
	c := &specs.LinuxCapabilities{Bounding: names, Effective: names, Permitted: names}
	got := statusMasks(t, runHelper(t, "exec", c, ""))
	// Root's execve recomputes permitted from the bounding set; the dropped
	// capability must not come back anywhere.
	check(t, got, map[string]uint64{"CapBnd": uint64(keep), "CapPrm": uint64(keep), "CapEff": uint64(keep), "Uid": 0})
	if got["CapBnd"]&(1<<unix.CAP_SYS_MODULE) != 0 {
		t.Error("CAP_SYS_MODULE back in the bounding set after exec")
	}
}

func TestAmbientNonRootAcrossExec(t *testing.T) {
	nb := []string{"CAP_NET_BIND_SERVICE"}
	c := &specs.LinuxCapabilities{Bounding: nb, Effective: nb, Permitted: nb, Inheritable: nb, Ambient: nb}
	got := statusMasks(t, runHelper(t, "exec", c, "1000"))
	b := bits(unix.CAP_NET_BIND_SERVICE)
	check(t, got, map[string]uint64{"Uid": 1000, "CapAmb": b, "CapEff": b, "CapPrm": b, "CapInh": b, "CapBnd": b})
}

func TestNonRootWithoutAmbientLosesCaps(t *testing.T) {
	// The control for the test above: without ambient, a non-root exec
	// ends with nothing effective.
	nb := []string{"CAP_NET_BIND_SERVICE"}
	c := &specs.LinuxCapabilities{Bounding: nb, Effective: nb, Permitted: nb, Inheritable: nb}
	got := statusMasks(t, runHelper(t, "exec", c, "1000"))
	check(t, got, map[string]uint64{"Uid": 1000, "CapAmb": 0, "CapEff": 0, "CapPrm": 0})
}

func TestAllCapabilities(t *testing.T) {
	all := Known()
	c := &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all, Inheritable: all, Ambient: all}
	out := runHelper(t, "apply", c, "")
	missing := mask(bits(func() []uint {
		var v []uint
		for _, n := range all {
			v = append(v, names[n])
		}
		return v
	}()...)) &^ ownBounding(t)
	if missing == 0 {
		if out != "" {
			t.Fatalf("applying every capability failed: %s", out)
		}
		return
	}
	// This host's bounding set lacks some capabilities (on the Berth VM:
	// CAP_SYS_RESOURCE), so asking for all of them must fail, saying which
	// set and which capabilities.
	t.Logf("host bounding set lacks %v; Apply said: %s", missing.names(), out)
	for _, w := range append([]string{"operation not permitted", "permitted set"}, missing.names()...) {
		if !strings.Contains(out, w) {
			t.Errorf("error %q does not mention %q", out, w)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    specs.LinuxCapabilities
		want []string
	}{
		{"unknown", specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_FOO"}, Ambient: []string{"CAP_BAR"}}, []string{"CAP_FOO", "CAP_BAR"}},
		{"no prefix", specs.LinuxCapabilities{Effective: []string{"NET_ADMIN"}}, []string{"NET_ADMIN"}},
		{"effective not permitted", specs.LinuxCapabilities{Effective: []string{"CAP_KILL"}}, []string{"effective", "CAP_KILL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(&tt.c)
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewIgnoresCapsNewerThanKernel(t *testing.T) {
	saved := lastCap
	defer func() { lastCap = saved }()
	lastCap = func() uint { return unix.CAP_AUDIT_READ } // a 5.7-era kernel minus PERFMON, BPF, CR
	s, err := New(&specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_BPF", "CAP_PERFMON"},
		Permitted: []string{"CAP_BPF", "CAP_CHECKPOINT_RESTORE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.bounding != mask(bits(unix.CAP_CHOWN)) || s.permitted != 0 {
		t.Errorf("bounding %v permitted %v", s.bounding.names(), s.permitted.names())
	}
	if fmt.Sprint(s.Ignored()) != "[CAP_BPF CAP_PERFMON CAP_CHECKPOINT_RESTORE]" {
		t.Errorf("Ignored = %v", s.Ignored())
	}
	if k := Known(); len(k) != int(unix.CAP_AUDIT_READ)+1 {
		t.Errorf("Known with an older kernel = %v", k)
	}
}

func TestKnown(t *testing.T) {
	k := Known()
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	want := last + 1
	if want > len(names) {
		want = len(names) // a kernel newer than this package
	}
	if len(k) != want || k[0] != "CAP_CHOWN" {
		t.Errorf("Known() = %v (%d), want %d names from CAP_CHOWN", k, len(k), want)
	}
	// Every name round-trips through New.
	if _, err := New(&specs.LinuxCapabilities{Bounding: k}); err != nil {
		t.Error(err)
	}
}

func TestKeepCaps(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	get := func() int {
		r, err := unix.PrctlRetInt(unix.PR_GET_KEEPCAPS, 0, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if err := KeepCaps(true); err != nil {
		t.Fatal(err)
	}
	if get() != 1 {
		t.Error("KEEPCAPS not set")
	}
	if err := KeepCaps(false); err != nil {
		t.Fatal(err)
	}
	if get() != 0 {
		t.Error("KEEPCAPS not cleared")
	}
}

func TestAmbientOutsideInheritableIsDropped(t *testing.T) {
	s, err := New(&specs.LinuxCapabilities{Permitted: []string{"CAP_KILL", "CAP_CHOWN"}, Inheritable: []string{"CAP_CHOWN"}, Ambient: []string{"CAP_KILL", "CAP_CHOWN"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ambient.names(); len(got) != 1 || got[0] != "CAP_CHOWN" {
		t.Fatalf("ambient = %v, want [CAP_CHOWN]", got)
	}
}
