package build_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// berthCLI runs our berth CLI against d with stdin; it returns the
// combined output and the exit code.
func berthCLI(t *testing.T, d *berthd.Daemon, stdin []byte, args ...string) (string, int) {
	t.Helper()
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(bin), "berth"), append([]string{"-H", d.Host}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestBuildBerthCLI(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile":       "FROM busybox\nCOPY . /ctx/\nRUN ls /ctx > /listing\n",
		"other.Dockerfile": "FROM busybox\nRUN echo other > /which\n",
		".dockerignore":    "secret*\n!secret-ok\nbuild/\n",
		"keep.txt":         "keep",
		"secret.key":       "nope",
		"secret-ok":        "fine",
		"build/out":        "ignored dir",
	})
	iid := filepath.Join(t.TempDir(), "iid")
	out, code := berthCLI(t, d, nil, "build", "-t", "cli:1", "--iidfile", iid, "--label", "a=b", "--progress", "plain", dir)
	if code != 0 {
		t.Fatalf("berth build: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "Step 1/4 : FROM busybox") || !strings.Contains(out, "done in") || !strings.Contains(out, "Successfully tagged cli:1") {
		t.Errorf("output:\n%s", out)
	}
	got := d.Must(t, "run", "--rm", "cli:1", "cat", "/listing")
	if got != "Dockerfile\nkeep.txt\nother.Dockerfile\nsecret-ok\n" {
		t.Errorf(".dockerignore: context listing %q", got)
	}
	img := inspect(t, d, "cli:1")
	if b, err := os.ReadFile(iid); err != nil || string(b) != img.ID {
		t.Errorf("iidfile: %q %v, image %s", b, err, img.ID)
	}
	if img.Config.Labels["a"] != "b" {
		t.Errorf("--label: %v", img.Config.Labels)
	}
	// Cached steps are marked; -q prints the ID only.
	out, code = berthCLI(t, d, nil, "build", dir)
	if code != 0 || strings.Count(out, "CACHED") != 2 {
		t.Errorf("cached build: exit %d\n%s", code, out)
	}
	out, code = berthCLI(t, d, nil, "build", "-q", "--label", "a=b", dir)
	if code != 0 || strings.TrimSpace(out) != img.ID {
		t.Errorf("-q: exit %d %q, want %s", code, out, img.ID)
	}
	// -f names another Dockerfile, in or outside the context.
	out, code = berthCLI(t, d, nil, "build", "-f", filepath.Join(dir, "other.Dockerfile"), "-t", "cli:other", dir)
	if code != 0 {
		t.Fatalf("-f: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "cli:other", "cat", "/which"); got != "other\n" {
		t.Errorf("-f: %q", got)
	}
	outside := filepath.Join(t.TempDir(), "Dockerfile.out")
	if err := os.WriteFile(outside, []byte("FROM busybox\nCOPY keep.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = berthCLI(t, d, nil, "build", "-f", outside, "-t", "cli:outside", dir)
	if code != 0 {
		t.Fatalf("-f outside: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "cli:outside", "cat", "/keep.txt"); got != "keep" {
		t.Errorf("-f outside: %q", got)
	}
	// "-": a Dockerfile on stdin, no context.
	out, code = berthCLI(t, d, []byte("FROM busybox\nRUN echo stdin > /s\n"), "build", "-t", "cli:stdin", "-")
	if code != 0 {
		t.Fatalf("stdin: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "cli:stdin", "cat", "/s"); got != "stdin\n" {
		t.Errorf("stdin: %q", got)
	}
	// On a terminal: a live status line with the running step's time.
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	berth := filepath.Join(filepath.Dir(bin), "berth")
	tty := exec.Command("script", "-qec", berth+" -H "+d.Host+" build --no-cache --progress tty "+dir, "/dev/null")
	ttyOut, err := tty.CombinedOutput()
	if err != nil || !strings.Contains(string(ttyOut), "\r\033[K[+] Step ") || !strings.Contains(string(ttyOut), "done in") {
		t.Errorf("--progress tty on a terminal: %v %q", err, ttyOut)
	}
	if out, code := berthCLI(t, d, nil, "build", "--progress", "tty", dir); code == 0 || !strings.Contains(out, "not a terminal") {
		t.Errorf("--progress tty without a terminal: exit %d %s", code, out)
	}
	// A failing RUN: its exit code and output.
	out, code = berthCLI(t, d, []byte("FROM busybox\nRUN echo boom; exit 7\n"), "build", "-")
	if code != 7 || !strings.Contains(out, "boom") || !strings.Contains(out, "returned a non-zero code: 7") {
		t.Errorf("failing RUN: exit %d\n%s", code, out)
	}
}

// TestBuildBerthCLIDockerFlags: the classic builder's flags scripts pass
// to docker build (--rm, --force-rm, --compress) work with berth build,
// and content trust, which berth cannot give, is refused.
func TestBuildBerthCLIDockerFlags(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "compressed context\n"})
	if out, code := berthCLI(t, d, nil, "build", "--rm", "--force-rm", "--compress", "--no-cache", "-t", "flags:1", dir); code != 0 {
		t.Fatalf("berth build --rm --force-rm --compress: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "flags:1", "cat", "/f"); got != "compressed context\n" {
		t.Errorf("the compressed context's file: %q", got)
	}
	if out, code := berthCLI(t, d, nil, "build", "--disable-content-trust=false", dir); code == 0 || !strings.Contains(out, "content trust") {
		t.Errorf("build with content trust: exit %d\n%s", code, out)
	}
}
