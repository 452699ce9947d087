package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/linux"
)

// newFlags makes a command's flag set; both -x and --x spellings work, as
// with runc.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string, minArgs int) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() < minArgs {
		return usageError{"missing container id"}
	}
	return nil
}

type createFlags struct {
	bundle, pidFile, consoleSocket string
	noPivot, noNewKeyring          bool
	preserveFds                    int
}

func (c *createFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.bundle, "bundle", ".", "bundle directory")
	fs.StringVar(&c.bundle, "b", ".", "bundle directory")
	fs.StringVar(&c.pidFile, "pid-file", "", "write the container's pid here")
	fs.StringVar(&c.consoleSocket, "console-socket", "", "unix socket that receives the pty master")
	fs.BoolVar(&c.noPivot, "no-pivot", false, "use MS_MOVE+chroot instead of pivot_root")
	fs.BoolVar(&c.noNewKeyring, "no-new-keyring", false, "keep the caller's session keyring")
	fs.IntVar(&c.preserveFds, "preserve-fds", 0, "pass fds 3..3+N-1 to the container")
}

func (c *createFlags) options(g *globals, id string) linux.CreateOptions {
	return linux.CreateOptions{Root: g.root, ID: id, Bundle: c.bundle, PidFile: c.pidFile,
		ConsoleSocket: c.consoleSocket, NoPivot: c.noPivot, NoNewKeyring: c.noNewKeyring, PreserveFds: c.preserveFds}
}

func cmdCreate(g *globals, args []string) error {
	fs := newFlags("create")
	var c createFlags
	c.register(fs)
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	_, err := linux.Create(c.options(g, fs.Arg(0)))
	return err
}

