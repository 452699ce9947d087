package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunOptionsAsDocker runs containers with the options of docker run
// that change the process and compares the output of both CLIs.
func TestRunOptionsAsDocker(t *testing.T) { both(t, testRunOptionsAsDocker) }

func testRunOptionsAsDocker(t *testing.T) {
	setup(t)
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("# comment\nFROMFILE=yes\nSPACED=a b\n"), 0o644)
	for _, args := range [][]string{
		{"run", "--rm", "--env-file", envFile, "busybox", "sh", "-c", `echo "$FROMFILE|$SPACED"`},
		{"run", "--rm", "-u", "nobody", "busybox", "id"},
		{"run", "--rm", "-u", "12:34", "-w", "/new/dir", "busybox", "sh", "-c", "id -u; id -g; pwd; ls -ld /new/dir | cut -c1-10"},
		{"run", "--rm", "-e", "X=1", "-e", "PATH=/bin", "busybox", "env"},
		{"run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"},
		{"run", "--rm", "-h", "box.example", "busybox", "sh", "-c", "hostname; cat /etc/hostname"},
		// With --init the command is not pid 1.
		{"run", "--rm", "--init", "busybox", "sh", "-c", "echo $$"},
		{"run", "--rm", "busybox", "sh", "-c", "echo $$"},
		{"run", "--rm", "--pull", "never", "busybox", "true"},
	} {
		same(t, args...)
	}
	// start -a -i feeds stdin to a created container.
	name := testutil_unique(t)
	t.Cleanup(func() { dockerRun(nil, "rm", "-f", name) })
	berth(t, "create", "-i", "--name", name, "busybox", "sh", "-c", "read x; echo got $x")
	b, code := berthRun([]byte("hello\n"), "start", "-a", "-i", name)
	if code != 0 || b.stdout != "got hello\n" {
		t.Fatalf("start -a -i: exit %d %q %q", code, b.stdout, b.stderr)
	}
	// The docker CLI does the same on this daemon.
	d, code := dockerRun([]byte("again\n"), "start", "-a", "-i", name)
	if code != 0 || d.stdout != "got again\n" {
		t.Fatalf("docker start -a -i: exit %d %q %q", code, d.stdout, d.stderr)
	}
}

// TestLogsFollowAndRotation: logs -f follows a running container until
// it exits, and --log-opt max-size/max-file bound the log while logs
// still shows its newest lines.
func TestLogsFollowAndRotation(t *testing.T) { both(t, testLogsFollowAndRotation) }

func testLogsFollowAndRotation(t *testing.T) {
	setup(t)
	name := container(t, "", "busybox", "sh", "-c", "echo first; sleep 2; echo second")
	start := time.Now()
	b, code := berthRun(nil, "logs", "-f", name)
	if code != 0 || b.stdout != "first\nsecond\n" {
		t.Fatalf("logs -f: exit %d %q %q", code, b.stdout, b.stderr)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("logs -f returned after %s, before the container ended", time.Since(start))
	}

	rot := container(t, "-rot", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox",
		"sh", "-c", `i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done`)
	berth(t, "wait", rot)
	out := berth(t, "logs", rot)
	ls := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if ls[len(ls)-1] != "line-299" || ls[0] == "line-0" || len(out) > 4096 {
		t.Fatalf("logs of a rotated log (%d lines, %d bytes): first %q last %q", len(ls), len(out), ls[0], ls[len(ls)-1])
	}
	// The kept lines are consecutive: rotation lost nothing in between.
	for i := 1; i < len(ls); i++ {
		var a, c int
		if _, err := fmtSscan(ls[i-1], &a); err != nil {
			t.Fatal(err)
		}
		if _, err := fmtSscan(ls[i], &c); err != nil || c != a+1 {
			t.Fatalf("rotated log skips from %q to %q", ls[i-1], ls[i])
		}
	}
	same(t, "logs", "--tail", "3", rot)
}

// TestStopSignalAndTimeout: --stop-signal reaches the process on stop,
// and --stop-timeout bounds the wait before SIGKILL.
func TestStopSignalAndTimeout(t *testing.T) { both(t, testStopSignalAndTimeout) }

