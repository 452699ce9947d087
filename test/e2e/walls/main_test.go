// Package walls_test tries the walls of berth's containers end to end, as
// root: a private berthd per test, driven by the real docker CLI and by
// berth's own CLI. Each default wall (capabilities, seccomp, masked and
// read-only /proc and /sys paths, devices, cgroup limits) is attacked
// from inside a container and must hold; where Docker lowers a wall
// (--privileged, --cap-add, --security-opt), the same attempt must
// succeed. Health checks, resource limits and their accounting are
// checked the same way, by what a user sees.
package walls_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if _, err := berthd.Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	for _, d := range probeDirs {
		os.RemoveAll(d)
	}
	berthd.Cleanup()
	os.Exit(code)
}

// daemon is a berthd of the test's own with the busybox fixture loaded.
// LeakCheck comes first so that it runs after the daemon's cleanup.
func daemon(t *testing.T, args ...string) *berthd.Daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	d := berthd.Start(t, args...)
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	return d
}

// docker runs the docker CLI on d: combined output and exit code.
func docker(t *testing.T, d *berthd.Daemon, args ...string) (string, int) {
	t.Helper()
	out, err := d.Docker(args...)
	return out, exitCode(t, args, err)
}

// berth runs berth's CLI on d: combined output and exit code.
func berth(t *testing.T, d *berthd.Daemon, args ...string) (string, int) {
	t.Helper()
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(bin), "berth"), append([]string{"-H", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.DockerConfig)
	out, err := cmd.CombinedOutput()
	return string(out), exitCode(t, args, err)
}

func exitCode(t *testing.T, args []string, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return 0
}

// cli is one of the two clients every user-facing check runs with.
type cli struct {
	name string
	run  func(t *testing.T, d *berthd.Daemon, args ...string) (string, int)
}

var clis = []cli{{"docker", docker}, {"berth", berth}}

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func inspect(t *testing.T, d *berthd.Daemon, format, name string) string {
	t.Helper()
	return strings.TrimSpace(d.Must(t, "inspect", "-f", format, name))
}
