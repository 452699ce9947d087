package e2eruntime

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestUpdate changes the limits of a running container with flags and with
// a resources document on stdin, as dockerd's `docker update` does.
func TestUpdate(t *testing.T) {
	rt := newRuntime(t)
	id, b := startContainer(t, rt, testutil.WithMemoryLimit(64<<20), testutil.WithPidsLimit(32))
	rt.MustRun("update", "--memory", "33554432", "--pids-limit", "10", id)
	memDir := cgroupDir(t, "memory", b.Spec.Linux.CgroupsPath)
	if got := readTrim(t, filepath.Join(memDir, "memory.limit_in_bytes")); got != "33554432" {
		t.Errorf("memory.limit_in_bytes after --memory: %s", got)
	}
	if got := readTrim(t, filepath.Join(cgroupDir(t, "pids", b.Spec.Linux.CgroupsPath), "pids.max")); got != "10" {
		t.Errorf("pids.max after --pids-limit: %s", got)
	}
	cmd := exec.Command(rt.Binary, "--root", rt.Root, "update", "--resources", "-", id)
	cmd.Stdin = strings.NewReader(`{"memory":{"limit":16777216}}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("update -r -: %v: %s", err, out)
	}
	if got := readTrim(t, filepath.Join(memDir, "memory.limit_in_bytes")); got != "16777216" {
		t.Errorf("memory.limit_in_bytes after -r: %s", got)
	}
	// The container sees the new limit too.
	if out := execOut(t, rt, id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); strings.TrimSpace(out) != "16777216" {
		t.Errorf("container sees %q", out)
	}
	if _, errOut, err := rt.Run("update", "--memory", "lots", id); err == nil || !strings.Contains(errOut, "invalid --memory") {
		t.Errorf("bad --memory: err %v, stderr %q", err, errOut)
	}
}
