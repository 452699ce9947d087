// Command berth-init is the init process of `--init` containers: Berth
// bind-mounts it at /sbin/docker-init and runs `docker-init -- cmd args...`
// as pid 1, as Docker does with tini. It starts the command in its own
// process group (the terminal's foreground group when stdin is a TTY),
// forwards the signals it receives to that child only (tini's default,
// not -g), reaps every zombie re-parented to it, and exits with the
// child's exit code, or 128+n when a signal n killed it.
//
// It runs in every --init container, so it stays tiny: no fmt, no
// os/exec, static (no cgo).
package main

import (
	"errors"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func fatal(code int, msg ...string) int {
	os.Stderr.WriteString("berth-init: " + strings.Join(msg, "") + "\n")
	return code
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-" {
		return fatal(2, "usage: berth-init [--] command [args...]")
	}
	if os.Getpid() != 1 {
		// Not pid 1 (--pid host): orphans would go to the real init, so
		// become their subreaper to keep reaping them here.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fatal(1, "become child subreaper: ", err.Error())
		}
	}
	// Subscribe before the child exists: a signal sent right after the
	// fork must not be lost (or kill us with its default action).
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)

	path, err := lookPath(args[0])
	if err != nil {
		return fatal(exitCodeFor(err), "exec ", args[0], ": ", err.Error())
	}
	attr := &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		attr.Sys.Foreground, attr.Sys.Ctty = true, 0
	}
	child, err := syscall.ForkExec(path, args, attr)
	if err != nil {
		return fatal(exitCodeFor(err), "exec ", args[0], ": ", err.Error())
	}
	for sig := range sigs {
		s := sig.(syscall.Signal)
		switch s {
		case syscall.SIGCHLD:
			if code, done := reap(child); done {
				return code
			}
		case syscall.SIGURG:
			// Go's scheduler preempts goroutines with SIGURG: ours are
			// not the user's to forward.
		case syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGWINCH:
			// Terminal job control and resizes concern the foreground
			// group (the child's) directly; a resize reaches it from the
			// terminal itself.
			if s == syscall.SIGWINCH {
				syscall.Kill(child, s)
			}
		default:
			if err := syscall.Kill(child, s); err != nil && !errors.Is(err, syscall.ESRCH) {
				fatal(0, "forward signal ", strconv.Itoa(int(s)), ": ", err.Error())
			}
		}
	}
	return 1
}

// reap waits for every exited child without blocking. It reports the
// exit code once the main child is among them.
func reap(child int) (int, bool) {
	code, done := 0, false
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return code, done
		}
		if pid == child {
			done = true
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				code = 128 + int(ws.Signal())
			}
		}
	}
}

// lookPath finds a command in $PATH as execvp does; names with a slash
// are used as they are.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, checkExecutable(name)
	}
	pathEnv, ok := os.LookupEnv("PATH")
	if !ok {
		pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	var firstErr error = syscall.ENOENT
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, syscall.EACCES) && errors.Is(firstErr, syscall.ENOENT) {
			firstErr = err
		}
	}
	return "", firstErr
}

func checkExecutable(p string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return syscall.EACCES
	}
	return syscall.Access(p, unix.X_OK)
}

// exitCodeFor maps an exec failure to the shell's codes: 127 when the
// command is missing, 126 when it cannot be run.
func exitCodeFor(err error) int {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
		return 127
	}
	return 126
}
