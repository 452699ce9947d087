package bench

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A detached child keeps its parent's stdio: runAtOnce must not wait for
// it (crun run --detach leaves the container holding them), and a failure
// carries the command's output.
func TestRunAtOnceDetachedAndFailing(t *testing.T) {
	dir := t.TempDir()
	pidFile := dir + "/pid"
	_, err := runAtOnce(dir, func(ctx context.Context) []*exec.Cmd {
		return []*exec.Cmd{
			exec.CommandContext(ctx, "sh", "-c", "sleep 60 & echo $! > "+pidFile),
			exec.CommandContext(ctx, "sh", "-c", "echo broken; exit 3"),
		}
	})
	if err == nil || !strings.Contains(err.Error(), "exit status 3: broken") {
		t.Errorf("err = %v, want the second command's exit and output", err)
	}
	b, rerr := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil || pid <= 0 {
		t.Fatalf("pid file: %q, %v", b, rerr)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("runAtOnce returned only once the detached child %d had gone: %v", pid, err)
	}
}

func TestWriteFloorMarkdown(t *testing.T) {
	f := Floor{N: 2, Runtime: "crun version 1.8.1",
		Clients: Stats{Median: 800 * time.Millisecond, Min: 700 * time.Millisecond, Max: 900 * time.Millisecond},
		Walls:   Stats{Median: 1200 * time.Millisecond, Min: time.Second, Max: 1300 * time.Millisecond},
		Both:    Stats{Median: 2100 * time.Millisecond, Min: 2 * time.Second, Max: 2200 * time.Millisecond}}
	var b strings.Builder
	if err := WriteFloorMarkdown(&b, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 2 × `berth version` (client start-up + one API round trip) | 800.0 ms | 700.0 ms | 900.0 ms |",
		"| 2 × `crun run -d` busybox sleep (the walls: crun version 1.8.1) | 1200.0 ms |",
		"| both at once: the floor | 2100.0 ms | 2000.0 ms | 2200.0 ms |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
