package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/mountinfo"
	"github.com/berth-dev/berth/runtime/nsenter"
	"github.com/berth-dev/berth/runtime/rawio"
	"github.com/berth-dev/berth/runtime/seccomp"
	"github.com/berth-dev/berth/runtime/wire"
)

// Init is the Go half of a container process, entered after nsenter.c
// built its namespaces. It sets up the container from inside and execs the
// user's program; it never returns.
func Init() {
	fd, _ := strconv.Atoi(os.Getenv(nsenter.EnvInitPipe))
	os.Unsetenv(nsenter.EnvInitPipe)
	sock := os.NewFile(uintptr(fd), "init")
	err := initMain(sock)
	// Before the start signal the runtime is listening; after it, only
	// the container's stderr is.
	if werr := writeMsg(sock, nsenter.MsgError, []byte(err.Error())); werr != nil {
		fmt.Fprintf(os.Stderr, "berth-runtime: %v\n", err)
	}
	os.Exit(127)
}

func initMain(sock *os.File) error {
	payload, err := expectMsg(sock, msgConfig)
	if err != nil {
		return err
	}
	cfg := &initConfig{}
	if err := wire.Unmarshal(payload, cfg); err != nil {
		return fmt.Errorf("decode init config: %w", err)
	}
	if cfg.HasSeccomp {
		b, err := expectMsg(sock, msgSeccomp)
		if err != nil {
			return err
		}
		cfg.Seccomp = new(seccomp.Filter)
		if err := cfg.Seccomp.UnmarshalBinary(b); err != nil {
			return err
		}
	}
	if cfg.Exec {
		return initExec(sock, cfg)
	}
	return initContainer(sock, cfg)
}

func initContainer(sock *os.File, cfg *initConfig) error {
	if cfg.Spec == nil {
		return errors.New("init config without a spec")
	}
	spec := cfg.Spec.spec()
	// Keyrings are not namespaced: without a session keyring of its own the
	// container would share the caller's keys.
	if !cfg.NoNewKeyring {
		if _, err := unix.KeyctlJoinSessionKeyring("_ses." + cfg.ID); err != nil && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("join a new session keyring: %w", err)
		}
	}
	if err := setupRootfs(sock, cfg, spec); err != nil {
		return err
	}
	p := spec.Process
	if p.Terminal {
		if err := setupConsole(cfg.ConsoleFd, p.ConsoleSize, true); err != nil {
			return err
		}
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("set domainname %q: %w", spec.Domainname, err)
		}
	}
	if spec.Linux != nil {
		for k, v := range spec.Linux.Sysctl {
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := rawio.WriteFile(path, []byte(v)); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
		}
		if err := readonlyPaths(spec.Linux.ReadonlyPaths); err != nil {
			return err
		}
		if err := maskPaths(spec.Linux.MaskedPaths); err != nil {
			return err
		}
	}
	if spec.Root.Readonly {
		if err := remountReadonly("/"); err != nil {
			return fmt.Errorf("make rootfs read-only: %w", err)
		}
	}
	proc, err := prepareProcess(p, cfg.Seccomp)
	if err != nil {
		return err
	}
	if err := writeMsg(sock, msgReady, nil); err != nil {
		return err
	}
	if cfg.FifoFd >= 0 {
		// Blocks until `start` opens the fifo for reading.
		fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(cfg.FifoFd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open exec fifo: %w", err)
		}
		if _, err := unix.Write(fd, []byte{0}); err != nil {
			return fmt.Errorf("write exec fifo: %w", err)
		}
		// fd stays open, close-on-exec: `start` waits for its EOF, the
		// sign that the program runs, before the poststart hooks.
		sock.Close()
	}
	if spec.Hooks != nil && len(spec.Hooks.StartContainer) > 0 {
		st := specs.State{Version: specs.Version, ID: cfg.ID, Status: Running, Pid: os.Getpid(), Bundle: cfg.Bundle, Annotations: spec.Annotations}
		if err := runHooks("startContainer", spec.Hooks.StartContainer, st); err != nil {
			return err
		}
	}
	return proc.exec(cfg.PreserveFds)
}

