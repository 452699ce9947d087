package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/runtime/mountinfo"
)

// Engine system names.
const (
	SysBerth       = "berth"             // berthd + the berth CLI
	SysBerthDocker = "berthd+docker-cli" // berthd driven by the docker CLI
	SysDocker      = "docker"            // a private dockerd 20.10 + its CLI
	SysPodman      = "podman"            // podman with private roots
)

// DockerCLI is Debian's docker CLI 20.10, the one the issue measured (a
// newer docker may come first in $PATH).
var DockerCLI = "/usr/bin/docker"

// EngineConfig is what the engine scenarios need to start the engines.
type EngineConfig struct {
	// BinDir holds berthd, berth and berthd's sibling binaries (make build).
	BinDir string
	// Archive is the busybox docker-archive loaded into every engine as
	// busybox:latest.
	Archive string
	// BerthdArgs are extra berthd flags (e.g. --no-socket-redirect, to
	// measure published ports without the BPF fast path).
	BerthdArgs []string
}

// EngineSystems returns berth (berthd with the berth CLI), berthd with the
// docker CLI, and the anchors docker (a private dockerd) and podman.
func EngineSystems(cfg EngineConfig) []System {
	systems := []System{
		{Name: SysBerth, Binary: filepath.Join(cfg.BinDir, "berth")},
		{Name: SysBerthDocker, Binary: DockerCLI},
		{Name: SysDocker, Binary: DockerCLI, Anchor: true},
		{Name: SysPodman, Binary: "podman", Anchor: true},
	}
	need := map[string][]string{
		SysBerth:       {filepath.Join(cfg.BinDir, "berth"), filepath.Join(cfg.BinDir, "berthd")},
		SysBerthDocker: {DockerCLI, filepath.Join(cfg.BinDir, "berthd")},
		SysDocker:      {DockerCLI, "dockerd", "containerd"},
		SysPodman:      {"podman", "conmon"},
	}
	for i := range systems {
		for _, b := range need[systems[i].Name] {
			if _, err := exec.LookPath(b); err != nil {
				systems[i].Missing = fmt.Sprintf("binary %q not found", b)
				break
			}
		}
		if p, err := filepath.Abs(systems[i].Binary); err == nil && strings.Contains(systems[i].Binary, "/") {
			systems[i].Binary = p
		}
	}
	return systems
}

// engine is one running container engine driven through its CLI.
type engine struct {
	name string
	// argv is the CLI and its global flags; runFlags go after `run`.
	argv     []string
	env      []string
	runFlags []string
	// rmFlags make `rm -f` kill at once (podman stops with a timeout).
	rmFlags []string
	// daemons are the PIDs of the engine's long-running processes
	// (berthd; dockerd and its containerd); none for podman.
	daemons func() []proc
	stop    func() error
}

// proc is a process of an engine, by name.
type proc struct {
	Name string
	PID  int
}

// startEngine starts the engine of system name with everything under dir
// (short: unix socket paths) and loads the busybox archive. prefix names
// its cgroup parent.
func startEngine(cfg EngineConfig, name, dir, prefix string) (*engine, error) {
	var e *engine
	var err error
	switch name {
	case SysBerth, SysBerthDocker:
		e, err = startBerthd(cfg, name, prefix)
	case SysDocker:
		e, err = startDockerd(dir, prefix)
	case SysPodman:
		e, err = startPodman(dir, prefix)
	default:
		return nil, fmt.Errorf("no engine for system %s", name)
	}
	if err != nil {
		return nil, err
	}
	if _, err := e.cli("load", "-q", "-i", cfg.Archive); err != nil {
		e.stop()
		return nil, fmt.Errorf("%s: load busybox: %w", name, err)
	}
	return e, nil
}

func startBerthd(cfg EngineConfig, name, prefix string) (*engine, error) {
	dir, err := berthd.NewDir()
	if err != nil {
		return nil, err
	}
	cgroup := "/" + prefix
	d, err := berthd.Launch(filepath.Join(cfg.BinDir, "berthd"), dir, append([]string{"--cgroup-parent", cgroup}, cfg.BerthdArgs...)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &engine{name: name, env: []string{"DOCKER_CONFIG=" + d.DockerConfig}}
	if name == SysBerth {
		e.argv = []string{filepath.Join(cfg.BinDir, "berth"), "-H", d.Host}
	} else {
		e.argv = []string{DockerCLI, "-H", d.Host}
	}
	e.daemons = func() []proc { return []proc{{"berthd", d.PID()}} }
	e.stop = func() error {
		err := e.removeAll()
		if serr := d.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("berthd: %w", serr)
		}
		removeCgroupTree(cgroup)
		unmountUnder(dir)
		os.RemoveAll(dir)
		return err
	}
	return e, nil
}

