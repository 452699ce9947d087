// Package build_test drives Dockerfile builds end to end as root: a
// private berthd per test, the real docker CLI's classic builder
// (DOCKER_BUILDKIT=0) and our berth CLI, small Dockerfiles on the busybox
// fixture and scratch; the images are checked by running, inspecting and
// saving them.
package build_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

func TestMain(m *testing.M) {
	// The docker CLI's classic builder: the protocol berthd speaks.
	os.Setenv("DOCKER_BUILDKIT", "0")
	berthd.Main(m)
}

// withBusybox starts a berthd holding the busybox fixture.
func withBusybox(t *testing.T) *berthd.Daemon {
	t.Helper()
	return berthd.StartBusybox(t)
}

// writeContext makes a build context directory from name -> content.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// docker runs the docker CLI and returns its output and exit code.
func docker(t *testing.T, d *berthd.Daemon, args ...string) (string, int) {
	t.Helper()
	return d.DockerCode(t, args...)
}

// inspect is the image's config as docker image inspect shows it.
type inspected struct {
	ID     string
	Config struct {
		Env          []string
		Cmd          []string
		Entrypoint   []string
		WorkingDir   string
		User         string
		Labels       map[string]string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		StopSignal   string
		OnBuild      []string
		Shell        []string
		Healthcheck  *struct{ Test []string }
	}
	RootFS struct{ Layers []string }
}

func inspect(t *testing.T, d *berthd.Daemon, ref string) inspected {
	t.Helper()
	out := d.Must(t, "image", "inspect", ref)
	var v []inspected
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		t.Fatalf("inspect %s: %v: %s", ref, err, out)
	}
	return v[0]
}

func symlink(target, name string) error { return os.Symlink(target, name) }

func writeContextFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
