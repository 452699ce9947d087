package build_test

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

// TestBuildPullAndPush builds FROM an image only a registry has (pulled
// on demand, and again with --pull), then pushes the result, which a
// fresh daemon pulls and runs.
func TestBuildPullAndPush(t *testing.T) {
	d := withBusybox(t)
	reg := registry.Start(t)
	reg.Push(t, images.Busybox(t).Layout, "bb:latest")
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg.Host + "/bb\nRUN echo pushed > /p\nCMD [\"cat\", \"/p\"]\n",
	})
	out, code := docker(t, d, "build", "-t", reg.Host+"/built:1", dir)
	if code != 0 || !strings.Contains(out, "Pulling "+reg.Host+"/bb") {
		t.Fatalf("build FROM a registry image: exit %d\n%s", code, out)
	}
	out, code = docker(t, d, "build", "--pull", dir)
	if code != 0 || !strings.Contains(out, "Pulling") || strings.Count(out, "Using cache") != 1 {
		t.Errorf("--pull: exit %d, want a pull and the cache used\n%s", code, out)
	}
	d.Must(t, "push", reg.Host+"/built:1")
	d2 := withBusybox(t)
	if got := d2.Must(t, "run", "--rm", reg.Host+"/built:1"); !strings.HasSuffix(got, "pushed\n") {
		t.Errorf("pushed image: %q", got)
	}
}
