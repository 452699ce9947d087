package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	envSpec   = "BERTH_SECCOMP_HELPER_SPEC"
	envProbes = "BERTH_SECCOMP_HELPER_PROBES"
	envDir    = "BERTH_SECCOMP_HELPER_DIR"
)

func u(v uint) *uint { return &v }

// probes are the syscalls the helper can make after loading a filter. Each
// returns the errno (0 on success).
var probes = map[string]func() unix.Errno{
	"getcwd": func() unix.Errno {
		buf := make([]byte, 4096)
		_, err := unix.Getcwd(buf)
		return errnoOf(err)
	},
	"mkdir": func() unix.Errno {
		return errnoOf(unix.Mkdirat(unix.AT_FDCWD, filepath.Join(os.Getenv(envDir), "d"), 0o700))
	},
	"getpid": func() unix.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
		return e
	},
	"personality_query": func() unix.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
		return e
	},
	"personality_linux": func() unix.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, 0 /* PER_LINUX */, 0, 0)
		return e
	},
	"socket_inet_stream":  sock(unix.AF_INET, unix.SOCK_STREAM),
	"socket_inet_dgram":   sock(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC),
	"socket_inet6_stream": sock(unix.AF_INET6, unix.SOCK_STREAM),
	"socket_unix_stream":  sock(unix.AF_UNIX, unix.SOCK_STREAM),
}

func sock(domain, typ int) func() unix.Errno {
	return func() unix.Errno {
		fd, err := unix.Socket(domain, typ, 0)
		if err == nil {
			unix.Close(fd)
		}
		return errnoOf(err)
	}
}

func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if err == nil || !errors.As(err, &e) {
		return 0
	}
	return e
}

// TestHelperProcess is not a test: it is the child that the tests below
// re-exec. It sets no_new_privs, loads the filter from envSpec and runs the
// probes named in envProbes, printing "probe=errno" lines.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(envSpec) == "" {
		return
	}
	runtime.LockOSThread() // without TSYNC only this thread is filtered
	var c specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &c); err != nil {
		fail(err)
	}
	f, err := Compile(&c)
	if err != nil {
		fail(err)
	}
	// No core files from the KILL tests.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		fail(err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail(err)
	}
	// Format everything before loading: the filter may deny what fmt needs.
	names := strings.Split(os.Getenv(envProbes), ",")
	results := make([]unix.Errno, len(names))
	if err := f.Load(); err != nil {
		fail(err)
	}
	for i, n := range names {
		results[i] = probes[n]()
	}
	var out bytes.Buffer
	for i, n := range names {
		fmt.Fprintf(&out, "%s=%d\n", n, int(results[i]))
	}
	os.Stdout.Write(out.Bytes())
	os.Exit(0)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(3)
}

// runHelper runs the probes under c in a fresh process and returns each
// probe's errno, or the process state if it did not exit cleanly.
func runHelper(t *testing.T, c *specs.LinuxSeccomp, names ...string) (map[string]unix.Errno, *os.ProcessState) {
	t.Helper()
	if os.Getuid() != 0 {
		// no_new_privs makes loading work unprivileged, but the brief is
		// that these run as root; say so if they do not.
		t.Log("not root: relying on no_new_privs")
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if probes[n] == nil {
			t.Fatalf("no probe %q", n)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envSpec+"="+string(js), envProbes+"="+strings.Join(names, ","), envDir+"="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if ee.ExitCode() == 3 {
			t.Fatalf("helper failed: %s", stderr.String())
		}
		return nil, ee.ProcessState
	}
	res := map[string]unix.Errno{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad helper output %q (stderr %s)", stdout.String(), stderr.String())
		}
		n, _ := strconv.Atoi(v)
		res[k] = unix.Errno(n)
	}
	return res, cmd.ProcessState
}

func expect(t *testing.T, got map[string]unix.Errno, want map[string]unix.Errno) {
	t.Helper()
	if got == nil {
		t.Fatal("helper died")
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got errno %d (%v), want %d (%v)", k, int(got[k]), got[k], int(w), w)
		}
	}
}

func TestDeniedSyscallErrno(t *testing.T) {
	c := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getcwd"}, Action: specs.ActErrno, ErrnoRet: u(38)},
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}, // EPERM by default
		},
	}
	got, _ := runHelper(t, c, "getcwd", "mkdir", "getpid")
	expect(t, got, map[string]unix.Errno{"getcwd": unix.ENOSYS, "mkdir": unix.EPERM, "getpid": 0})
}

