package daemon_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestLogsFollowCreated: docker logs -f on a container that never ran
// returns at once, empty and successful, as dockerd.
func TestLogsFollowCreated(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "create", "--name", "cl", "busybox", "echo", "hi")
	start := time.Now()
	out, code := docker(t, d, "logs", "-f", "cl")
	if out != "" || code != 0 {
		t.Errorf("logs -f of a created container: %q, exit %d", out, code)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("logs -f of a created container took %v", el)
	}
}

// waitInspect polls docker inspect -f format on name until it prints want.
func waitInspect(t *testing.T, d *berthd.Daemon, name, format, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out := d.Must(t, "inspect", "-f", format, name)
		if out == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: inspect %s is %q after %v, want %q", name, format, out, limit, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKillPaused: docker kill (SIGKILL) of a paused container ends it at
// once (exited 137), as dockerd, which thaws it after the signal; another
// signal stays pending until unpause.
func TestKillPaused(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "run", "-d", "--name", "pk", "busybox", "sleep", "100")
	d.Must(t, "pause", "pk")
	if out := d.Must(t, "kill", "pk"); out != "pk\n" {
		t.Errorf("kill printed %q", out)
	}
	waitInspect(t, d, "pk", "{{.State.Status}} {{.State.ExitCode}} {{.State.Paused}}", "exited 137 false\n", 5*time.Second)

	d.Must(t, "run", "-d", "--name", "pt", "busybox", "sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.1; done")
	d.Must(t, "pause", "pt")
	d.Must(t, "kill", "-s", "USR1", "pt")
	time.Sleep(500 * time.Millisecond)
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}}", "pt"); out != "paused\n" {
		t.Errorf("after kill -s USR1 of a paused container: %q, want it still paused", out)
	}
	d.Must(t, "unpause", "pt")
	waitInspect(t, d, "pt", "{{.State.Status}} {{.State.ExitCode}}", "exited 7\n", 5*time.Second)
}

// TestExecStartFailure: an exec that cannot start (unknown user, missing
// binary, empty command, bad working directory) ends with 126, as
// dockerd, and the exec's inspect says so.
func TestExecStartFailure(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "run", "-d", "--name", "up1", "busybox", "sleep", "1000")
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-u", "nouser", "up1", "id"}, "nouser"},
		{[]string{"up1", "/nope"}, "/nope"},
		{[]string{"up1", ""}, ""},
		{[]string{"-w", "/nonexist", "up1", "pwd"}, "/nonexist"},
		{[]string{"-w", "rel", "up1", "pwd"}, "rel"},
	} {
		out, code := docker(t, d, append([]string{"exec"}, c.args...)...)
		if code != 126 || !strings.Contains(out, c.msg) {
			t.Errorf("exec %q: %q, exit %d, want 126", c.args, out, code)
		}
	}

	// The API: the start's stream carries the error, the inspect the code.
	r := berthd.Raw(t, d.Socket, "POST", "/v1.41/containers/up1/exec", "application/json",
		`{"User":"nouser","Cmd":["id"],"AttachStdout":true,"AttachStderr":true}`)
	var created struct{ Id string }
	if err := json.Unmarshal([]byte(r.Body), &created); err != nil || r.Status != 201 {
		t.Fatalf("exec create: %d %q", r.Status, r.Body)
	}
	r = berthd.Raw(t, d.Socket, "POST", "/v1.41/exec/"+created.Id+"/start", "application/json", `{}`)
	if r.Status != 200 || !strings.Contains(r.Body, "unable to find user nouser") {
		t.Errorf("exec start: %d %q", r.Status, r.Body)
	}
	r = berthd.Raw(t, d.Socket, "GET", "/v1.41/exec/"+created.Id+"/json", "", "")
	var insp struct {
		Running  bool
		ExitCode *int
	}
	if err := json.Unmarshal([]byte(r.Body), &insp); err != nil || insp.Running || insp.ExitCode == nil || *insp.ExitCode != 126 {
		t.Errorf("exec inspect after a failed start: %s", r.Body)
	}
}

// TestUserStartResetsRestartCount: a start or restart by the user sets
// RestartCount back to 0, the policy's restarts count, and FinishedAt
// keeps the previous run's end while the container runs, as dockerd.
func TestUserStartResetsRestartCount(t *testing.T) {
	d := withBusybox(t)
	// The first run fails; the policy's restart finds the marker and runs.
	script := "if test -e /ran; then exec sleep 100; fi; touch /ran; exit 2"
	const zero = "0001-01-01T00:00:00Z\n"
	for _, name := range []string{"rcs", "rcr"} {
		d.Must(t, "run", "-d", "--restart", "on-failure", "--name", name, "busybox", "sh", "-c", script)
		waitInspect(t, d, name, "{{.State.Status}} {{.RestartCount}}", "running 1\n", 10*time.Second)
		if out := d.Must(t, "inspect", "-f", "{{.State.FinishedAt}}", name); out == zero {
			t.Errorf("%s: FinishedAt zeroed by the policy's restart", name)
		}
	}

	d.Must(t, "stop", "-t", "0", "rcs")
	stopped := d.Must(t, "inspect", "-f", "{{.State.FinishedAt}}", "rcs")
	d.Must(t, "start", "rcs")
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "rcs"); out != "running 0\n" {
		t.Errorf("after docker start: %q, want running 0", out)
	}
	if out := d.Must(t, "inspect", "-f", "{{.State.FinishedAt}}", "rcs"); out != stopped {
		t.Errorf("FinishedAt after docker start: %q, want the stop's %q", out, stopped)
	}

	before := d.Must(t, "inspect", "-f", "{{.State.FinishedAt}}", "rcr")
	d.Must(t, "restart", "-t", "0", "rcr")
	if out := d.Must(t, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "rcr"); out != "running 0\n" {
		t.Errorf("after docker restart: %q, want running 0", out)
	}
	if out := d.Must(t, "inspect", "-f", "{{.State.FinishedAt}}", "rcr"); out == zero || out == before {
		t.Errorf("FinishedAt after docker restart: %q, want the stop's (was %q)", out, before)
	}
}

// TestPsPortFilters: docker ps --filter publish=... and expose=... match
// the container ports published or exposed, as dockerd.
func TestPsPortFilters(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "create", "--name", "web", "-p", "8080:80", "--expose", "443", "busybox", "true")
	d.Must(t, "create", "--name", "dns", "-p", "8053:53/udp", "busybox", "true")
	for filter, want := range map[string]string{
		"publish=80":            "web\n",
		"publish=80/tcp":        "web\n",
		"publish=8080":          "",
		"publish=8000-8080/udp": "",
		"publish=50-60/udp":     "dns\n",
		"expose=443":            "web\n",
		"expose=53/udp":         "dns\n",
		"expose=1-65535/sctp":   "",
	} {
		out, code := docker(t, d, "ps", "-a", "--filter", filter, "--format", "{{.Names}}")
		if out != want || code != 0 {
			t.Errorf("ps --filter %s: %q, exit %d, want %q", filter, out, code, want)
		}
	}
	// The table header alone when nothing matches, as dockerd.
	if out, code := docker(t, d, "ps", "-a", "--filter", "publish=81", "--format", "table {{.Names}}"); out != "NAMES\n" || code != 0 {
		t.Errorf("ps --filter publish=81: %q, exit %d", out, code)
	}
	if out, code := docker(t, d, "ps", "--filter", "publish=8080:80"); code != 1 || !strings.Contains(out, "should not contain ':'") {
		t.Errorf("ps --filter publish=8080:80: %q, exit %d", out, code)
	}
}