func startDockerd(dir, prefix string) (*engine, error) {
	cgroup := "/" + prefix
	// overlay2, as a real install has.
	d, err := dockerd.Launch(dockerd.Options{StorageDriver: "overlay2", CgroupParent: cgroup})
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "docker-config")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		d.Stop()
		return nil, err
	}
	e := &engine{name: SysDocker, argv: []string{DockerCLI, "-H", d.Host}, env: []string{"DOCKER_CONFIG=" + conf}}
	pid, err := readPID(filepath.Join(d.Dir, "docker.pid"))
	if err != nil {
		d.Stop()
		return nil, err
	}
	e.daemons = func() []proc {
		ps := []proc{{"dockerd", pid}}
		// dockerd starts its own containerd as a child.
		for _, c := range children(pid) {
			if comm(c) == "containerd" {
				ps = append(ps, proc{"containerd", c})
			}
		}
		return ps
	}
	e.stop = func() error {
		err := e.removeAll()
		d.Stop() // removes its cgroup parent, mounts and dirs
		return err
	}
	return e, nil
}

func startPodman(dir, prefix string) (*engine, error) {
	// podman writes these whatever --root says.
	var made []string
	for _, p := range []string{"/var/lib/containers", "/run/containers"} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			made = append(made, p)
		}
	}
	root := filepath.Join(dir, "podman")
	cgroup := "/" + prefix
	e := &engine{
		name: SysPodman,
		argv: []string{"podman", "--root", root + "/root", "--runroot", root + "/run", "--tmpdir", root + "/tmp",
			"--storage-driver", "overlay", "--events-backend", "file", "--cgroup-manager", "cgroupfs"},
		// podman asks for RLIMIT_NOFILE and RLIMIT_NPROC above this host's
		// hard limits by default, which crun then fails to set.
		runFlags: []string{"--cgroup-parent", cgroup, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"},
		rmFlags:  []string{"-t", "0"},
		daemons:  func() []proc { return nil },
	}
	e.stop = func() error {
		err := e.removeAll()
		removeCgroupTree(cgroup)
		unmountUnder(root)
		os.RemoveAll(root)
		for _, p := range made {
			os.RemoveAll(p)
		}
		return err
	}
	return e, nil
}

// command is the engine's CLI with args.
func (e *engine) command(ctx context.Context, args ...string) *exec.Cmd {
	argv := append(append([]string{}, e.argv...), args...)
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = append(os.Environ(), e.env...)
	return c
}

// cli runs the CLI with args and returns its stdout; stderr goes into the
// error.
func (e *engine) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.command(ctx, args...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", filepath.Base(e.argv[0]), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// runArgs is `run <engine's run flags> args...`.
func (e *engine) runArgs(args ...string) []string {
	return append(append([]string{"run"}, e.runFlags...), args...)
}

// removeAll force-removes every container of the engine.
func (e *engine) removeAll() error {
	out, err := e.cli("ps", "-aq")
	if err != nil {
		return err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil
	}
	_, err = e.cli(append(append([]string{"rm", "-f"}, e.rmFlags...), ids...)...)
	return err
}

// running counts the engine's running containers.
func (e *engine) running() (int, error) {
	out, err := e.cli("ps", "-q", "--filter", "status=running")
	return len(strings.Fields(out)), err
}

// removeCgroupTree removes the cgroup parent of an engine's containers,
// retrying for a while: supervisors (conmon, shims) leave their cgroups
// a moment after their container was removed.
func removeCgroupTree(parent string) {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		testutil.RemoveCgroupTree(parent)
		left, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
		if len(left) == 0 || time.Now().After(deadline) {
			return
		}
	}
}

// unmountUnder lazily unmounts whatever an engine left mounted under dir.
func unmountUnder(dir string) {
	if entries, err := mountinfo.Read(); err == nil {
		for _, mp := range mountinfo.Under(entries, dir) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, nil
}

// children returns the PIDs whose parent is pid.
func children(pid int) []int {
	var out []int
	for _, tid := range listDir(fmt.Sprintf("/proc/%d/task", pid)) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, tid))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func listDir(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// comm is the process's command name ("" if gone).
func comm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ppid is the process's parent PID.
func ppid(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces: fields follow the
	// last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return strconv.Atoi(f[1])
}

// Mem is a process's resident and proportional set size in bytes.
type Mem struct{ RSS, PSS int64 }

// memOf reads /proc/<pid>/smaps_rollup.
func memOf(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	var m Mem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "Rss":
			m.RSS = n << 10
		case "Pss":
			m.PSS = n << 10
		}
	}
	if m.RSS == 0 {
		return m, errors.Join(sc.Err(), fmt.Errorf("/proc/%d/smaps_rollup: no Rss", pid))
	}
	return m, nil
}
