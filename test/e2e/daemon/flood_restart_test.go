package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/container/logs"
	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestFloodingContainer: a container writing stdout as fast as it can
// (default log options) neither stalls the daemon nor other containers,
// and its log stays within the default rotation.
func TestFloodingContainer(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "run", "-d", "--name", "flood", "busybox", "yes", "a fairly long line of output from a flooding container")
	timed := func(args ...string) time.Duration {
		t.Helper()
		start := time.Now()
		d.Must(t, args...)
		return time.Since(start)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		ps := timed("ps")
		run := timed("run", "--rm", "busybox", "true")
		t.Logf("while flooding: ps %v, run --rm %v", ps, run)
		// Generous: a stall shows as tens of seconds, not as a slow second.
		if ps > 10*time.Second || run > 10*time.Second {
			t.Fatalf("the daemon stalls beside a flooding container: ps %v, run --rm %v", ps, run)
		}
	}
	d.Must(t, "rm", "-f", "flood")
}

// TestFloodLogBounded: the json-file log of a flooding container is
// rotated at the default size and count.
func TestFloodLogBounded(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "run", "-d", "--name", "flood", "busybox", "yes", strings.Repeat("x", 200))
	logPath := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{.LogPath}}", "flood"))
	bound := logs.DefaultMaxSize*int64(logs.DefaultMaxFile) + 1<<20
	var total int64
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		total = 0
		files, _ := filepath.Glob(logPath + "*")
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				total += fi.Size()
			}
		}
		if total > bound {
			t.Fatalf("log files of a flooding container hold %d bytes, more than the default bound %d", total, bound)
		}
	}
	t.Logf("log after 8 s of flooding: %d bytes", total)
	if total == 0 {
		t.Fatal("the flooding container wrote no log")
	}
	// logs still reads the newest lines (once the flood ended: the last
	// line may be cut where the kill fell).
	d.Must(t, "kill", "flood")
	out := d.Must(t, "logs", "--tail", "3", "flood")
	if ls := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(ls) > 3 || len(ls) < 2 || ls[0] != strings.Repeat("x", 200) {
		t.Fatalf("logs --tail 3 of the flood: %d lines, %.300q", len(ls), out)
	}
	d.Must(t, "rm", "-f", "flood")
}

// TestRestartPoliciesAcrossDaemonRestart: at the daemon's start, after a
// crash or a clean stop, always containers run again even when stopped
// by hand, unless-stopped ones unless stopped by hand, as dockerd does at
// its start. Unlike dockerd without live-restore, berthd's stop leaves
// containers running (the engine is not in their execution path), so a
// running one without a policy is still running.
func TestRestartPoliciesAcrossDaemonRestart(t *testing.T) {
	d := withBusybox(t)
	for _, name := range []string{"always", "unless-stopped"} {
		d.Must(t, "run", "-d", "--name", name, "--restart", name, "busybox", "sleep", "600")
		d.Must(t, "run", "-d", "--name", name+"-stopped", "--restart", name, "busybox", "sleep", "600")
		d.Must(t, "stop", "-t", "0", name+"-stopped")
	}
	d.Must(t, "run", "-d", "--name", "none", "busybox", "sleep", "600")
	d.Must(t, "run", "-d", "--name", "none-stopped", "busybox", "sleep", "600")
	d.Must(t, "stop", "-t", "0", "none-stopped")
	want := map[string]string{
		"always": "running", "always-stopped": "running",
		"unless-stopped": "running", "unless-stopped-stopped": "exited",
		"none": "running", "none-stopped": "exited",
	}
	check := func(when string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			bad := ""
			for name, state := range want {
				if got := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{.State.Status}}", name)); got != state {
					bad += name + " is " + got + ", want " + state + "; "
				}
			}
			if bad == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", when, bad)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// A crash: the running ones keep running in their shims.
	d.Crash()
	restart(t, d)
	check("after a crash")
	for _, name := range []string{"always", "unless-stopped", "always-stopped"} {
		d.Must(t, "exec", name, "true")
	}
	// Stopped by hand again, then a clean stop and start of the daemon.
	d.Must(t, "stop", "-t", "0", "always-stopped")
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	restart(t, d)
	check("after a stop and start of the daemon")
}

func restart(t *testing.T, d *berthd.Daemon) {
	t.Helper()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
}
