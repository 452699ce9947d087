// Package cli_test drives the berth binary the way a user does and
// compares what it prints and how it exits with the real docker CLI 20.10
// run against the same daemon. Every test runs twice: against a private
// dockerd 20.10 (the reference engine) and against berthd (ours), so the
// same comparisons check both the CLI and the daemon.
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
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// dockerCLI is Debian's docker 20.10 CLI, the reference for output.
const dockerCLI = "/usr/bin/docker"

var (
	berthBin string
	// engines are the daemons every test runs against, by name.
	engines []engine
	// cur is the engine of the running subtest (the tests run one at a
	// time; both sets it).
	cur engine
)

// engine is one daemon the CLIs talk to.
type engine struct {
	name string
	Host string
}

// daemon is the engine of the running subtest.
var daemon = &cur

// both runs test once against each engine, as subtests named after it.
func both(t *testing.T, test func(t *testing.T)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			cur = e
			test(t)
		})
	}
}

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
	dd, err := dockerd.Launch(dockerd.Options{CgroupParent: "/berth-cli-e2e"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer dd.Stop()
	bd, cleanup, err := launchBerthd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	engines = []engine{{"dockerd", dd.Host}, {"berthd", bd.Host}}
	// The fixture image enters the daemons through berth load: no internet.
	img, err := images.CachedBusybox(images.BusyboxOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, e := range engines {
		cur = e
		out, code := berthRun(nil, "load", "-i", img.Archive)
		if code != 0 || !strings.Contains(out.stdout, "Loaded image: busybox:latest") {
			fmt.Fprintf(os.Stderr, "berth load into %s: exit %d\n%s%s", e.name, code, out.stdout, out.stderr)
			return 1
		}
	}
	return m.Run()
}

// berthdCgroup is the cgroup parent of berthd's containers in this test
// binary, removed at the end.
const berthdCgroup = "/berth-cli-e2e-berthd"

// launchBerthd starts the berthd the tests share, with temporary roots.
// cleanup removes its containers, stops it and removes what it made.
func launchBerthd() (*berthd.Daemon, func(), error) {
	bin, err := berthd.Build()
	if err != nil {
		return nil, nil, err
	}
	dir, err := berthd.NewDir()
	if err != nil {
		berthd.Cleanup()
		return nil, nil, err
	}
	d, err := berthd.Launch(bin, dir, "--cgroup-parent", berthdCgroup)
	if err != nil {
		os.RemoveAll(dir)
		berthd.Cleanup()
		return nil, nil, err
	}
	return d, func() {
		// Containers outlive their daemon: remove them first.
		if ids, err := d.Docker("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			if out, err := d.Docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				fmt.Fprintf(os.Stderr, "remove berthd's containers: %v: %s\n", err, out)
			}
		}
		if err := d.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "berthd: %v\n%s\n", err, d.Log())
		}
		testutil.RemoveCgroupTree(berthdCgroup)
		os.RemoveAll(dir)
		berthd.Cleanup()
	}, nil
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
	return runOn(cur, bin, stdin, args...)
}

// reference is the dockerd engine, the one whose records are right.
func reference() engine { return engines[0] }

// runOn runs bin against engine e.
func runOn(eng engine, bin string, stdin []byte, args ...string) (output, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-H", eng.Host}, args...)...)
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
	if cur.Host == "" {
		t.Fatal("no daemon (TestMain failed)")
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
	for try := 0; try < 10; try++ {
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

// dockerWord is the program's name in docker's messages (not inside
// names such as a test's "...dockerd-1").
var dockerWord = regexp.MustCompile(`\bdocker\b`)

// sameErr is same for stderr, with "docker" read as "berth".
func sameErr(t *testing.T, args ...string) (string, int) {
	t.Helper()
	b, bc := berthRun(nil, args...)
	d, dc := dockerRun(nil, args...)
	want := dockerWord.ReplaceAllString(d.stderr, "berth")
	if b.stderr != want || bc != dc {
		t.Fatalf("berth and docker differ for %q:\nberth (exit %d): %q\ndocker (exit %d): %q", strings.Join(args, " "), bc, b.stderr, dc, want)
	}
	return b.stderr, bc
}

func testutil_unique(t *testing.T) string { return testutil.UniqueName(t) }
