// Package volume_test drives berthd's storage end to end as root: bind
// mounts, named and anonymous volumes, --volumes-from, the image's
// VOLUMEs, tmpfs mounts, --read-only, and the escapes through symlinks
// that must fail, through the real docker CLI (20.10, API 1.41), our
// berth CLI and raw API requests.
package volume_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	berthd.Cleanup()
	os.Exit(code)
}

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

// docker runs the docker CLI on d: combined output and exit code.
func docker(t *testing.T, d *berthd.Daemon, args ...string) (string, int) {
	t.Helper()
	out, err := d.Docker(args...)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %v: %v", args, err)
	}
	return out, code
}

// berthBin is the berth CLI built next to berthd.
func berthBin(t *testing.T) string {
	t.Helper()
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(filepath.Dir(bin), "berth")
}

// berth runs our CLI on d: stdout, stderr, exit code.
func berth(t *testing.T, d *berthd.Daemon, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin(t), append([]string{"-H", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.DockerConfig)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// rawResponse is one raw API answer.
type rawResponse struct {
	Status int
	Body   string
}

// raw sends one JSON request to d without a client library in between.
func raw(t *testing.T, d *berthd.Daemon, method, path, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, "http://berth"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := berthd.UnixClient(d.Socket).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, string(b)}
}

// message is the "message" of a JSON error body.
func message(t *testing.T, r rawResponse) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("error body %q is not Docker's JSON: %v", r.Body, err)
	}
	return m.Message
}

// lines splits output into trimmed non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func execCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
