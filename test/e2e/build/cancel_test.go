package build_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// sleepers are the processes running `sleep <arg>`.
func sleepers(arg string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Equal(b, []byte("sleep\x00"+arg+"\x00")) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestBuildCancel: a client that goes away stops the build, its RUN
// container included, and the daemon builds again afterwards.
func TestBuildCancel(t *testing.T) {
	d := withBusybox(t)
	const arg = "4242"
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN sleep " + arg + "\n"})
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(bin), "berth"), "-H", d.Host, "build", "-t", "cancelled", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(sleepers(arg)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(sleepers(arg)) == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the RUN never started")
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline = time.Now().Add(15 * time.Second)
	for len(sleepers(arg)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if p := sleepers(arg); len(p) > 0 {
		t.Errorf("the RUN of a cancelled build still runs: pids %v", p)
	}
	if _, code := docker(t, d, "image", "inspect", "cancelled"); code == 0 {
		t.Error("a cancelled build was tagged")
	}
	ok := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN true\n"})
	if out, code := docker(t, d, "build", ok); code != 0 || !strings.Contains(out, "Successfully built") {
		t.Errorf("build after a cancel: exit %d\n%s", code, out)
	}
}
