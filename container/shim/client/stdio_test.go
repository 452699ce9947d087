package client_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/internal/testutil"
)

func stdinCfg(c *shim.Config) { c.OpenStdin, c.StdinOnce = true, true }

// cat echoes stdin; the client's half-close is stdin's EOF, so cat ends.
func TestStdinHalfClose(t *testing.T) {
	c := create(t, stdinCfg, testutil.WithArgs("cat"))
	conn := c.attach(client.AttachOptions{Stdin: true, Stdout: true, Stderr: true})
	c.start()
	if _, err := conn.Write([]byte("hello\nworld")); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := demux(t, conn)
	if stdout != "hello\nworld" || stderr != "" {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	if e := c.wait(""); e.ExitCode != 0 {
		t.Errorf("exit %d", e.ExitCode)
	}
}

// Two clients attached at once both get all the output.
func TestTwoAttachers(t *testing.T) {
	c := create(t, nil, sh("for i in 1 2 3; do echo line$i; done; echo oops >&2"))
	a := c.attach(client.AttachOptions{Stdout: true, Stderr: true})
	b := c.attach(client.AttachOptions{Stdout: true})
	c.start()
	aout, aerr := demux(t, a)
	bout, berr := demux(t, b)
	if aout != "line1\nline2\nline3\n" || aerr != "oops\n" || bout != aout || berr != "" {
		t.Errorf("a: %q %q; b: %q %q", aout, aerr, bout, berr)
	}
	c.wait("")
}

// A client that stops reading is cut off; the container and the log are
// not held up.
func TestSlowAttacherDisconnected(t *testing.T) {
	// 8 MiB of output, well over the 1 MiB per-client buffer, in bursts
	// of 128 KiB: a reader that reads keeps up even on a loaded machine.
	c := create(t, nil, sh("for i in $(seq 64); do head -c 131072 /dev/zero | tr '\\0' x; sleep 0.01; done; echo; echo done"))
	slow := c.attach(client.AttachOptions{Stdout: true})
	fast := c.attach(client.AttachOptions{Stdout: true})
	c.start()
	got := make(chan int, 1)
	go func() {
		n, _ := io.Copy(io.Discard, fast)
		got <- int(n)
	}()
	if e := c.wait(""); e.ExitCode != 0 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	if n := <-got; n < 8<<20 {
		t.Errorf("the reading client got %d bytes, want all 8 MiB and frames", n)
	}
	// The slow one was disconnected: it reads what was queued, then EOF,
	// well short of the whole output.
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, slow)
	if err != nil || n >= 8<<20 {
		t.Errorf("slow client: read %d bytes, err %v; want a cut-off stream", n, err)
	}
	var total int
	for _, l := range readLogFile(t, c.cfg.LogPath) {
		total += len(l["log"])
	}
	if total != 8<<20+len("\ndone\n") {
		t.Errorf("log holds %d bytes, want %d", total, 8<<20+6)
	}
}

func ttyOpt() testutil.Option {
	return testutil.WithSpec(func(s *specs.Spec) { s.Process.Terminal = true })
}

// With a TTY: the pty master comes from the runtime, a resize before start
// is what the process sees, and the output is raw.
func TestTTYResize(t *testing.T) {
	c := create(t, func(c *shim.Config) { c.Tty = true }, ttyOpt(), sh("tty; stty size; echo out; echo err >&2"))
	if err := c.s.Resize(ctx(t), "", 31, 97); err != nil {
		t.Fatal(err)
	}
	conn := c.attach(client.AttachOptions{Stdout: true, Stderr: true})
	c.start()
	out := readAll(t, conn)
	for _, want := range []string{"/dev/pts/0\r\n", "31 97\r\n", "out\r\nerr\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty output %q lacks %q", out, want)
		}
	}
	c.wait("")
	var log strings.Builder
	for _, l := range readLogFile(t, c.cfg.LogPath) {
		if l["stream"] != "stdout" {
			t.Errorf("tty log entry on %q", l["stream"])
		}
		log.WriteString(l["log"])
	}
	if log.String() != out {
		t.Errorf("log %q, attach %q", log.String(), out)
	}
}

