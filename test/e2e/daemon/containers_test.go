package daemon_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// withBusybox is a daemon with the busybox fixture loaded.
func withBusybox(t *testing.T) *berthd.Daemon {
	t.Helper()
	d := start(t)
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	return d
}

// docker runs the docker CLI on d and returns stdout+stderr and the exit
// code.
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

// TestDockerRun drives the container lifecycle with the real docker CLI:
// run (attached, detached, --rm), exit codes as Docker's, ps, logs, exec,
// inspect, stop, restart, pause, rename, rm.
func TestDockerRun(t *testing.T) {
	d := withBusybox(t)
	if out, code := docker(t, d, "run", "--rm", "busybox", "echo", "hello"); out != "hello\n" || code != 0 {
		t.Errorf("run --rm echo: %q, exit %d", out, code)
	}
	if out, code := docker(t, d, "run", "--name", "three", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"); code != 3 || !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
		t.Errorf("run exit 3: %q, exit %d", out, code)
	}
	if out, code := docker(t, d, "run", "--rm", "busybox", "/no/such"); code != 127 || !strings.Contains(out, "OCI runtime create failed: ") || !strings.Contains(out, "no such file or directory") {
		t.Errorf("missing command: %q, exit %d", out, code)
	}
	if out, code := docker(t, d, "run", "--rm", "no-such-image:v1"); code != 125 {
		t.Errorf("missing image: %q, exit %d", out, code)
	}
	// dockerd's words for a bad name at rename and a bad commit change.
	tmp := strings.TrimSpace(d.Must(t, "create", "busybox", "true"))
	if out, _ := docker(t, d, "rename", tmp, "bad name"); !strings.Contains(out, "Error when allocating new name: Invalid container name (/bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed") {
		t.Errorf("rename to a bad name: %q", out)
	}
	if out, _ := docker(t, d, "commit", "-c", "BOGUS x", tmp, "x:1"); !strings.Contains(out, "bogus is not a valid change command") {
		t.Errorf("commit -c BOGUS: %q", out)
	}
	if out, _ := docker(t, d, "unpause", tmp); !strings.Contains(out, "Container "+tmp+" is not paused") {
		t.Errorf("unpause of a created container: %q", out)
	}
	if out, code := docker(t, d, "kill", "nope"); code == 0 || !strings.Contains(out, "Cannot kill container: nope: No such container: nope") {
		t.Errorf("kill of a missing container: %q", out)
	}
	d.Must(t, "rm", tmp)
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.Name}}", "three"); out != "exited 3 /three\n" {
		t.Errorf("inspect: %q", out)
	}
	if out := d.Must(t, "logs", "three"); out != "out\nerr\n" && out != "err\nout\n" {
		t.Errorf("logs: %q", out)
	}
	// --details: each line after the entry's attributes (none) and a
	// space, as dockerd writes it.
	if out := d.Must(t, "logs", "--details", "three"); out != " out\n err\n" && out != " err\n out\n" {
		t.Errorf("logs --details: %q", out)
	}
	if out := d.Must(t, "ps", "-a", "--filter", "name=three", "--format", "{{.Command}}", "--no-trunc"); out != "\"sh -c 'echo out; echo err >&2; exit 3'\"\n" {
		t.Errorf("ps command: %q", out)
	}

	id := strings.TrimSpace(d.Must(t, "run", "-d", "--name", "sleeper", "-e", "WHO=berth", "busybox", "sleep", "1000"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q", id)
	}
	if out := d.Must(t, "ps", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "sleeper Up ") {
		t.Errorf("ps: %q", out)
	}
	if out := d.Must(t, "exec", "sleeper", "sh", "-c", "echo $WHO; hostname"); out != "berth\n"+id[:12]+"\n" {
		t.Errorf("exec: %q", out)
	}
	if _, code := docker(t, d, "exec", "sleeper", "sh", "-c", "exit 5"); code != 5 {
		t.Errorf("exec exit code %d, want 5", code)
	}
	d.Must(t, "pause", "sleeper")
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}}", "sleeper"); out != "paused\n" {
		t.Errorf("after pause: %q", out)
	}
	d.Must(t, "unpause", "sleeper")
	d.Must(t, "rename", "sleeper", "napper")
	if out, code := docker(t, d, "rm", "napper"); code == 0 || !strings.Contains(out, "cannot remove a running container") {
		t.Errorf("rm of a running container: %q, exit %d", out, code)
	}
	d.Must(t, "restart", "-t", "1", "napper")
	if out := d.Must(t, "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", "napper"); out != "true 0\n" {
		t.Errorf("after restart: %q", out)
	}
	start := time.Now()
	d.Must(t, "stop", "-t", "1", "napper")
	if el := time.Since(start); el < time.Second || el > 8*time.Second {
		t.Errorf("stop -t 1 took %v", el)
	}
	if out := d.Must(t, "inspect", "-f", "{{.State.ExitCode}}", "napper"); out != "137\n" {
		t.Errorf("exit code after stop: %q", out)
	}
	d.Must(t, "rm", "napper", "three")
	if out := d.Must(t, "ps", "-aq"); out != "" {
		t.Errorf("containers left: %q", out)
	}
}

