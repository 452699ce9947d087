// Command berth-runtime is Berth's OCI runtime, with runc's command line:
// anything that drives runc (containerd, dockerd, podman) can drive it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/berth-dev/berth/runtime/linux"
	"github.com/berth-dev/berth/runtime/nsenter"
)

func init() {
	// A container process changes credentials and execs from one thread.
	runtime.LockOSThread()
}

type globals struct {
	root          string
	log           *logger
	systemdCgroup bool
}

type command struct {
	usage string
	run   func(g *globals, args []string) error
}

var commands = map[string]command{
	"create":   {"create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] [--no-pivot] [--preserve-fds N] ID", cmdCreate},
	"start":    {"start ID", cmdStart},
	"run":      {"run [--bundle DIR] [--detach] [--pid-file FILE] [--console-socket SOCK] ID", cmdRun},
	"state":    {"state ID", cmdState},
	"kill":     {"kill [--all] ID [SIGNAL]", cmdKill},
	"delete":   {"delete [--force] ID", cmdDelete},
	"exec":     {"exec [--process FILE | ID ARGS...] [--tty] [--detach] [--pid-file FILE] [--cwd DIR] [--env K=V] [--user UID[:GID]] ID", cmdExec},
	"ps":       {"ps [--format table|json] ID [PS-ARGS]", cmdPs},
	"list":     {"list [--format table|json] [--quiet]", cmdList},
	"pause":    {"pause ID", cmdPause},
	"resume":   {"resume ID", cmdResume},
	"events":   {"events [--stats] [--interval DURATION] ID", cmdEvents},
	"spec":     {"spec [--bundle DIR] [--rootless]", cmdSpec},
	"features": {"features", cmdFeatures},
	"update":   {"update [--resources FILE|-] [--memory N] [--memory-swap N] [--memory-reservation N] [--cpu-shares N] [--cpu-quota N] [--cpu-period N] [--cpuset-cpus L] [--cpuset-mems L] [--pids-limit N] [--blkio-weight N] ID", cmdUpdate},
}

func main() {
	if nsenter.IsContainerProcess() {
		linux.Init() // never returns
	}
	// Only a container process needs its thread. The runtime's own main
	// goroutine blocks often (init socket, wait4, signals); locked, each
	// block hands its P to another thread and back, a futex round trip and
	// often a new thread each time.
	runtime.UnlockOSThread()
	os.Exit(realMain(os.Args[1:]))
}

func realMain(argv []string) int {
	fs := flag.NewFlagSet("berth-runtime", flag.ContinueOnError)
	fs.Usage = usage
	root := fs.String("root", defaultRoot(), "state directory")
	logPath := fs.String("log", "", "log file")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	debug := fs.Bool("debug", false, "debug logging")
	systemd := fs.Bool("systemd-cgroup", false, "manage cgroups through systemd (not supported)")
	version := fs.Bool("version", false, "print the version")
	fs.BoolVar(version, "v", false, "print the version")
	fs.String("criu", "", "not supported")
	fs.String("rootless", "auto", "ignored: berth-runtime detects rootless itself")
	if err := fs.Parse(argv); err != nil {
		return 2
	}
	if *version {
		fmt.Printf("berth-runtime version %s\nspec: %s\n", linux.Version, specVersion())
		return 0
	}
	lg, err := newLogger(*logPath, *logFormat, *debug)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-runtime: %v\n", err)
		return 2
	}
	if fs.NArg() == 0 {
		usage()
		return 2
	}
	name := fs.Arg(0)
	cmd, ok := commands[name]
	if !ok {
		lg.Error(fmt.Errorf("unknown command %q", name))
		return 2
	}
	g := &globals{root: *root, log: lg, systemdCgroup: *systemd}
	if g.systemdCgroup {
		lg.Error(errors.New("--systemd-cgroup: the systemd cgroup driver is not supported; berth-runtime manages cgroupfs directly"))
		return 1
	}
	lg.Debugf("%s %s", name, strings.Join(fs.Args()[1:], " "))
	if err := cmd.run(g, fs.Args()[1:]); err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			return int(ex)
		}
		var ue usageError
		if errors.As(err, &ue) {
			lg.Error(fmt.Errorf("%s: %w\nusage: berth-runtime %s", name, err, cmd.usage))
			return 2
		}
		lg.Error(err)
		return 1
	}
	return 0
}

func defaultRoot() string {
	if os.Geteuid() != 0 {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			return d + "/berth-runtime"
		}
	}
	return "/run/berth-runtime"
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: berth-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [ARGS]\n\ncommands:\n")
	names := []string{"create", "start", "run", "state", "kill", "delete", "exec", "ps", "list", "pause", "resume", "events", "update", "spec", "features"}
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %s\n", commands[n].usage)
	}
}

// exitError carries a container process's exit code out of run and exec.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a command line mistake.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
