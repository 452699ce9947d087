package berthd

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
	"github.com/berth-dev/berth/internal/testutil/images"
)

// Main is the TestMain of an end-to-end package: as root it builds berthd
// and its siblings once, runs the tests, then removes the build and runs
// cleanups.
func Main(m *testing.M, cleanups ...func()) {
	if os.Geteuid() == 0 {
		if _, err := Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	Cleanup()
	os.Exit(code)
}

// StartBusybox is Start for a root test, with LeakCheck first (so that it
// runs after the daemon's cleanup) and the busybox fixture loaded.
func StartBusybox(t *testing.T, args ...string) *Daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	d := Start(t, args...)
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	return d
}

// DockerCode runs the docker CLI on d: combined output and exit code. A
// CLI that could not run fails t.
func (d *Daemon) DockerCode(t testing.TB, args ...string) (string, int) {
	t.Helper()
	out, err := d.Docker(args...)
	return out, exitCode(t, "docker", args, err)
}

// Berth runs the berth CLI built next to berthd on d, with stdin: stdout,
// stderr and exit code.
func (d *Daemon) Berth(t testing.TB, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(bin), "berth"), append([]string{"-H", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.DockerConfig)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), exitCode(t, "berth", args, err)
}

func exitCode(t testing.TB, name string, args []string, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return 0
}

// Response is one raw API answer.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Raw sends one request to the daemon (berthd or dockerd) on the unix
// socket, with no client library in between.
func Raw(t testing.TB, socket, method, path, contentType, body string) Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://berth"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := UnixClient(socket).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{resp.StatusCode, resp.Header, string(b)}
}

// Message is the "message" of Docker's JSON error body.
func (r Response) Message(t testing.TB) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("error body %q is not Docker's JSON: %v", r.Body, err)
	}
	return m.Message
}

// Lines splits command output into trimmed, non-empty lines.
func Lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
