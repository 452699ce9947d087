package walls_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

func health(t *testing.T, d *berthd.Daemon, name string) *container.Health {
	t.Helper()
	var h *container.Health
	if err := json.Unmarshal([]byte(d.Must(t, "inspect", "-f", "{{json .State.Health}}", name)), &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func waitHealth(t *testing.T, d *berthd.Daemon, name string, want container.HealthStatus) *container.Health {
	t.Helper()
	var h *container.Health
	eventually(t, 20*time.Second, name+" "+string(want), func() (bool, string) {
		h = health(t, d, name)
		b, _ := json.Marshal(h)
		return h != nil && h.Status == want, string(b)
	})
	return h
}

// TestHealthCheckFlags: --health-* flags of both CLIs give a prober that
// makes the container healthy once its check passes and unhealthy after
// --health-retries failures, with Docker's log shape, events, ps status
// and filter.
func TestHealthCheckFlags(t *testing.T) {
	d := daemon(t)
	for _, c := range clis {
		t.Run(c.name, func(t *testing.T) {
			name := "h-" + c.name
			since := time.Now().Add(-time.Second).Unix()
			// The check passes once the test says so (/tmp/go); until then
			// the start period keeps failures from counting, however slow
			// the machine.
			out, code := c.run(t, d, "run", "-d", "--name", name,
				"--health-cmd", "cat /tmp/ok", "--health-interval", "200ms", "--health-retries", "2", "--health-start-period", "10m",
				"busybox", "sh", "-c", "until [ -e /tmp/go ]; do sleep 0.1; done; echo fine > /tmp/ok; exec sleep 1000")
			if code != 0 {
				t.Fatalf("run: exit %d: %s", code, out)
			}
			if st := inspect(t, d, "{{.State.Health.Status}}", name); st != "starting" {
				t.Errorf("right after start: status %q, want starting", st)
			}
			if out, _ := c.run(t, d, "ps", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.Contains(out, "(health: starting)") {
				t.Errorf("ps while starting: %q", out)
			}
			d.Must(t, "exec", name, "touch", "/tmp/go")
			h := waitHealth(t, d, name, container.Healthy)
			last := h.Log[len(h.Log)-1]
			if last.ExitCode != 0 || last.Output != "fine\n" || last.End.Before(last.Start) || h.FailingStreak != 0 {
				t.Errorf("healthy: %+v, last %+v", h, last)
			}
			if out, _ := c.run(t, d, "ps", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.Contains(out, "(healthy)") {
				t.Errorf("ps when healthy: %q", out)
			}
			if out, _ := c.run(t, d, "ps", "-q", "--no-trunc", "--filter", "health=healthy"); !strings.Contains(out, inspect(t, d, "{{.Id}}", name)) {
				t.Errorf("ps --filter health=healthy: %q", out)
			}

			d.Must(t, "exec", name, "rm", "/tmp/ok")
			h = waitHealth(t, d, name, container.Unhealthy)
			if h.FailingStreak < 2 || len(h.Log) > 5 {
				t.Errorf("unhealthy: streak %d, %d log entries", h.FailingStreak, len(h.Log))
			}
			last = h.Log[len(h.Log)-1]
			if last.ExitCode != 1 || !strings.Contains(last.Output, "/tmp/ok") {
				t.Errorf("failed check: %+v", last)
			}
			if out, _ := c.run(t, d, "ps", "-q", "--no-trunc", "--filter", "health=unhealthy"); !strings.Contains(out, inspect(t, d, "{{.Id}}", name)) {
				t.Errorf("ps --filter health=unhealthy: %q", out)
			}
			// The probes' execs are not the user's.
			if ids := inspect(t, d, "{{json .ExecIDs}}", name); ids != "null" && ids != "[]" {
				t.Errorf("ExecIDs after probes: %s", ids)
			}
			ev := d.Must(t, "events", "--since", itoa(since), "--until", itoa(time.Now().Unix()+1),
				"--filter", "container="+name, "--format", "{{.Action}}")
			if !strings.Contains(ev, "health_status: healthy\n") || !strings.Contains(ev, "health_status: unhealthy\n") {
				t.Errorf("events: %q", ev)
			}
			if strings.Count(ev, "health_status: healthy\n") != 1 {
				t.Errorf("health_status: healthy should be published once, on the change: %q", ev)
			}

			// Stopped, the prober stops: the log no longer grows.
			d.Must(t, "stop", "-t", "1", name)
			n := len(health(t, d, name).Log)
			time.Sleep(600 * time.Millisecond)
			if h := health(t, d, name); len(h.Log) != n && len(h.Log) != 5 {
				t.Errorf("log grew after stop: %d -> %d", n, len(h.Log))
			} else if h.Status != container.Unhealthy {
				t.Errorf("stopped container's health %q, want unhealthy as dockerd", h.Status)
			}
			// Started again, it is starting again and keeps checking.
			d.Must(t, "start", name)
			if st := inspect(t, d, "{{.State.Health.Status}}", name); st != "starting" {
				t.Errorf("after restart: %q, want starting", st)
			}
			waitHealth(t, d, name, container.Healthy)
			// Its probes' events would push the next subtest's out of the
			// daemon's history of 256 that events --since reads.
			d.Must(t, "rm", "-f", name)
		})
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// TestHealthCheckTimeout: a check outliving --health-timeout is killed
// and counts as a failure with Docker's message.
func TestHealthCheckTimeout(t *testing.T) {
	d := daemon(t)
	d.Must(t, "run", "-d", "--name", "slow", "--health-cmd", "echo begun; sleep 30", "--health-interval", "300ms",
		"--health-timeout", "200ms", "--health-retries", "1", "busybox", "sleep", "1000")
	h := waitHealth(t, d, "slow", container.Unhealthy)
	last := h.Log[len(h.Log)-1]
	// Its output so far follows the message (unless the machine was too
	// slow for the check to print anything within the timeout).
	if last.ExitCode != -1 || last.Output != "Health check exceeded timeout (200ms): begun\n" && last.Output != "Health check exceeded timeout (200ms)" {
		t.Errorf("timed-out check: %+v", last)
	}
	// The checks are killed: after a few more, no sleep 30 piles up in
	// the container (one may be under way).
	time.Sleep(1500 * time.Millisecond)
	if out := d.Must(t, "exec", "slow", "ps"); strings.Count(out, "sleep 30") > 1 {
		t.Errorf("timed-out checks still run:\n%s", out)
	}
}

// TestHealthCheckFromImage: the image's HEALTHCHECK applies, the run's
// flags override its fields, and --no-healthcheck disables it.
func TestHealthCheckFromImage(t *testing.T) {
	d := daemon(t)
	d.Must(t, "load", "-i", withHealthcheck(t, "checked:v1", `{"Test":["CMD","sh","-c","exit 3"],"Interval":200000000,"Retries":1}`))
	if hc := inspect(t, d, "{{json .Config.Healthcheck}}", "checked:v1"); !strings.Contains(hc, `"Test":["CMD","sh","-c","exit 3"]`) {
		t.Fatalf("committed image's healthcheck: %s", hc)
	}
	d.Must(t, "run", "-d", "--name", "inherit", "checked:v1", "sleep", "1000")
	h := waitHealth(t, d, "inherit", container.Unhealthy)
	if h.Log[len(h.Log)-1].ExitCode != 3 {
		t.Errorf("image check: %+v", h.Log[len(h.Log)-1])
	}
	d.Must(t, "run", "-d", "--name", "override", "--health-cmd", "true", "checked:v1", "sleep", "1000")
	waitHealth(t, d, "override", container.Healthy)
	if iv := inspect(t, d, "{{.Config.Healthcheck.Interval}}", "override"); iv != "200ms" {
		t.Errorf("merged interval %q, want the image's 200ms", iv)
	}
	for _, c := range clis {
		name := "none-" + c.name
		if out, code := c.run(t, d, "run", "-d", "--name", name, "--no-healthcheck", "checked:v1", "sleep", "1000"); code != 0 {
			t.Fatalf("%s run --no-healthcheck: %s", c.name, out)
		}
		time.Sleep(500 * time.Millisecond)
		if h := health(t, d, name); h != nil {
			t.Errorf("%s --no-healthcheck: health %+v", c.name, h)
		}
		if out, _ := c.run(t, d, "ps", "--filter", "name="+name, "--format", "{{.Status}}"); strings.Contains(out, "health") {
			t.Errorf("%s ps with --no-healthcheck: %q", c.name, out)
		}
	}
	if out, code := docker(t, d, "run", "--health-interval", "-1s", "busybox", "true"); code == 0 {
		t.Errorf("negative interval accepted: %s", out)
	}
}

// TestHealthCheckSurvivesDaemonRestart: a container keeps being checked
// by the daemon that finds it running after a crash.
func TestHealthCheckSurvivesDaemonRestart(t *testing.T) {
	d := daemon(t)
	d.Must(t, "run", "-d", "--name", "lr", "--health-cmd", "date +%s%N", "--health-interval", "200ms", "busybox", "sleep", "1000")
	waitHealth(t, d, "lr", container.Healthy)
	d.Crash()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	before := health(t, d, "lr").Log
	eventually(t, 10*time.Second, "checks after the restart", func() (bool, string) {
		h := health(t, d, "lr")
		return h.Status == container.Healthy && h.Log[len(h.Log)-1].Start.After(before[len(before)-1].Start), h.Log[len(h.Log)-1].Output
	})
}

// withHealthcheck writes a docker-archive of the busybox fixture named
// ref whose config carries the HEALTHCHECK hc (JSON), as a Dockerfile's
// HEALTHCHECK would leave it.
func withHealthcheck(t *testing.T, ref, hc string) string {
	t.Helper()
	f, err := os.Open(images.Busybox(t).Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
		order = append(order, h.Name)
	}
	var manifest []map[string]any
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("fixture manifest.json: %v", err)
	}
	oldCfg := manifest[0]["Config"].(string)
	var cfg map[string]any
	if err := json.Unmarshal(files[oldCfg], &cfg); err != nil {
		t.Fatal(err)
	}
	var health any
	if err := json.Unmarshal([]byte(hc), &health); err != nil {
		t.Fatal(err)
	}
	cfg["config"].(map[string]any)["Healthcheck"] = health
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	newCfg := fmt.Sprintf("%x.json", sha256.Sum256(b))
	delete(files, oldCfg)
	files[newCfg] = b
	order = append(slices.DeleteFunc(order, func(n string) bool { return n == oldCfg }), newCfg)
	manifest[0]["Config"] = newCfg
	manifest[0]["RepoTags"] = []string{ref}
	if files["manifest.json"], err = json.Marshal(manifest); err != nil {
		t.Fatal(err)
	}
	delete(files, "repositories")
	order = slices.DeleteFunc(order, func(n string) bool { return n == "repositories" })
	out := filepath.Join(t.TempDir(), "checked.tar")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tw := tar.NewWriter(w)
	for _, n := range order {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHealthCheckStartPeriod: failures within --health-start-period do
// not count (checks run every --health-start-interval meanwhile); the
// first one after it does.
func TestHealthCheckStartPeriod(t *testing.T) {
	d := daemon(t)
	// Debian's docker 20.10 predates --health-start-interval: berth's CLI.
	if out, code := berth(t, d, "run", "-d", "--name", "sp", "--health-cmd", "false", "--health-interval", "200ms", "--health-start-interval", "200ms",
		"--health-retries", "1", "--health-start-period", "4s", "busybox", "sleep", "1000"); code != 0 {
		t.Fatalf("run: exit %d: %s", code, out)
	}
	time.Sleep(1200 * time.Millisecond)
	h := health(t, d, "sp")
	if h.Status != container.Starting || h.FailingStreak != 0 || len(h.Log) == 0 {
		t.Errorf("within the start period: %+v", h)
	}
	h = waitHealth(t, d, "sp", container.Unhealthy)
	if first := h.Log[len(h.Log)-1]; first.Start.Sub(startedAt(t, d, "sp")) < 4*time.Second {
		t.Errorf("unhealthy from a check at %v into the start period", first.Start.Sub(startedAt(t, d, "sp")))
	}
}

func startedAt(t *testing.T, d *berthd.Daemon, name string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, inspect(t, d, "{{.State.StartedAt}}", name))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