// TestLiveRestore: berthd killed with SIGKILL while containers run; the
// containers keep running and keep logging; a restarted berthd finds them,
// reports the exit of the one that ended meanwhile, and stops the other.
func TestLiveRestore(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "run", "-d", "--name", "ticker", "busybox", "sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done")
	d.Must(t, "run", "-d", "--name", "brief", "busybox", "sh", "-c", "sleep 1; exit 4")
	pid := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{.State.Pid}}", "ticker"))
	var briefPid int
	fmt.Sscan(d.Must(t, "inspect", "-f", "{{.State.Pid}}", "brief"), &briefPid)
	d.Crash()
	// brief ends while no daemon runs (its shim reaps it).
	waitFor(t, "brief's process to end", func() bool { return briefPid <= 0 || syscall.Kill(briefPid, 0) != nil })
	var p int
	if _, err := fmt.Sscan(pid, &p); err != nil || syscall.Kill(p, 0) != nil {
		t.Fatalf("the container's process %s did not survive the daemon: %v", pid, err)
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "ticker"); out != "running "+pid+"\n" {
		t.Errorf("ticker after the restart: %q (pid was %s)", out, pid)
	}
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "brief"); out != "exited 4\n" {
		t.Errorf("brief after the restart: %q", out)
	}
	before := strings.Count(d.Must(t, "logs", "ticker"), "tick")
	time.Sleep(600 * time.Millisecond)
	if after := strings.Count(d.Must(t, "logs", "ticker"), "tick"); after <= before {
		t.Errorf("the log stopped growing: %d then %d lines", before, after)
	}
	d.Must(t, "stop", "ticker")
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "ticker"); out != "exited 0\n" {
		t.Errorf("ticker after stop: %q", out)
	}
}

// TestKillZeroStaysInside: a container's processes run in a session and
// process group of their own (pgrp = sid = 1 inside, as runc's), so a
// "kill 0" from the container (a shell's trap "kill 0" EXIT) signals the
// container's group only. In the shim's group, it killed the shim: the
// container was reported exited 255 while its process ran on, orphaned,
// out of reach of rm -f.
func TestKillZeroStaysInside(t *testing.T) {
	d := withBusybox(t)
	// The kill waits for the exec below, however slow the machine.
	d.Must(t, "run", "-d", "--name", "k0", "busybox", "sh", "-c", "until [ -e /go ]; do sleep 0.1; done; kill -HUP 0; sleep 1; echo survived")
	// Fields 1, 5 and 6 of stat: pid, process group, session.
	out := d.Must(t, "exec", "k0", "sh", "-c", "cut -d' ' -f1,5,6 /proc/1/stat /proc/$$/stat; touch /go")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "1 1 1" {
		t.Errorf("init's pid, process group and session: %q, want 1 1 1", out)
	} else if f := strings.Fields(lines[1]); len(f) != 3 || f[0] != f[1] || f[0] != f[2] {
		t.Errorf("an exec'd process does not lead a session of its own: %q", lines[1])
	}
	if out := d.Must(t, "wait", "k0"); out != "0\n" {
		t.Errorf("exit code after kill 0: %q, want 0 (a shim killed by it reports 255)", out)
	}
	if out := d.Must(t, "logs", "k0"); out != "survived\n" {
		t.Errorf("logs: %q", out)
	}
}