func setupRootfs(sock *os.File, cfg *initConfig, spec *specs.Spec) error {
	propagation := ""
	if spec.Linux != nil {
		propagation = spec.Linux.RootfsPropagation
	}
	// Still the host's mount table: read once, for the rootfs's parent
	// mount and the cgroup hierarchies.
	hostMounts, err := mountinfo.Read()
	if err != nil {
		return err
	}
	if err := prepareRoot(cfg.Rootfs, propagation, hostMounts); err != nil {
		return err
	}
	r, err := openRootfs(cfg.Rootfs, cfg.CgroupPaths, cfg.CgroupNS, hostMounts)
	if err != nil {
		return err
	}
	defer r.close()
	if err := r.mountAll(spec.Mounts); err != nil {
		return err
	}
	devBound, devpts := false, false
	for _, m := range spec.Mounts {
		dest := filepath.Clean(m.Destination)
		if dest == "/dev" && (m.Type == "bind" || hasOption(m.Options, "bind") || hasOption(m.Options, "rbind")) {
			devBound = true
		}
		if dest == "/dev/pts" && m.Type == "devpts" {
			devpts = true
		}
	}
	if !devBound {
		if err := r.createDevices(devicesFor(spec), cfg.NewUserNS); err != nil {
			return err
		}
		if err := r.devSymlinks(); err != nil {
			return err
		}
		if devpts {
			if err := r.setupPtmx(); err != nil {
				return err
			}
		}
	}
	if cfg.Process == nil && spec.Process != nil && spec.Process.Cwd != "" {
		d, err := r.mkdirIn(spec.Process.Cwd, 0o755)
		if err != nil {
			return fmt.Errorf("create cwd %s: %w", spec.Process.Cwd, err)
		}
		d.Close()
	}
	if cfg.SyncHooks {
		if err := writeMsg(sock, msgHooks, nil); err != nil {
			return err
		}
		if _, err := expectMsg(sock, msgHooksDone); err != nil {
			return err
		}
	}
	if spec.Hooks != nil && len(spec.Hooks.CreateContainer) > 0 {
		st := specs.State{Version: specs.Version, ID: cfg.ID, Status: Creating, Pid: os.Getpid(), Bundle: cfg.Bundle, Annotations: spec.Annotations}
		if err := runHooks("createContainer", spec.Hooks.CreateContainer, st); err != nil {
			return err
		}
	}
	if cfg.NoPivot {
		return moveRoot(cfg.Rootfs)
	}
	return pivotRoot(cfg.Rootfs)
}

func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

func initExec(sock *os.File, cfg *initConfig) error {
	p := cfg.Process
	if p.Terminal {
		if err := setupConsole(cfg.ConsoleFd, p.ConsoleSize, false); err != nil {
			return err
		}
	}
	proc, err := prepareProcess(p, cfg.Seccomp)
	if err != nil {
		return err
	}
	if err := writeMsg(sock, msgReady, nil); err != nil {
		return err
	}
	// sock is close-on-exec: the runtime reads EOF when execve succeeds.
	return proc.exec(cfg.PreserveFds)
}

// process is a user process ready to exec once the walls are final.
type process struct {
	spec   *specs.Process
	path   string
	caps   *caps.Set
	filter *seccomp.Filter
}