func TestArgumentConditions(t *testing.T) {
	c := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"},
		Syscalls: []specs.LinuxSyscall{
			// personality(0xffffffff) only.
			{Names: []string{"personality"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo},
			}},
			// AND over two arguments: AF_INET and (type & 0xf) == SOCK_DGRAM.
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: u(uint(unix.EAFNOSUPPORT)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo},
				{Index: 1, Value: 0xf, ValueTwo: unix.SOCK_DGRAM, Op: specs.OpMaskedEqual},
			}},
			// Two checks on arg 0 become two rules (ORed), as in runc.
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: u(uint(unix.EACCES)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: unix.AF_INET6, Op: specs.OpEqualTo},
				{Index: 0, Value: 0xffff, Op: specs.OpEqualTo},
			}},
		},
	}
	got, _ := runHelper(t, c, "personality_query", "personality_linux",
		"socket_inet_stream", "socket_inet_dgram", "socket_inet6_stream", "socket_unix_stream")
	expect(t, got, map[string]unix.Errno{
		"personality_query":   unix.EPERM,
		"personality_linux":   0,
		"socket_inet_stream":  0,
		"socket_inet_dgram":   unix.EAFNOSUPPORT,
		"socket_inet6_stream": unix.EACCES,
		"socket_unix_stream":  0,
	})
}

// goRuntimeSyscalls is what a Go program needs to keep running (and exit)
// once an allow-list filter is in place.
var goRuntimeSyscalls = []string{
	"read", "write", "close", "futex", "mmap", "munmap", "mprotect", "madvise", "brk",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "clone", "clone3",
	"gettid", "tgkill", "tkill", "getpid", "nanosleep", "clock_nanosleep", "clock_gettime",
	"sched_yield", "sched_getaffinity", "exit", "exit_group", "epoll_wait", "epoll_pwait",
	"epoll_ctl", "epoll_create1", "eventfd2", "pipe2", "fcntl", "openat", "fstat",
	"newfstatat", "getrandom", "setitimer", "timer_create", "timer_settime", "timer_delete",
	"restart_syscall", "socket", "prctl", "arch_prctl", "set_robust_list", "rseq",
}

func TestDefaultErrnoWithAllowList(t *testing.T) {
	c := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: u(uint(unix.ENOSYS)),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Flags:           []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"},
		Syscalls: []specs.LinuxSyscall{
			{Names: append(goRuntimeSyscalls, "some_future_syscall"), Action: specs.ActAllow},
			// Same as the default: skipped, not an error.
			{Names: []string{"getcwd"}, Action: specs.ActErrno, ErrnoRet: u(uint(unix.ENOSYS))},
			// Differs from the default by errno only: must be kept.
			{Names: []string{"mkdirat", "mkdir"}, Action: specs.ActErrno, ErrnoRet: u(uint(unix.EROFS))},
		},
	}
	if runtime.GOARCH != "amd64" {
		c.Architectures = nil
	}
	got, _ := runHelper(t, c, "getcwd", "mkdir", "getpid", "socket_unix_stream", "personality_linux")
	expect(t, got, map[string]unix.Errno{
		"getcwd":             unix.ENOSYS,
		"mkdir":              unix.EROFS,
		"getpid":             0,
		"socket_unix_stream": 0,
		"personality_linux":  unix.ENOSYS,
	})
}

