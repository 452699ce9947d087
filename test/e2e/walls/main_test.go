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
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

func TestMain(m *testing.M) {
	berthd.Main(m, func() {
		for _, d := range probeDirs {
			os.RemoveAll(d)
		}
	})
}

// daemon is a berthd of the test's own with the busybox fixture loaded.
func daemon(t *testing.T, args ...string) *berthd.Daemon {
	t.Helper()
	return berthd.StartBusybox(t, args...)
}

// docker runs the docker CLI on d: combined output and exit code.
func docker(t *testing.T, d *berthd.Daemon, args ...string) (string, int) {
	t.Helper()
	return d.DockerCode(t, args...)
}

// berth runs berth's CLI on d: its output (stdout, then stderr) and exit
// code.
func berth(t *testing.T, d *berthd.Daemon, args ...string) (string, int) {
	t.Helper()
	out, errOut, code := d.Berth(t, "", args...)
	return out + errOut, code
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
