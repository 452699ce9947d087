package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptySession is berth running on the slave side of a pseudo-terminal,
// as in a user's terminal: its own session with the pty as controlling
// terminal, so the kernel delivers SIGWINCH on resize.
type ptySession struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptm  *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func startPTY(t *testing.T, rows, cols uint16, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"-H", daemon.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+configDir)
	ptm, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	s := &ptySession{t: t, cmd: cmd, ptm: ptm, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				break
			}
		}
	}()
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
		ptm.Close()
	})
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// waitFor waits until the terminal showed want.
func (s *ptySession) waitFor(want string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.output(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("terminal never showed %q; it showed:\n%q", want, s.output())
}

// waitSize asks the container's shell for its terminal size until it
// answers want ("rows cols").
func (s *ptySession) waitSize(want string) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.output(), want+"\r\n") {
		if time.Now().After(deadline) {
			s.t.Fatalf("the container's terminal never was %s:\n%q", want, s.output())
		}
		s.send("stty size\r")
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *ptySession) send(text string) {
	s.t.Helper()
	if _, err := s.ptm.Write([]byte(text)); err != nil {
		s.t.Fatal(err)
	}
}

// exit waits for berth to end and returns its exit code.
func (s *ptySession) exit() int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("berth did not exit; terminal:\n%q", s.output())
	}
	if s.err == nil {
		return 0
	}
	if ee, ok := s.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	s.t.Fatal(s.err)
	return -1
}

func TestRunInteractiveTerminal(t *testing.T) { both(t, testRunInteractiveTerminal) }

func testRunInteractiveTerminal(t *testing.T) {
	setup(t)
	name := testutil_unique(t)
	t.Cleanup(func() { dockerRun(nil, "rm", "-f", name) })
	s := startPTY(t, 40, 100, "run", "-it", "--rm", "--name", name, "busybox", "sh")
	// The initial size is the terminal's. A daemon of API 1.41 takes it
	// with the resize right after start, so a command typed at once may
	// still see 0x0: ask until the size shows.
	s.waitSize("40 100")
	// A resize of the terminal reaches the container.
	if err := pty.Setsize(s.ptm, &pty.Winsize{Rows: 50, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	s.waitSize("50 120")
	// Raw mode: the container's terminal echoes, so the command shows once
	// and its output follows.
	s.send("echo hi; exit 7\r")
	s.waitFor("hi\r\n")
	if code := s.exit(); code != 7 {
		t.Fatalf("run -it exit code %d, want 7; terminal:\n%q", code, s.output())
	}
	// --rm waited for the removal.
	if _, code := berthRun(nil, "inspect", name); code == 0 {
		t.Fatal("run -it --rm left its container")
	}
}

func TestRunDetachKeys(t *testing.T) { both(t, testRunDetachKeys) }

func testRunDetachKeys(t *testing.T) {
	setup(t)
	for _, tc := range []struct{ flag, keys string }{
		{"", "\x10\x11"},                    // ctrl-p ctrl-q
		{"--detach-keys=ctrl-x,x", "\x18x"}, // a custom sequence
	} {
		name := testutil_unique(t)
		t.Cleanup(func() { dockerRun(nil, "rm", "-f", name) })
		args := []string{"run", "-it", "--name", name}
		if tc.flag != "" {
			args = append(args, tc.flag)
		}
		since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
		s := startPTY(t, 24, 80, append(args, "busybox", "sh")...)
		// Wait for output only the container can make (not the local echo
		// of the line before the terminal is raw).
		s.send("echo $((6*7))\r")
		s.waitFor("42\r\n")
		s.send(tc.keys)
		if code := s.exit(); code != 0 {
			t.Fatalf("detach (%q) exit code %d; terminal:\n%q", tc.flag, code, s.output())
		}
		if out := strings.TrimSpace(berth(t, "inspect", "-f", "{{.State.Running}}", name)); out != "true" {
			t.Fatalf("after detach the container is not running: %s", out)
		}
		// the terminal's size is a resize event; the detach is none.
		out := same(t, "events", "--since", since, "--until", pastNow(), "--filter", "container="+name, "--format", "{{.Action}} {{.Actor.Attributes.height}} {{.Actor.Attributes.width}}")
		if want := "create <no value> <no value>\nattach <no value> <no value>\nstart <no value> <no value>\nresize 24 80\n"; out != want {
			t.Fatalf("events of run -it (%q) on %s: %q, want %q", tc.flag, cur.name, out, want)
		}
		// attach again: the session is live, and exit ends it with the code.
		a := startPTY(t, 24, 80, "attach", name)
		a.send("echo $((5*5)); exit 5\r")
		a.waitFor("25\r\n")
		if code := a.exit(); code != 5 {
			t.Fatalf("attach exit code %d; terminal:\n%q", code, a.output())
		}
	}
}

func TestExecInteractiveTerminal(t *testing.T) { both(t, testExecInteractiveTerminal) }

func testExecInteractiveTerminal(t *testing.T) {
	setup(t)
	name := container(t, "", "busybox", "sleep", "600")
	s := startPTY(t, 33, 77, "exec", "-it", name, "sh")
	s.waitSize("33 77")
	s.send("tty\r")
	s.waitFor("/dev/pts/")
	s.send("exit 6\r")
	if code := s.exit(); code != 6 {
		t.Fatalf("exec -it exit code %d; terminal:\n%q", code, s.output())
	}
}

func TestSigProxy(t *testing.T) { both(t, testSigProxy) }

func testSigProxy(t *testing.T) {
	setup(t)
	name := testutil_unique(t)
	t.Cleanup(func() { dockerRun(nil, "rm", "-f", name) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, "-H", daemon.Host, "run", "--rm", "--name", name, "busybox",
		"sh", "-c", "trap 'echo got-term; exit 42' TERM; echo started; while true; do sleep 0.1; done")
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "started") {
		if time.Now().After(deadline) {
			t.Fatal("container never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 42 || !strings.Contains(out.String(), "got-term") {
		t.Fatalf("SIGTERM to berth: %v, output %q (want the container's trap and exit 42)", err, out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConsoleSizeOnCreate: the terminal's size given at create and exec
// (HostConfig.ConsoleSize, API 1.42) is the process's from its first
// instruction, with no resize race. dockerd 20.10 (API 1.41) takes the
// size only with the resize after start, so this runs on berthd.
func TestConsoleSizeOnCreate(t *testing.T) {
	setup(t)
	cur = engines[1]
	s := startPTY(t, 31, 93, "run", "-t", "--rm", "busybox", "stty", "size")
	if code := s.exit(); code != 0 || !strings.Contains(s.output(), "31 93\r") {
		t.Fatalf("run -t stty size: exit %d, terminal %q", code, s.output())
	}
	name := container(t, "", "busybox", "sleep", "600")
	e := startPTY(t, 17, 59, "exec", "-t", name, "stty", "size")
	if code := e.exit(); code != 0 || !strings.Contains(e.output(), "17 59\r") {
		t.Fatalf("exec -t stty size: exit %d, terminal %q", code, e.output())
	}
}
