package build_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildRunMounts(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count
RUN --mount=type=tmpfs,target=/scratch touch /scratch/f && ls /scratch > /tmpfs-seen
RUN --mount=type=bind,source=data,target=/data cat /data/v > /bound
RUN --mount=type=bind,source=data,target=/data,rw echo w > /data/v2 && cat /data/v2 > /rw
RUN --network=host ls /sys/class/net > /host-nets
RUN ls /sys/class/net > /own-nets
`,
		"data/v": "bound\n",
	})
	out, code := docker(t, d, "build", "-t", "mounts:1", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	got := d.Must(t, "run", "--rm", "mounts:1", "sh", "-c", "cat /count /tmpfs-seen /bound /rw; ls -d /cache /scratch /data 2>&1 | grep -v 'No such' || true")
	if got != "1\nf\nbound\nw\n" {
		t.Errorf("image content: %q", got)
	}
	// RUN has a network namespace of its own with loopback only, unless
	// --network=host.
	if got := d.Must(t, "run", "--rm", "mounts:1", "cat", "/own-nets"); got != "lo\n" {
		t.Errorf("default RUN network: %q", got)
	}
	if got := d.Must(t, "run", "--rm", "mounts:1", "cat", "/host-nets"); got == "lo\n" || !strings.Contains(got, "lo\n") {
		t.Errorf("RUN --network=host: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data/v2")); err == nil {
		t.Errorf("a rw bind mount wrote into the context")
	}
	// The cache mount persists across builds; a changed bind source
	// reruns the step that mounts it.
	writeContextFile(t, dir, "data/v", "changed\n")
	out, code = docker(t, d, "build", "--no-cache", "-t", "mounts:2", dir)
	if code != 0 {
		t.Fatalf("second build: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "mounts:2", "cat", "/count", "/bound"); got != "2\nchanged\n" {
		t.Errorf("cache mount persisted / bind: %q", got)
	}
	writeContextFile(t, dir, "data/v", "again\n")
	out, code = docker(t, d, "build", "-t", "mounts:3", dir)
	if code != 0 || strings.Count(out, "Using cache") != 2 {
		t.Errorf("changed bind source: want the two steps before it cached: exit %d\n%s", code, out)
	}
}
