package client_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/internal/testutil"
)

// With a pid namespace of its own, the container's runtime state goes
// after its exit is reported (nothing of it can be left running), and a
// new run with the same id in the same state dir right after the exit
// starts (its shim waits for the previous one's delete).
func TestDeleteAfterExitReport(t *testing.T) {
	// A runtime slow to delete holds the previous run's state in place
	// while the next run is created.
	slow := filepath.Join(t.TempDir(), "slow-delete-runtime")
	script := "#!/bin/sh\nfor a; do [ \"$a\" = delete ] && sleep 0.5; done\nexec \"" + runtimeBin + "\" \"$@\"\n"
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := create(t, func(c *shim.Config) { c.Runtime = slow }, sh("exit 3"))
	c.start()
	if e := c.wait(""); e.ExitCode != 3 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	s, err := client.Start(ctx(t), c.dir, c.cfg)
	if err != nil {
		t.Fatalf("a new run right after the exit: %v", err)
	}
	c.s = s
	c.start()
	if e := c.wait(""); e.ExitCode != 3 {
		t.Fatalf("second run: exit %d", e.ExitCode)
	}
	state := filepath.Join(c.cfg.RuntimeRoot, c.cfg.ID)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(state); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runtime state %s is still there 5 s after the exit", state)
		}
	}
}

// A deferred create (runtime run --detach) of a container that exits at
// once: its init may be reaped before the shim could ask /proc about its
// pid namespace, so the daemon says it (OwnPidNS), and the exit is still
// reported before the runtime's delete runs. The delete here waits for
// the test to have the exit; run first, it would give up and say so.
func TestDeleteAfterExitReportDeferred(t *testing.T) {
	dir := t.TempDir()
	proceed, gaveUp := filepath.Join(dir, "proceed"), filepath.Join(dir, "gave-up")
	blocking := filepath.Join(dir, "blocking-delete-runtime")
	script := "#!/bin/sh\nfor a; do if [ \"$a\" = delete ]; then i=0; while [ ! -e " + proceed + " ]; do i=$((i+1)); if [ $i -gt 500 ]; then touch " + gaveUp + "; break; fi; sleep 0.02; done; fi; done\nexec \"" + runtimeBin + "\" \"$@\"\n"
	if err := os.WriteFile(blocking, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := create(t, func(c *shim.Config) { c.Runtime, c.DeferCreate, c.OwnPidNS = blocking, true, true }, sh("exit 3"))
	c.start()
	e := c.wait("")
	if err := os.WriteFile(proceed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if e.ExitCode != 3 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	if _, err := os.Stat(gaveUp); err == nil {
		t.Fatal("the runtime's delete ran before the exit was reported")
	}
}

// Sharing the host's pid namespace, a container's init may leave children
// that hold its stdio: they are killed (the runtime's delete) before the
// exit is reported, so the report does not wait for them.
func TestDeleteBeforeExitReportWithHostPidNS(t *testing.T) {
	hostPid := testutil.WithSpec(func(s *specs.Spec) {
		var ns []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.PIDNamespace {
				ns = append(ns, n)
			}
		}
		s.Linux.Namespaces = ns
	})
	c := create(t, nil, hostPid, sh("sleep 1000 & echo $! > /child.pid; exit 0"))
	c.start()
	start := time.Now()
	if e := c.wait(""); e.ExitCode != 0 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the exit took %v", d)
	}
	b, err := os.ReadFile(filepath.Join(c.bundle.Rootfs, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(st), ") Z") {
			t.Errorf("the init's child %d still runs after the exit was reported", pid)
		}
	}
}