func cmdRun(g *globals, args []string) error {
	fs := newFlags("run")
	var c createFlags
	c.register(fs)
	detach := fs.Bool("detach", false, "do not wait for the container")
	fs.BoolVar(detach, "d", false, "do not wait for the container")
	fs.Bool("keep", false, "ignored")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	code, err := linux.Run(c.options(g, fs.Arg(0)), *detach)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

func cmdStart(g *globals, args []string) error {
	fs := newFlags("start")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	return linux.Start(g.root, fs.Arg(0))
}

// stateOutput is runc's `state` document: the OCI state plus a few fields.
type stateOutput struct {
	specs.State
	Rootfs  string    `json:"rootfs"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

func cmdState(g *globals, args []string) error {
	fs := newFlags("state")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	s, err := linux.Load(g.root, fs.Arg(0))
	if err != nil {
		return err
	}
	out := stateOutput{State: s.OCIState(), Rootfs: s.Rootfs, Created: s.Created, Owner: s.Owner}
	return printJSON(out)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdKill(g *globals, args []string) error {
	fs := newFlags("kill")
	all := fs.Bool("all", false, "signal every process in the container")
	fs.BoolVar(all, "a", false, "signal every process in the container")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	sig := unix.SIGTERM
	if fs.NArg() > 1 {
		var err error
		if sig, err = parseSignal(fs.Arg(1)); err != nil {
			return err
		}
	}
	return linux.Kill(g.root, fs.Arg(0), sig, *all)
}

func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func cmdDelete(g *globals, args []string) error {
	fs := newFlags("delete")
	force := fs.Bool("force", false, "kill the container first if it is running")
	fs.BoolVar(force, "f", false, "kill the container first if it is running")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	return linux.Delete(g.root, fs.Arg(0), *force)
}

func cmdPause(g *globals, args []string) error {
	fs := newFlags("pause")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	return linux.Pause(g.root, fs.Arg(0))
}

func cmdResume(g *globals, args []string) error {
	fs := newFlags("resume")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	return linux.Resume(g.root, fs.Arg(0))
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func cmdExec(g *globals, args []string) error {
	fs := newFlags("exec")
	var env, capsAdd, gids multiFlag
	processFile := fs.String("process", "", "process.json describing the process")
	fs.StringVar(processFile, "p", "", "process.json describing the process")
	tty := fs.Bool("tty", false, "allocate a pseudo-terminal")
	fs.BoolVar(tty, "t", false, "allocate a pseudo-terminal")
	detach := fs.Bool("detach", false, "do not wait for the process")
	fs.BoolVar(detach, "d", false, "do not wait for the process")
	pidFile := fs.String("pid-file", "", "write the process's pid here")
	consoleSocket := fs.String("console-socket", "", "unix socket that receives the pty master")
	cwd := fs.String("cwd", "", "working directory")
	user := fs.String("user", "", "UID[:GID]")
	fs.StringVar(user, "u", "", "UID[:GID]")
	fs.Var(&env, "env", "environment variable (repeatable)")
	fs.Var(&env, "e", "environment variable (repeatable)")
	fs.Var(&capsAdd, "cap", "add a capability (repeatable)")
	fs.Var(&capsAdd, "c", "add a capability (repeatable)")
	fs.Var(&gids, "additional-gids", "additional gid (repeatable)")
	fs.Var(&gids, "g", "additional gid (repeatable)")
	noNewPrivs := fs.Bool("no-new-privs", false, "set no_new_privs")
	preserve := fs.Int("preserve-fds", 0, "pass fds 3..3+N-1 to the process")
	fs.String("apparmor", "", "not supported")
	fs.String("process-label", "", "not supported")
	fs.Bool("ignore-paused", false, "ignored")
	fs.String("cgroup", "", "not supported")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	id := fs.Arg(0)
	var p *specs.Process
	if *processFile != "" {
		b, err := os.ReadFile(*processFile)
		if err != nil {
			return fmt.Errorf("read process: %w", err)
		}
		p = &specs.Process{}
		if err := json.Unmarshal(b, p); err != nil {
			return fmt.Errorf("parse process %s: %w", *processFile, err)
		}
	} else {
		if fs.NArg() < 2 {
			return usageError{"exec needs --process or a command after the id"}
		}
		s, err := linux.Load(g.root, id)
		if err != nil {
			return err
		}
		spec, err := s.Spec()
		if err != nil {
			return err
		}
		if spec.Process == nil {
			return fmt.Errorf("container %q has no process config", id)
		}
		cp := *spec.Process
		p = &cp
		p.Args = fs.Args()[1:]
		p.Terminal = *tty
		p.Env = append(append([]string{}, p.Env...), env...)
		if *cwd != "" {
			p.Cwd = *cwd
		}
		if *user != "" {
			uid, gid, err := parseUser(*user)
			if err != nil {
				return err
			}
			p.User = specs.User{UID: uid, GID: gid, AdditionalGids: p.User.AdditionalGids}
		}
		for _, gs := range gids {
			n, err := strconv.ParseUint(gs, 10, 32)
			if err != nil {
				return fmt.Errorf("invalid additional gid %q", gs)
			}
			p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(n))
		}
		if len(capsAdd) > 0 && p.Capabilities != nil {
			c := *p.Capabilities
			c.Bounding = append(append([]string{}, c.Bounding...), capsAdd...)
			c.Effective = append(append([]string{}, c.Effective...), capsAdd...)
			c.Permitted = append(append([]string{}, c.Permitted...), capsAdd...)
			p.Capabilities = &c
		}
		if *noNewPrivs {
			p.NoNewPrivileges = true
		}
	}
	code, err := linux.Exec(linux.ExecOptions{Root: g.root, ID: id, Process: p, PidFile: *pidFile,
		ConsoleSocket: *consoleSocket, Detach: *detach, PreserveFds: *preserve})
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

func parseUser(s string) (uint32, uint32, error) {
	u, gs, _ := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid --user %q: want UID[:GID]", s)
	}
	gid := uint64(0)
	if gs != "" {
		if gid, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("invalid --user %q: want UID[:GID]", s)
		}
	}
	return uint32(uid), uint32(gid), nil
}

func cmdPs(g *globals, args []string) error {
	fs := newFlags("ps")
	format := fs.String("format", "table", "table or json")
	fs.StringVar(format, "f", "table", "table or json")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	pids, err := linux.Pids(g.root, fs.Arg(0))
	if err != nil {
		return err
	}
	if *format == "json" {
		if pids == nil {
			pids = []int{}
		}
		return json.NewEncoder(os.Stdout).Encode(pids)
	}
	if *format != "table" {
		return usageError{fmt.Sprintf("unknown format %q", *format)}
	}
	psArgs := fs.Args()[1:]
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	col := -1
	for i, f := range strings.Fields(lines[0]) {
		if f == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	want := map[string]bool{}
	for _, p := range pids {
		want[strconv.Itoa(p)] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > col && want[f[col]] {
			fmt.Println(l)
		}
	}
	return nil
}

type listEntry struct {
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

func cmdList(g *globals, args []string) error {
	fs := newFlags("list")
	format := fs.String("format", "table", "table or json")
	fs.StringVar(format, "f", "table", "table or json")
	quiet := fs.Bool("quiet", false, "ids only")
	fs.BoolVar(quiet, "q", false, "ids only")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	states, err := linux.List(g.root)
	if err != nil {
		return err
	}
	entries := []listEntry{}
	for _, s := range states {
		st := s.OCIState()
		entries = append(entries, listEntry{ID: s.ID, Pid: st.Pid, Status: string(st.Status), Bundle: s.Bundle,
			Rootfs: s.Rootfs, Created: s.Created, Annotations: st.Annotations, Owner: s.Owner})
	}
	switch {
	case *quiet:
		for _, e := range entries {
			fmt.Println(e.ID)
		}
	case *format == "json":
		return json.NewEncoder(os.Stdout).Encode(entries)
	case *format == "table":
		w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
		fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
		for _, e := range entries {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Pid, e.Status, e.Bundle, e.Created.Format(time.RFC3339Nano), e.Owner)
		}
		return w.Flush()
	default:
		return usageError{fmt.Sprintf("unknown format %q", *format)}
	}
	return nil
}

type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func cmdEvents(g *globals, args []string) error {
	fs := newFlags("events")
	stats := fs.Bool("stats", false, "print one stats event and exit")
	interval := fs.Duration("interval", 5*time.Second, "time between stats events")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	id := fs.Arg(0)
	enc := json.NewEncoder(os.Stdout)
	for {
		st, err := linux.Stats(g.root, id)
		if err != nil {
			if *stats {
				return err
			}
			return nil // the container stopped: the stream ends
		}
		if err := enc.Encode(event{Type: "stats", ID: id, Data: st}); err != nil {
			return err
		}
		if *stats {
			return nil
		}
		time.Sleep(*interval)
	}
}

func cmdSpec(g *globals, args []string) error {
	fs := newFlags("spec")
	bundle := fs.String("bundle", ".", "where to write config.json")
	fs.StringVar(bundle, "b", ".", "where to write config.json")
	rootless := fs.Bool("rootless", false, "a config for an unprivileged user")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	spec := linux.DefaultSpec()
	if *rootless {
		linux.MakeRootless(spec, os.Getuid(), os.Getgid())
	}
	path := filepath.Join(*bundle, "config.json")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("file %s exists. Remove it first", path)
		}
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	enc.SetIndent("", "\t")
	return enc.Encode(spec)
}

func cmdFeatures(g *globals, args []string) error {
	return printJSON(linux.Features())
}

func specVersion() string { return specs.Version }
