package client_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// A client attached between create and start sees every byte, stdout and
// stderr apart, and the log holds the same lines with their streams.
func TestAttachBeforeStartAndLog(t *testing.T) {
	c := create(t, nil, sh("echo out1; echo err1 >&2; echo out2; printf tail"))
	st, err := c.s.State(ctx(t))
	if err != nil || st.Status != shim.StatusCreated || st.Pid != c.s.Pid() || st.Pid <= 0 {
		t.Fatalf("state after create: %+v %v (pid %d)", st, err, c.s.Pid())
	}
	conn := c.attach(client.AttachOptions{Stdout: true, Stderr: true})
	c.start()
	stdout, stderr := demux(t, conn)
	if stdout != "out1\nout2\ntail" || stderr != "err1\n" {
		t.Errorf("attach: stdout %q stderr %q", stdout, stderr)
	}
	if e := c.wait(""); e.ExitCode != 0 || e.OOMKilled || e.FinishedAt.IsZero() || e.StartedAt.IsZero() {
		t.Errorf("exit: %+v", e)
	}
	lines := readLogFile(t, c.cfg.LogPath)
	var got []string
	for _, l := range lines {
		got = append(got, l["stream"]+":"+l["log"])
		if _, err := time.Parse(time.RFC3339Nano, l["time"]); err != nil || !strings.HasSuffix(l["time"], "Z") {
			t.Errorf("log time %q: %v", l["time"], err)
		}
	}
	// stdout and stderr are read concurrently: only the order within a
	// stream is defined.
	var outs, errs []string
	for _, g := range got {
		if strings.HasPrefix(g, "stdout:") {
			outs = append(outs, g)
		} else {
			errs = append(errs, g)
		}
	}
	if strings.Join(outs, "|") != "stdout:out1\n|stdout:out2\n|stdout:tail" || strings.Join(errs, "|") != "stderr:err1\n" {
		t.Errorf("log entries: %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		kill   bool
		want   int
	}{
		{"true", false, 0},
		{"exit 3", false, 3},
		{"sleep 1000", true, 137},
	} {
		t.Run(strings.Fields(tc.script)[0], func(t *testing.T) {
			c := create(t, nil, sh(tc.script))
			c.start()
			if tc.kill {
				if st, err := c.s.State(ctx(t)); err != nil || st.Status != shim.StatusRunning {
					t.Fatalf("state: %+v %v", st, err)
				}
				if err := c.s.Kill(ctx(t), syscall.SIGKILL, false); err != nil {
					t.Fatal(err)
				}
			}
			if e := c.wait(""); e.ExitCode != tc.want {
				t.Errorf("exit code %d, want %d", e.ExitCode, tc.want)
			}
			// After the exit the shim is gone and the exit is on record.
			waitGone(t, c.s.ShimPid())
			s, err := client.Connect(ctx(t), c.dir)
			if err != nil {
				t.Fatalf("connect after exit: %v", err)
			}
			e, ok := s.Exited()
			if !ok || e.ExitCode != tc.want {
				t.Errorf("recorded exit %+v %v", e, ok)
			}
			if e2, err := s.Wait(ctx(t), ""); err != nil || e2 != e {
				t.Errorf("wait on the record: %+v %v", e2, err)
			}
			if err := s.Kill(ctx(t), syscall.SIGKILL, false); !errdefs.IsConflict(err) {
				t.Errorf("kill after exit: %v, want a conflict", err)
			}
		})
	}
}

// The runtime's own message comes back from Start.
func TestCreateErrorSurfaced(t *testing.T) {
	c := newCtrRoot(t, nil, sh("true"), withArgs0("/no/such/binary"))
	_, err := client.Start(ctx(t), c.dir, c.cfg)
	if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("start with a missing executable: %v", err)
	}
	if _, err := client.Connect(ctx(t), c.dir); !errdefs.IsNotFound(err) {
		t.Errorf("connect after a failed create: %v, want not found", err)
	}
}

// With DeferCreate the container is made only at start, by one `runtime
// run --detach`: a client attached before sees everything, Start gives
// the pid, and a create that fails fails the start, after which the shim
// has recorded an exit and is gone.
func TestDeferCreate(t *testing.T) {
	deferred := func(c *shim.Config) { c.DeferCreate = true }
	t.Run("run", func(t *testing.T) {
		c := create(t, deferred, sh("echo out1; echo err1 >&2; echo out2"))
		st, err := c.s.State(ctx(t))
		if err != nil || st.Status != shim.StatusCreated || st.Pid != 0 || c.s.Pid() != 0 {
			t.Fatalf("state before start: %+v %v (pid %d)", st, err, c.s.Pid())
		}
		conn := c.attach(client.AttachOptions{Stdout: true, Stderr: true})
		c.start()
		if c.s.Pid() <= 0 {
			t.Errorf("pid after start: %d", c.s.Pid())
		}
		stdout, stderr := demux(t, conn)
		if stdout != "out1\nout2\n" || stderr != "err1\n" {
			t.Errorf("attach: stdout %q stderr %q", stdout, stderr)
		}
		if e := c.wait(""); e.ExitCode != 0 || e.Pid != c.s.Pid() || e.StartedAt.IsZero() {
			t.Errorf("exit: %+v (pid %d)", e, c.s.Pid())
		}
		if n := len(readLogFile(t, c.cfg.LogPath)); n != 3 {
			t.Errorf("log has %d entries, want 3", n)
		}
	})
	t.Run("running", func(t *testing.T) {
		c := create(t, deferred, sh("sleep 1000"))
		c.start()
		st, err := c.s.State(ctx(t))
		if err != nil || st.Status != shim.StatusRunning || st.Pid != c.s.Pid() || st.Pid <= 0 {
			t.Fatalf("state after start: %+v %v (pid %d)", st, err, c.s.Pid())
		}
		if err := c.s.Kill(ctx(t), syscall.SIGKILL, false); err != nil {
			t.Fatal(err)
		}
		if e := c.wait(""); e.ExitCode != 137 {
			t.Errorf("exit code %d, want 137", e.ExitCode)
		}
	})
	t.Run("missing executable", func(t *testing.T) {
		c := create(t, deferred, testutil.WithArgs("/no/such"))
		err := c.s.Start(ctx(t))
		if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
			t.Fatalf("start: %v, want no such file or directory", err)
		}
		if e := c.wait(""); e.ExitCode != 128 {
			t.Errorf("exit after a failed start: %+v", e)
		}
		waitGone(t, c.s.ShimPid())
	})
	t.Run("killed before start", func(t *testing.T) {
		c := create(t, deferred, sh("true"))
		conn := c.attach(client.AttachOptions{Stdout: true})
		if err := c.s.Kill(ctx(t), syscall.SIGKILL, true); err != nil {
			t.Fatal(err)
		}
		if out := readAll(t, conn); out != "" {
			t.Errorf("attached client got %q", out)
		}
		c.wait("")
		waitGone(t, c.s.ShimPid())
	})
}
