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

// TestBuilderPrune: `docker builder prune` forgets cached steps (all with
// -a, else only those whose image is gone), and `docker system prune`,
// whose last step it is, succeeds on berthd.
func TestBuilderPrune(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n"})
	d.Must(t, "build", "-t", "pruned:1", dir)
	// Without -a, with every step's image there: nothing to forget.
	if out := d.Must(t, "builder", "prune", "-f"); out != "Total reclaimed space: 0B\n" {
		t.Errorf("builder prune with the images there: %q", out)
	}
	if out := d.Must(t, "build", dir); strings.Count(out, "Using cache") != 2 {
		t.Errorf("the cache was lost:\n%s", out)
	}
	// An intermediate image removed: its step (and only it) is stale.
	d.Must(t, "rmi", "pruned:1") // the last step's image; the first's is its parent, still there
	out := d.Must(t, "builder", "prune", "-f")
	if !strings.HasPrefix(out, "Deleted build cache objects:\n") || strings.Count(out, "\n") != 4 {
		t.Errorf("builder prune after rmi:\n%s", out)
	}
	// Our CLI, as docker's.
	out, code := berthCLI(t, d, nil, "builder", "prune", "-af")
	if code != 0 || !strings.HasPrefix(out, "Deleted build cache objects:\n") || strings.Count(out, "\n") != 4 {
		t.Errorf("berth builder prune -a: exit %d\n%s", code, out)
	}
	if out := d.Must(t, "build", dir); strings.Contains(out, "Using cache") {
		t.Errorf("after builder prune -a the cache was used:\n%s", out)
	}
	if out := d.Must(t, "system", "prune", "-f"); !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("system prune:\n%s", out)
	}
	// berth system prune prunes the build cache last, as docker's.
	d.Must(t, "build", dir)
	d.Must(t, "rmi", "-f", strings.TrimSpace(d.Must(t, "build", "-q", dir)))
	if out, code := berthCLI(t, d, nil, "system", "prune", "-f"); code != 0 || !strings.Contains(out, "Deleted build cache objects:\n") {
		t.Errorf("berth system prune: exit %d\n%s", code, out)
	}
}
