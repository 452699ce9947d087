package build_test

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildCacheSurvivesRestartAndCacheFrom(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nENV A=1\nCOPY f /f\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n",
		"f":          "content\n",
	})
	out, code := docker(t, d, "build", "-t", "cf:1", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	id := inspect(t, d, "cf:1").ID
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	out, code = docker(t, d, "build", "-t", "cf:2", dir)
	if code != 0 || strings.Count(out, "Using cache") != 2 || inspect(t, d, "cf:2").ID != id {
		t.Errorf("after a restart: exit %d, want every step cached and image %s:\n%s", code, id, out)
	}

	// A daemon that never built it reuses the saved image's steps with
	// --cache-from and ends at the very same image.
	tarPath := filepath.Join(t.TempDir(), "cf.tar")
	d.Must(t, "save", "-o", tarPath, "cf:1")
	d2 := withBusybox(t)
	d2.Must(t, "load", "-i", tarPath)
	out, code = docker(t, d2, "build", "--cache-from", "cf:1", "--cache-from", "nosuch:image", "-t", "cf:from", dir)
	if code != 0 || strings.Count(out, "Using cache") != 2 || strings.Contains(out, "content") {
		t.Errorf("--cache-from: exit %d, want both layer steps reused:\n%s", code, out)
	}
	if got := inspect(t, d2, "cf:from").ID; got != id {
		t.Errorf("--cache-from built %s, the source is %s", got, id)
	}
	if got := d2.Must(t, "run", "--rm", "cf:from"); got != "content\n" {
		t.Errorf("run: %q", got)
	}
	// A changed file stops the reuse at the step that reads it.
	writeContextFile(t, dir, "f", "changed\n")
	out, code = docker(t, d2, "build", "--cache-from", "cf:1", "-t", "cf:changed", dir)
	if code != 0 || strings.Contains(out, "Using cache") {
		t.Errorf("--cache-from with a changed file: exit %d\n%s", code, out)
	}
	if got := d2.Must(t, "run", "--rm", "cf:changed"); got != "changed\n" {
		t.Errorf("run: %q", got)
	}
}