func TestKillProcess(t *testing.T) {
	c := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getcwd"}, Action: specs.ActKillProcess}},
	}
	got, st := runHelper(t, c, "getpid", "getcwd")
	if got != nil {
		t.Fatalf("helper survived a KILL_PROCESS rule: %v", got)
	}
	ws := st.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Fatalf("helper ended with %v, want killed by SIGSYS", st)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		c    specs.LinuxSeccomp
		want []string // substrings of the error
	}{
		{"notify default", specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, []string{"seccomp notify not supported"}},
		{"notify rule", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mount"}, Action: specs.ActNotify}}}, []string{"seccomp notify not supported", "mount"}},
		{"listener", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock"}, []string{"seccomp notify not supported"}},
		{"wait killable", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}}, []string{"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "notify"}},
		{"unknown default", specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}, []string{"defaultAction", "SCMP_ACT_BOGUS"}},
		{"empty default", specs.LinuxSeccomp{}, []string{"unknown action"}},
		{"unknown rule action", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"chmod"}, Action: "SCMP_ACT_NOPE"}}}, []string{"chmod", "SCMP_ACT_NOPE"}},
		{"unknown arch", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}}, []string{"SCMP_ARCH_Z80"}},
		{"foreign endian arch", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchS390X}}, []string{"SCMP_ARCH_S390X"}},
		{"unknown flag", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FAST"}}, []string{"SECCOMP_FILTER_FLAG_FAST"}},
		{"unknown op", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_ISH"}}}}}, []string{"kill", "SCMP_CMP_ISH"}},
		{"bad index", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}, []string{"kill", "index 6"}},
		{"errnoRet on allow", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow, ErrnoRet: u(1)}}}, []string{"read", "errnoRet"}},
		{"defaultErrnoRet on kill", specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, DefaultErrnoRet: u(1)}, []string{"defaultAction", "errnoRet"}},
		{"errno too big", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"open"}, Action: specs.ActErrno, ErrnoRet: u(70000)}}}, []string{"open", "70000"}},
		{"no names", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Action: specs.ActErrno}}}, []string{"syscalls[0]", "no syscall names"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(&tt.c)
			if err == nil {
				t.Fatalf("Compile succeeded (%d insns), want error", f.Len())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	f, err := Compile(nil)
	if f != nil || err != nil {
		t.Fatalf("Compile(nil) = %v, %v; want nil, nil", f, err)
	}
	if err := f.Load(); err != nil {
		t.Fatalf("nil Filter Load: %v", err)
	}

	// Unknown syscalls are skipped, not an error; the rule's known names stay.
	c := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, "SECCOMP_FILTER_FLAG_TSYNC"},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "future_syscall_9000", "nul\x00name"}, Action: specs.ActAllow},
			{Names: []string{"socketcall"}, Action: specs.ActTrace, ErrnoRet: u(0xffff)},
			{Names: []string{"kill"}, Action: specs.ActLog},
			{Names: []string{"ptrace"}, Action: specs.ActTrap},
			{Names: []string{"reboot"}, Action: specs.ActKill},
			{Names: []string{"swapon"}, Action: specs.ActKillThread},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: unix.CLONE_NEWNS | unix.CLONE_NEWUSER, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			{Names: []string{"setns"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 1, Value: 0, Op: specs.OpNotEqual}, {Index: 1, Value: 10, Op: specs.OpLessThan},
				{Index: 1, Value: 10, Op: specs.OpLessEqual}, {Index: 1, Value: 1, Op: specs.OpGreaterThan},
				{Index: 1, Value: 1, Op: specs.OpGreaterEqual}}},
		},
	}
	f, err = Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"future_syscall_9000", "nul\x00name"}
	if fmt.Sprint(f.Skipped) != fmt.Sprint(want) {
		t.Errorf("Skipped = %q, want %q", f.Skipped, want)
	}
	if f.flags != unix.SECCOMP_FILTER_FLAG_LOG|unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW|unix.SECCOMP_FILTER_FLAG_TSYNC {
		t.Errorf("flags = %#x", f.flags)
	}
}

func TestSupported(t *testing.T) {
	actions, archs, flags := Supported()
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, a := range []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"} {
		if !has(actions, a) {
			t.Errorf("actions %v lack %s", actions, a)
		}
	}
	if has(actions, "SCMP_ACT_NOTIFY") {
		t.Error("SCMP_ACT_NOTIFY advertised but not supported")
	}
	if runtime.GOARCH == "amd64" && (!has(archs, "SCMP_ARCH_X86_64") || !has(archs, "SCMP_ARCH_X86")) {
		t.Errorf("archs %v", archs)
	}
	if !has(flags, "SECCOMP_FILTER_FLAG_TSYNC") {
		t.Errorf("flags %v", flags)
	}
	// Everything advertised must compile.
	for _, a := range archs {
		if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.Arch(a)}}); err != nil {
			t.Errorf("advertised arch %s: %v", a, err)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"],"syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"},{"index":0,"value":10,"op":"SCMP_CMP_EQ"}]}]}`,
		`{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}`,
		`{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/x"}`,
		`{"defaultAction":"SCMP_ACT_TRACE","defaultErrnoRet":65535,"syscalls":[{"names":[""],"action":"SCMP_ACT_LOG","args":[{"index":9,"op":"SCMP_CMP_GT"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c specs.LinuxSeccomp
		if json.Unmarshal(data, &c) != nil {
			return
		}
		flt, err := Compile(&c)
		if err == nil && flt.Len() == 0 {
			t.Fatal("Compile succeeded with an empty program")
		}
	})
}
