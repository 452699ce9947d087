package security

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

func withSeccomp(sc *specs.LinuxSeccomp) testutil.Option {
	return testutil.WithSpec(func(s *specs.Spec) { s.Linux.Seccomp = sc })
}

var seccompArches = []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM}

// TestSeccompErrnoRule loads a profile that allows everything but mkdir,
// which fails with errnoRet 38 (ENOSYS), in the container's first process
// and in an exec'd one.
//
// Defense: the seccomp filter loaded by init.go before execve. Without it
// mkdir succeeds and this test fails.
func TestSeccompErrnoRule(t *testing.T) {
	rt := setup(t)
	enosys := uint(38)
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: seccompArches,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	script := `mkdir /made; /attacker mkdir /made2; touch /touched && echo touched; ls -d /made /made2 2>/dev/null | wc -l`
	out := runScript(t, rt, script, withSeccomp(sc))
	expectLines(t, out, "mkdir: can't create directory '/made': Function not implemented", "errno ENOSYS", "touched", "0")

	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), withSeccomp(sc))
	installAttacker(t, b.Rootfs)
	id := testutil.UniqueName(t)
	rt.MustRun("run", "--detach", "--bundle", b.Dir, id)
	t.Cleanup(func() { rt.Run("delete", "--force", id) })
	out, _, err := rt.Run("exec", id, "/attacker", "mkdir", "/exec-made")
	if err != nil {
		t.Fatal(err)
	}
	expectLines(t, out, "errno ENOSYS")
}

// TestSeccompAllowlist loads a default-deny profile (defaultAction ERRNO,
// EPERM) that allows what busybox needs to run echo and ls: mkdir and
// chmod, not listed, fail with EPERM.
//
// Defense: as for TestSeccompErrnoRule.
func TestSeccompAllowlist(t *testing.T) {
	rt := setup(t)
	allowed := []string{
		"read", "write", "open", "openat", "close", "stat", "fstat", "lstat", "newfstatat", "statx",
		"poll", "lseek", "mmap", "mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask",
		"rt_sigreturn", "ioctl", "pread64", "readv", "writev", "access", "pipe", "pipe2", "dup", "dup2",
		"dup3", "nanosleep", "getpid", "fork", "vfork", "clone", "clone3", "execve", "exit", "wait4",
		"kill", "uname", "fcntl", "getdents64", "getcwd", "chdir", "getuid", "getgid", "geteuid",
		"getegid", "getppid", "getpgrp", "setpgid", "getrlimit", "prlimit64", "arch_prctl",
		"set_tid_address", "set_robust_list", "futex", "exit_group", "rseq", "getrandom",
		"sigaltstack", "gettid", "tgkill", "faccessat", "faccessat2", "readlink", "readlinkat",
		"sysinfo", "umask", "clock_gettime", "gettimeofday", "getpgid", "setsid", "setresuid", "setresgid",
	}
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: seccompArches,
		Syscalls:      []specs.LinuxSyscall{{Names: allowed, Action: specs.ActAllow}},
	}
	out := runScript(t, rt, `echo alive; ls -d /bin; mkdir /made; chmod 700 /tmp; exit 0`, withSeccomp(sc))
	expectLines(t, out, "alive", "/bin",
		"mkdir: can't create directory '/made': Operation not permitted",
		"chmod: /tmp: Operation not permitted")
}

// capsScript tries what the default capability sets must not allow. The
// clock is "set" to the time it already shows, and the module is the
// attacker binary (no module at all), so a success changes nothing.
const capsScript = `
mkdir -p /mnt
echo "finit_module $(/attacker finit_module)"
echo "delete_module $(/attacker delete_module)"
if insmod /attacker >/dev/null 2>&1; then echo "insmod allowed"; else echo "insmod denied: $(insmod /attacker 2>&1 | tail -1)"; fi
echo "settime $(/attacker settime)"
echo "rawsock $(/attacker rawsock)"
if ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1; then echo "ping allowed"; else echo "ping failed"; fi
if mount -t tmpfs none /mnt 2>/dev/null; then echo "mount allowed"; else echo "mount denied"; fi
`

// TestDefaultCapabilitiesDeny runs capsScript with runc's default
// capabilities (AUDIT_WRITE, KILL, NET_BIND_SERVICE) and Docker's 14: no
// module loading, no clock setting, no mounting; raw sockets only with
// Docker's CAP_NET_RAW. (ping also fails because the container's loopback
// is down; the raw socket probe is what tells the capability apart.)
//
// Defense: the capability sets applied by init.go. With the runtime's own
// capabilities left in place this test fails.
func TestDefaultCapabilitiesDeny(t *testing.T) {
	rt := setup(t)
	// A kernel without module support answers ENOSYS before it looks at
	// capabilities; then the module probes only show that.
	_, err := os.Stat("/proc/modules")
	modules := err == nil
	if !modules {
		t.Log("kernel without CONFIG_MODULES: module loading is impossible here, whatever the capabilities")
	}
	for name, caps := range map[string][]string{"runc-default-caps": nil, "docker-default-caps": dockerCaps} {
		t.Run(name, func(t *testing.T) {
			var opts []testutil.Option
			if caps != nil {
				opts = append(opts, withCaps(caps...))
			}
			out := runScript(t, rt, capsScript, opts...)
			if modules {
				expectLines(t, out, "finit_module errno EPERM", "delete_module errno EPERM",
					"insmod denied: insmod: can't insert '/attacker': Operation not permitted")
			} else {
				expectLines(t, out, "finit_module errno ENOSYS", "delete_module errno ENOSYS")
			}
			expectLines(t, out, "settime errno EPERM", "mount denied")
			if slices.Contains(caps, "CAP_NET_RAW") {
				// The same probe succeeds with the capability: it is not
				// failing for some other reason.
				expectLines(t, out, "rawsock ok")
			} else {
				expectLines(t, out, "rawsock errno EPERM", "ping failed")
			}
		})
	}
}

// TestCannotPtraceHostProcess shares the host's pid namespace (so a host
// process is addressable at all) and tries PTRACE_ATTACH on a process the
// test started on the host as root, with runc's and Docker's default
// capabilities.
//
// Defense: no CAP_SYS_PTRACE (the kernel then refuses a tracer whose
// capabilities are not a superset of the target's). With the runtime's
// own capabilities left in place the attach succeeds and this test fails.
func TestCannotPtraceHostProcess(t *testing.T) {
	rt := setup(t)
	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	pid := strconv.Itoa(sleeper.Process.Pid)
	for name, caps := range map[string][]string{"runc-default-caps": nil, "docker-default-caps": dockerCaps} {
		t.Run(name, func(t *testing.T) {
			opts := []testutil.Option{testutil.WithNamespaces(specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace)}
			if caps != nil {
				opts = append(opts, withCaps(caps...))
			}
			out := runScript(t, rt, `[ -d /proc/`+pid+` ] && echo visible; echo "ptrace $(/attacker ptrace `+pid+`)"`, opts...)
			expectLines(t, out, "visible", "ptrace errno EPERM")
		})
	}
}