// Input through a TTY reaches the process (here sh reading a line).
func TestTTYStdin(t *testing.T) {
	c := create(t, func(c *shim.Config) { c.Tty, c.OpenStdin, c.StdinOnce = true, true, true }, ttyOpt(), sh("read x; echo got-$x"))
	conn := c.attach(client.AttachOptions{Stdin: true, Stdout: true})
	c.start()
	conn.Write([]byte("abc\r"))
	out := readAll(t, conn)
	if !strings.Contains(out, "got-abc") {
		t.Errorf("tty output %q", out)
	}
	c.wait("")
}

func execProcess(c *ctr, tty bool, args ...string) *specs.Process {
	p := *c.bundle.Spec.Process
	p.Args = args
	p.Terminal = tty
	return &p
}

func TestExec(t *testing.T) {
	c := create(t, nil, testutil.WithArgs("sleep", "1000"))
	c.start()

	t.Run("pipes", func(t *testing.T) {
		pid, conn, err := c.s.Exec(ctx(t), client.ExecOptions{ID: "e1", Process: execProcess(c, false, "sh", "-c", "echo hi; echo bad >&2; exit 5"), Stdout: true, Stderr: true})
		if err != nil || pid <= 0 || conn == nil {
			t.Fatalf("exec: %d %v %v", pid, conn, err)
		}
		defer conn.Close()
		stdout, stderr := demux(t, conn)
		if stdout != "hi\n" || stderr != "bad\n" {
			t.Errorf("stdout %q stderr %q", stdout, stderr)
		}
		if e := c.wait("e1"); e.ExitCode != 5 || e.Pid != pid {
			t.Errorf("exec exit %+v", e)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		_, conn, err := c.s.Exec(ctx(t), client.ExecOptions{ID: "e2", Process: execProcess(c, false, "cat"), Stdin: true, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("ping"))
		conn.CloseWrite()
		if stdout, _ := demux(t, conn); stdout != "ping" {
			t.Errorf("stdout %q", stdout)
		}
		if e := c.wait("e2"); e.ExitCode != 0 {
			t.Errorf("exit %d", e.ExitCode)
		}
	})
	t.Run("tty", func(t *testing.T) {
		_, conn, err := c.s.Exec(ctx(t), client.ExecOptions{ID: "e3", Process: execProcess(c, true, "sh", "-c", "tty; exit 7"), Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if out := readAll(t, conn); !strings.HasPrefix(out, "/dev/pts/") {
			t.Errorf("tty exec output %q", out)
		}
		if e := c.wait("e3"); e.ExitCode != 7 {
			t.Errorf("exit %d", e.ExitCode)
		}
	})
	t.Run("detached", func(t *testing.T) {
		pid, conn, err := c.s.Exec(ctx(t), client.ExecOptions{ID: "e4", Process: execProcess(c, false, "sh", "-c", "exit 2")})
		if err != nil || conn != nil || pid <= 0 {
			t.Fatalf("exec: %d %v %v", pid, conn, err)
		}
		if e := c.wait("e4"); e.ExitCode != 2 {
			t.Errorf("exit %d", e.ExitCode)
		}
		st, _ := c.s.State(ctx(t))
		found := false
		for _, e := range st.Execs {
			if e.ID == "e4" && !e.Running && e.Exit != nil && e.Exit.ExitCode == 2 {
				found = true
			}
		}
		if !found {
			t.Errorf("state execs %+v", st.Execs)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, _, err := c.s.Exec(ctx(t), client.ExecOptions{ID: "e1", Process: execProcess(c, false, "true")}); err == nil {
			t.Error("duplicate exec id accepted")
		}
		_, _, err := c.s.Exec(ctx(t), client.ExecOptions{ID: "e5", Process: execProcess(c, false, "/nope")})
		if err == nil || !strings.Contains(err.Error(), "/nope") {
			t.Errorf("exec of a missing binary: %v", err)
		}
	})
	// Exec output never goes to the container's log.
	if data := readLogFile(t, c.cfg.LogPath); len(data) != 0 {
		t.Errorf("log has exec output: %v", data)
	}
	_ = bytes.MinRead
}
