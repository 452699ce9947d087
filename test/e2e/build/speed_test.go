package build_test

import (
	"strings"
	"testing"
	"time"
)

// TestBuildSpeed is the figure: FROM busybox, three RUN steps and
// one COPY, cold and fully cached, through the docker CLI.
func TestBuildSpeed(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nCOPY f /f\nRUN cat /one /two /f > /all\n",
		"f":          "three\n",
	})
	build := func(args ...string) time.Duration {
		start := time.Now()
		out, code := docker(t, d, append([]string{"build", "-q"}, append(args, dir)...)...)
		if code != 0 {
			t.Fatalf("build: exit %d\n%s", code, out)
		}
		return time.Since(start)
	}
	cold := build()
	warm := build()
	t.Logf("cold %v, fully cached %v (docker CLI included)", cold, warm)
	if out := d.Must(t, "build", dir); strings.Count(out, "Using cache") != 4 {
		t.Errorf("not fully cached:\n%s", out)
	}
}
