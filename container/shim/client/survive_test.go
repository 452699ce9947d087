package client_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/internal/testutil"
)

// The process that started the shim (a daemon) is SIGKILLed: the shim and
// the container live on, a new client reconnects, stops the container and
// gets its exit code.
func TestShimSurvivesStarterKill(t *testing.T) {
	c := newCtrRoot(t, nil, testutil.WithArgs("sh", "-c", "trap 'exit 42' TERM; while true; do echo tick; sleep 0.1; done"))
	arg, _ := json.Marshal(struct {
		Dir string
		Cfg any
	}{c.dir, c.cfg})
	starter := exec.Command(os.Args[0], "-test.run=^$")
	starter.Env = append(os.Environ(), starterEnv+"="+string(arg))
	out, err := starter.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	starter.Stderr = os.Stderr
	if err := starter.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "started ") {
		starter.Process.Kill()
		starter.Wait()
		t.Fatalf("starter: %q %v", line, err)
	}
	starter.Process.Signal(syscall.SIGKILL)
	starter.Wait()

	s, err := client.Connect(ctx(t), c.dir)
	if err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	c.s = s
	st, err := s.State(ctx(t))
	if err != nil || st.Status != "running" || st.Pid <= 0 || st.ShimPid <= 0 {
		t.Fatalf("state after the starter died: %+v %v", st, err)
	}
	// The shim is nobody's child now but init's (or a subreaper's).
	if ppid := ppidOf(t, st.ShimPid); ppid == starter.Process.Pid || ppid == os.Getpid() {
		t.Errorf("shim's parent is %d", ppid)
	}
	// Logs kept being written after the starter died.
	before := countTicks(t, c.cfg.LogPath)
	time.Sleep(400 * time.Millisecond)
	if after := countTicks(t, c.cfg.LogPath); after <= before {
		t.Errorf("log stopped growing: %d then %d ticks", before, after)
	}
	if err := s.Kill(ctx(t), syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	if e := c.wait(""); e.ExitCode != 42 {
		t.Errorf("exit code %d, want 42", e.ExitCode)
	}
}

func ppidOf(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var ppid int
	for _, ch := range f[1] {
		ppid = ppid*10 + int(ch-'0')
	}
	return ppid
}

func countTicks(t *testing.T, path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "tick")
}

// Over its memory limit, the container's process is OOM-killed, and the
// exit says so.
func TestOOMKilled(t *testing.T) {
	c := create(t, nil, testutil.WithMemoryLimit(8<<20),
		testutil.WithArgs("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"))
	c.start()
	e := c.wait("")
	if !e.OOMKilled || e.ExitCode != 137 {
		t.Errorf("exit %+v, want OOM-killed with 137", e)
	}
	// Without a limit problem, no OOM is reported.
	ok := create(t, nil, testutil.WithMemoryLimit(64<<20), sh("dd if=/dev/zero of=/dev/null bs=1M count=1"))
	ok.start()
	if e := ok.wait(""); e.OOMKilled || e.ExitCode != 0 {
		t.Errorf("exit %+v, want a clean exit", e)
	}
}

// A shim whose container ended while its starter lives is reaped by the
// starter: no zombie per finished container.
func TestFinishedShimReaped(t *testing.T) {
	c := create(t, nil, testutil.WithArgs("true"))
	c.start()
	c.wait("")
	pid := c.s.ShimPid()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			break // gone: reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("shim %d still there 5 s after its container's exit: %s", pid, b)
		}
	}
}
