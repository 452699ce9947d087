package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildInit builds berth-init as the containers get it (static, no cgo).
func buildInit(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth-init")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth-init: %v\n%s", err, out)
	}
	return bin
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatalf("run berth-init: %v", err)
	}
	return ee.ExitCode()
}

func TestExitCodes(t *testing.T) {
	bin := buildInit(t)
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"zero", []string{"--", "true"}, 0},
		{"code passes through", []string{"--", "sh", "-c", "exit 3"}, 3},
		{"without --", []string{"sh", "-c", "exit 4"}, 4},
		{"killed by signal is 128+n", []string{"--", "sh", "-c", "kill -KILL $$"}, 137},
		{"missing command", []string{"--", "no-such-command-berth"}, 127},
		{"not executable", []string{"--", "/etc"}, 126},
		{"no command", []string{"--"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			if got := exitCode(t, err); got != tc.want {
				t.Fatalf("berth-init %v: exit %d, want %d (output %q)", tc.args, got, tc.want, out)
			}
		})
	}
}

func TestForwardsSignalToChild(t *testing.T) {
	bin := buildInit(t)
	ready := filepath.Join(t.TempDir(), "ready")
	// The child exits 42 on SIGTERM; berth-init must pass SIGTERM on, not
	// die of it itself.
	cmd := exec.Command(bin, "--", "sh", "-c", `trap "exit 42" TERM; touch `+ready+`; while :; do sleep 0.05; done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, func() bool { _, err := os.Stat(ready); return err == nil })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if got := exitCode(t, err); got != 42 {
			t.Fatalf("exit %d after SIGTERM, want the child's 42", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("berth-init did not exit after SIGTERM")
	}
}

func TestReapsOrphans(t *testing.T) {
	bin := buildInit(t)
	dir := t.TempDir()
	stop := filepath.Join(dir, "stop")
	// Each subshell forks a short sleep and exits at once: the sleeps are
	// orphaned to berth-init (its subreaper here, pid 1 in a container)
	// and become zombies unless it reaps them.
	script := `for i in 1 2 3 4 5; do (sleep 0.05 &); done; while [ ! -e ` + stop + ` ]; do sleep 0.05; done`
	cmd := exec.Command(bin, "--", "sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	// Once the orphans have exited, none of berth-init's children may be
	// a zombie: only the shell (whose own sleep is its child, not ours)
	// remains. A zombie may show for a moment before it is reaped.
	var kids []int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		kids = children(t, pid)
		zombies := 0
		for _, k := range kids {
			if state(k) == "Z" {
				zombies++
			}
		}
		if zombies == 0 && len(kids) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth-init's children %v (%d zombies, not reaped), want only the shell", kids, zombies)
		}
	}
	os.WriteFile(stop, nil, 0o644)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("berth-init: %v", err)
	}
}

func children(t *testing.T, pid int) []int {
	t.Helper()
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(s)
			out = append(out, n)
		}
	}
	return out
}

func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out waiting")
}