func testStopSignalAndTimeout(t *testing.T) {
	setup(t)
	name := container(t, "", "--stop-signal", "USR1", "--stop-timeout", "1", "busybox", "sh", "-c",
		"trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done")
	waitLogs(t, name, "ready")
	start := time.Now()
	berth(t, "stop", name)
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("stop with --stop-timeout 1 took %s", took)
	}
	if out := berth(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name); out != "exited 137\n" {
		t.Fatalf("after stop: %q", out)
	}
	waitLogs(t, name, "got-usr1")
}

// TestRestartOnFailure: on-failure:2 restarts a failing container twice,
// then leaves it exited, as dockerd.
func TestRestartOnFailure(t *testing.T) { both(t, testRestartOnFailure) }

func testRestartOnFailure(t *testing.T) {
	setup(t)
	name := container(t, "", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := berth(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", name)
		if out == "exited 3 2\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("on-failure:2 never settled: %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The state stays: no third restart.
	time.Sleep(time.Second)
	if out := berth(t, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name); out != "exited 2\n" {
		t.Fatalf("after the retries: %q", out)
	}
	if out := berth(t, "logs", name); out != "run\nrun\nrun\n" {
		t.Fatalf("logs of three runs: %q", out)
	}
}

// TestPsFiltersPruneDf: status filters, prune and df as docker prints
// them.
func TestPsFiltersPruneDf(t *testing.T) { both(t, testPsFiltersPruneDf) }

func testPsFiltersPruneDf(t *testing.T) {
	setup(t)
	up := container(t, "-up", "busybox", "sleep", "600")
	down := container(t, "-down", "busybox", "true")
	berth(t, "wait", down)
	for _, args := range [][]string{
		{"ps", "-a", "--filter", "status=exited", "--filter", "name=" + testutil_unique(t), "--format", "{{.Names}}"},
		{"ps", "--filter", "status=running", "--filter", "name=" + up, "--format", "{{.Names}} {{.State}}"},
		{"ps", "-a", "-s", "--filter", "name=" + down, "--format", "{{.Names}} {{.Size}}"},
		{"system", "df", "--format", "{{.Type}}"},
	} {
		same(t, args...)
	}
	out := berth(t, "container", "prune", "-f")
	if !strings.Contains(out, "Deleted Containers:\n") || !strings.Contains(out, "Total reclaimed space:") {
		t.Fatalf("container prune printed %q", out)
	}
	if _, code := berthRun(nil, "inspect", down); code == 0 {
		t.Fatal("prune left the exited container")
	}
	if out := berth(t, "inspect", "-f", "{{.State.Running}}", up); out != "true\n" {
		t.Fatalf("prune touched the running container: %q", out)
	}
	if out := berth(t, "container", "prune", "-f"); out != "Total reclaimed space: 0B\n" {
		t.Fatalf("second prune printed %q", out)
	}
}

// TestEventsSequenceAsDockerd: the container events of run, stop (TERM,
// ignored by pid 1, then KILL), start, kill and rm
// come in dockerd's order, on each daemon.
func TestEventsSequenceAsDockerd(t *testing.T) { both(t, testEventsSequenceAsDockerd) }

func testEventsSequenceAsDockerd(t *testing.T) {
	setup(t)
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	name := container(t, "", "busybox", "sleep", "600")
	berth(t, "stop", "-t", "1", name)
	berth(t, "start", name)
	berth(t, "kill", name)
	berth(t, "wait", name)
	berth(t, "rm", name)
	out := same(t, "events", "--since", since, "--until", pastNow(), "--filter", "container="+name, "--format", "{{.Action}}")
	want := "create\nstart\nkill\nkill\ndie\nstop\nstart\nkill\ndie\ndestroy\n"
	if out != want {
		t.Fatalf("events on %s:\n%s\nwant (dockerd 20.10's):\n%s", cur.name, out, want)
	}
}

// waitLogs waits until the container's log has want.
func waitLogs(t *testing.T, name, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := berthRun(nil, "logs", name)
		if strings.Contains(out.stdout, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log of %s never had %q: %q", name, want, out.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fmtSscan reads the number of a "line-N".
func fmtSscan(line string, n *int) (int, error) {
	return fmt.Sscanf(line, "line-%d", n)
}
