// Package volume_test drives berthd's storage end to end as root: bind
// mounts, named and anonymous volumes, --volumes-from, the image's
// VOLUMEs, tmpfs mounts, --read-only, and the escapes through symlinks
// that must fail, through the real docker CLI (20.10, API 1.41), our
// berth CLI and raw API requests.
package volume_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

func TestMain(m *testing.M) { berthd.Main(m) }

// daemon is a berthd with the busybox fixture loaded. Its volume mounts
// must all be gone when the test ends (checked after the daemon stopped).
func daemon(t *testing.T) *berthd.Daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	var dir string
	t.Cleanup(func() {
		if dir == "" {
			return
		}
		b, _ := os.ReadFile("/proc/self/mountinfo")
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
				t.Errorf("mount left behind: %s", l)
			}
		}
	})
	d := berthd.Start(t)
	dir = d.Dir
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	return d
}

func execCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// raw sends one request to d with no client library in between; a body
// is JSON.
func raw(t *testing.T, d *berthd.Daemon, method, path, body string) berthd.Response {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return berthd.Raw(t, d.Socket, method, path, ct, body)
}
