// Package cli_test drives the berth binary the way a user does, against a
// private dockerd 20.10 (the Engine API berthd will serve), and compares
// what it prints and how it exits with the real docker CLI 20.10 run
// against the same daemon.
package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// dockerCLI is Debian's docker 20.10 CLI, the reference for output.
const dockerCLI = "/usr/bin/docker"

var (
	berthBin string
	daemon   *dockerd.Daemon
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		// Each test calls RequireRoot and says why it skips.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "berth-cli-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	configDir = filepath.Join(dir, "config")
	berthBin = filepath.Join(dir, "berth")
	if out, err := exec.Command("go", "build", "-o", berthBin, "github.com/berth-dev/berth/cmd/berth").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build berth: %v\n%s", err, out)
		return 1
	}
	for _, bin := range []string{"dockerd", dockerCLI} {
		if _, err := exec.LookPath(bin); err != nil {
			fmt.Fprintf(os.Stderr, "%s is not installed (make test installs docker.io)\n", bin)
			return 1
		}
	}
	daemon, err = dockerd.Launch(dockerd.Options{CgroupParent: "/berth-cli-e2e"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer daemon.Stop()
	// The fixture image enters the daemon through berth load: no internet.
	img, err := images.CachedBusybox(images.BusyboxOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out, code := berthRun(nil, "load", "-i", img.Archive)
	if code != 0 || !strings.Contains(out.stdout, "Loaded image: busybox:latest") {
		fmt.Fprintf(os.Stderr, "berth load: exit %d\n%s%s", code, out.stdout, out.stderr)
		return 1
	}
	return m.Run()
}

type output struct{ stdout, stderr string }

// berthRun runs berth against the daemon with stdin (may be nil).
func berthRun(stdin []byte, args ...string) (output, int) {
	return runCmd(berthBin, stdin, args...)
}

func dockerRun(stdin []byte, args ...string) (output, int) {
	return runCmd(dockerCLI, stdin, args...)
}

func runCmd(bin string, stdin []byte, args ...string) (output, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-H", daemon.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+configDir)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return output{o.String(), e.String()}, code
}

// configDir keeps both CLIs away from the host's ~/.docker.
var configDir string

func setup(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if daemon == nil {
		t.Fatal("no private dockerd (TestMain failed)")
	}
}

// berth runs berth and fails t unless it exits 0.
func berth(t *testing.T, args ...string) string {
	t.Helper()
	out, code := berthRun(nil, args...)
	if code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.stdout, out.stderr)
	}
	return out.stdout
}

// container runs a detached busybox container named after the test and
// removes it at cleanup.
func container(t *testing.T, suffix string, args ...string) string {
	t.Helper()
	name := testutil.UniqueName(t) + suffix
	full := append([]string{"run", "-d", "--name", name}, args...)
	id := strings.TrimSpace(berth(t, full...))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("run -d printed %q, want a full container id", id)
	}
	t.Cleanup(func() { dockerRun(nil, "rm", "-f", id) })
	return name
}

// same runs the same arguments through berth and docker and requires the
// same stdout and exit code. Times in the output ("3 seconds ago") can
// move between the two runs, so a mismatch is retried a few times.
func same(t *testing.T, args ...string) string {
	t.Helper()
	var b, d output
	var bc, dc int
	for try := 0; try < 5; try++ {
		b, bc = berthRun(nil, args...)
		d, dc = dockerRun(nil, args...)
		if b.stdout == d.stdout && bc == dc {
			return b.stdout
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("berth and docker differ for %q:\nberth (exit %d):\n%s\n%s\ndocker (exit %d):\n%s\n%s",
		strings.Join(args, " "), bc, b.stdout, b.stderr, dc, d.stdout, d.stderr)
	return ""
}

// sameErr is same for stderr, with "docker" read as "berth".
func sameErr(t *testing.T, args ...string) (string, int) {
	t.Helper()
	b, bc := berthRun(nil, args...)
	d, dc := dockerRun(nil, args...)
	want := strings.ReplaceAll(d.stderr, "docker", "berth")
	if b.stderr != want || bc != dc {
		t.Fatalf("berth and docker differ for %q:\nberth (exit %d): %q\ndocker (exit %d): %q", strings.Join(args, " "), bc, b.stderr, dc, want)
	}
	return b.stderr, bc
}

func testutil_unique(t *testing.T) string { return testutil.UniqueName(t) }