// prepareProcess does everything that can fail in a way the runtime should
// report before the container counts as created: rlimits, the executable's
// lookup, capability names.
func prepareProcess(p *specs.Process, filter *seccomp.Filter) (*process, error) {
	if len(p.Args) == 0 {
		return nil, errors.New("process.args must not be empty")
	}
	for _, rl := range p.Rlimits {
		res, ok := rlimitTypes[rl.Type]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return nil, fmt.Errorf("set rlimit %s soft=%d hard=%d: %w", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	p.Env = withHome(dedupEnv(p.Env), p.User.UID)
	proc := &process{spec: p}
	var err error
	if proc.path, err = lookPath(p.Args[0], p.Env); err != nil {
		return nil, err
	}
	if proc.caps, err = caps.New(p.Capabilities); err != nil {
		return nil, err
	}
	// Still root with every capability the runtime has: a request beyond
	// them fails here, while create can still report it and clean up.
	if err := proc.caps.Verify(); err != nil {
		return nil, err
	}
	proc.filter = filter
	return proc, nil
}

// exec drops privileges in the order the kernel requires and replaces
// this process with the user's program. Runs on the locked main thread:
// capabilities, keepcaps and no_new_privs are per-thread.
func (proc *process) exec(preserveFds int) error {
	p := proc.spec
	// Without no_new_privs only CAP_SYS_ADMIN lets us install a filter, so
	// it goes in before the capabilities are dropped.
	if proc.filter != nil && !p.NoNewPrivileges {
		if err := proc.filter.Load(); err != nil {
			return err
		}
	}
	if err := proc.caps.DropBounding(); err != nil {
		return err
	}
	if err := caps.KeepCaps(true); err != nil {
		return err
	}
	if p.Cwd != "" {
		// As root first: the user may not be able to reach its own cwd's parents.
		unix.Chdir(p.Cwd)
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if err := caps.KeepCaps(false); err != nil {
		return err
	}
	if err := proc.caps.Apply(); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if p.Cwd != "" {
		if err := unix.Chdir(p.Cwd); err != nil {
			return fmt.Errorf("chdir to cwd %q: %w", p.Cwd, err)
		}
	}
	// A working directory reached through a leaked fd would lie outside
	// the container's root (CVE-2024-21626): refuse to start there.
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("current working directory is outside the container (%q)", wd)
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	}
	if err := closeExtraFds(3 + preserveFds); err != nil {
		return err
	}
	if proc.filter != nil && p.NoNewPrivileges {
		if err := proc.filter.Load(); err != nil {
			return err
		}
	}
	if err := unix.Exec(proc.path, p.Args, p.Env); err != nil {
		return fmt.Errorf("exec %q: %w", p.Args[0], err)
	}
	return nil
}

func setUser(u specs.User) error {
	groups := make([]int, 0, len(u.AdditionalGids))
	for _, g := range u.AdditionalGids {
		groups = append(groups, int(g))
	}
	if err := unix.Setgroups(groups); err != nil && !(errors.Is(err, unix.EPERM) && len(groups) == 0) {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := unix.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := unix.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	return nil
}

// closeExtraFds marks every descriptor from min up close-on-exec, so that
// nothing of the runtime's reaches the container (CVE-2024-21626 class).
func closeExtraFds(min int) error {
	if err := unix.CloseRange(uint(min), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list fds: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < min {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

// dedupEnv keeps one entry per name, as setenv in order would: the last
// value wins, in the place of the first. execve passes duplicates through,
// and getenv(3) would then see the first (`exec --env TERM=dumb` must
// override the config's TERM).
func dedupEnv(env []string) []string {
	pos := map[string]int{}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := pos[k]; ok {
			out[i] = kv
			continue
		}
		pos[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// withHome adds HOME when the process has none, as runc does: the user's
// directory from the container's /etc/passwd (we are inside its root by
// now), or "/". The file is read only if it is a regular file: a fifo
// planted by the image must not hang the runtime.
func withHome(env []string, uid uint32) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			return env
		}
	}
	home := "/"
	want := strconv.FormatUint(uint64(uid), 10)
	for _, line := range strings.Split(string(readPasswd()), "\n") {
		// name:password:uid:gid:gecos:home:shell
		if fl := strings.Split(line, ":"); len(fl) >= 6 && fl[2] == want && fl[5] != "" {
			home = fl[5]
			break
		}
	}
	return append(env, "HOME="+home)
}

// readPasswd returns the first MiB of the container's /etc/passwd if it is
// a regular file (opened non-blocking: a fifo planted by the image must
// not hang the runtime), else nil.
func readPasswd() []byte {
	fd, err := unix.Open("/etc/passwd", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	buf := make([]byte, min(max(st.Size, 512)+1, 1<<20))
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	return buf[:n]
}

// lookPath resolves the program the way execvp would, with the
// container's PATH, inside the container's root.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return "", fmt.Errorf("exec: %q: %w", file, err)
		}
		return file, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func checkExecutable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return errors.New("permission denied")
	}
	return nil
}

var rlimitTypes = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}