// TestContainerFiles: top, stats, diff, cp both ways, update, commit and
// export through the docker CLI.
func TestContainerFiles(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "run", "-d", "--name", "box", "-m", "64m", "busybox", "sh", "-c", "echo hi > /new; rm /bin/vi; exec sleep 1000")
	// The shell has made its changes once it is replaced by the sleep.
	waitFor(t, "box's shell to exec its sleep", func() bool { return !strings.Contains(d.Must(t, "top", "box"), "sh -c") })
	if out := d.Must(t, "top", "box"); !strings.Contains(out, "PID") || !strings.Contains(out, "sleep 1000") {
		t.Errorf("top: %q", out)
	}
	if out := d.Must(t, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "box"); !strings.HasPrefix(out, "box ") || !strings.Contains(out, "/ 64MiB 1") {
		t.Errorf("stats: %q", out)
	}
	diff := d.Must(t, "diff", "box")
	for _, want := range []string{"A /new\n", "D /bin/vi\n", "C /bin\n"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	// The runtime's mount points and /.dockerenv are in the init layer,
	// below the writable one: the diff does not show them (dockerd's
	// does not), and a container can tell it is one.
	if strings.Contains(diff, "/etc") || strings.Contains(diff, "/dev") || strings.Contains(diff, "dockerenv") {
		t.Errorf("diff shows the init layer:\n%s", diff)
	}
	if out := d.Must(t, "exec", "box", "ls", "-l", "/.dockerenv", "/etc/mtab"); !strings.Contains(out, "-rwxr-xr-x") || !strings.Contains(out, "/etc/mtab -> /proc/mounts") {
		t.Errorf("init layer files: %q", out)
	}
	src := t.TempDir() + "/in.txt"
	if err := writeFile(src, "copied in\n"); err != nil {
		t.Fatal(err)
	}
	d.Must(t, "cp", src, "box:/tmp/")
	if out := d.Must(t, "exec", "box", "cat", "/tmp/in.txt"); out != "copied in\n" {
		t.Errorf("cp in: %q", out)
	}
	dst := t.TempDir()
	d.Must(t, "cp", "box:/new", dst)
	if b, err := readFile(dst + "/new"); err != nil || b != "hi\n" {
		t.Errorf("cp out: %q, %v", b, err)
	}
	if out, code := docker(t, d, "cp", "box:/no/such", dst); code == 0 || !strings.Contains(out, "No such container:path: box:/no/such") {
		t.Errorf("cp of a missing path: %q, exit %d", out, code)
	}
	d.Must(t, "update", "--memory", "128m", "box")
	if out := d.Must(t, "inspect", "-f", "{{.HostConfig.Memory}}", "box"); out != "134217728\n" {
		t.Errorf("memory after update: %q", out)
	}
	d.Must(t, "commit", "-c", `CMD ["cat", "/new"]`, "box", "committed:v1")
	if out := d.Must(t, "run", "--rm", "committed:v1"); out != "hi\n" {
		t.Errorf("run of the committed image: %q", out)
	}
	if out, code := docker(t, d, "run", "--rm", "committed:v1", "ls", "/bin/vi"); code == 0 {
		t.Errorf("the deleted file is back in the committed image: %q", out)
	}
	d.Must(t, "stop", "-t", "0", "box")
	out := d.Must(t, "export", "box")
	if !strings.Contains(out, "new") || !strings.Contains(out, "bin/busybox") || !strings.Contains(out, ".dockerenv") {
		t.Errorf("export of a stopped container lacks files (%d bytes)", len(out))
	}
	// The committed layer holds what the container did, nothing of the
	// init layer.
	if files := topLayerFiles(t, d.Must(t, "save", "committed:v1")); !slices.Equal(files, []string{"bin/", "bin/.wh.vi", "new", "tmp/", "tmp/in.txt"}) {
		t.Errorf("the committed layer: %v", files)
	}
}

// topLayerFiles lists the newest layer of a docker save archive.
func topLayerFiles(t *testing.T, archive string) []string {
	t.Helper()
	entries := map[string][]byte{}
	tr := tar.NewReader(strings.NewReader(archive))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		entries[h.Name] = b
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 || len(manifest[0].Layers) == 0 {
		t.Fatalf("manifest.json: %v %s", err, entries["manifest.json"])
	}
	var files []string
	lr := tar.NewReader(bytes.NewReader(entries[manifest[0].Layers[len(manifest[0].Layers)-1]]))
	for {
		h, err := lr.Next()
		if err != nil {
			break
		}
		files = append(files, h.Name)
	}
	slices.Sort(files)
	return files
}

// TestEntrypointAndRestartRm: --entrypoint "" clears the image's
// entrypoint and cmd (dockerd's merge), also when the container starts
// again; a --rm container survives docker restart (it is removed at its
// final exit only).
func TestEntrypointAndRestartRm(t *testing.T) {
	d := withBusybox(t)
	base := strings.TrimSpace(d.Must(t, "create", "busybox", "true"))
	d.Must(t, "commit", "-c", `ENTRYPOINT ["sleep"]`, "-c", `CMD ["3"]`, base, "ep:v1")
	if out := d.Must(t, "run", "--name", "ep", "--entrypoint", "", "ep:v1", "echo", "hi"); out != "hi\n" {
		t.Errorf("--entrypoint \"\" ep:v1 echo hi: %q", out)
	}
	if out := d.Must(t, "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Path}}", "ep"); out != "null [\"echo\",\"hi\"] echo\n" {
		t.Errorf("recorded: %q", out)
	}
	if out := d.Must(t, "start", "-a", "ep"); out != "hi\n" {
		t.Errorf("second start: %q", out)
	}
	if out, code := docker(t, d, "run", "--rm", "--entrypoint", "", "ep:v1"); code != 125 || !strings.Contains(out, "No command specified") {
		t.Errorf("--entrypoint \"\" without a command: exit %d, %q", code, out)
	}

	d.Must(t, "run", "-d", "--rm", "--name", "rr", "busybox", "sleep", "100")
	d.Must(t, "restart", "-t", "1", "rr")
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}}", "rr"); out != "running\n" {
		t.Errorf("--rm container after restart: %q", out)
	}
	d.Must(t, "restart", "-t", "1", "rr") // the writable layer mounts a third time
	d.Must(t, "stop", "-t", "1", "rr")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, code := docker(t, d, "inspect", "rr"); code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("--rm container still there after its stop")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
