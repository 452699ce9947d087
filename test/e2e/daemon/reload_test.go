package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

// TestReloadOnSIGHUP: SIGHUP makes berthd read its configuration file
// again, as dockerd does: debug, insecure-registries and registry-mirrors
// change at once (a pull uses the new mirror), a daemon reload event says
// so, and a file that is broken or invalid is logged and changes nothing.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ourFile, theirFile := filepath.Join(dir, "berthd.json"), filepath.Join(dir, "dockerd.json")
	write := func(content string) {
		t.Helper()
		for _, f := range []string{ourFile, theirFile} {
			if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(`{"debug": false}`)
	d := start(t, "--config-file", ourFile)
	dk := dockerd.Start(t, dockerd.Options{Args: []string{"--config-file", theirFile}})
	hup := func() {
		t.Helper()
		for _, pid := range []int{d.PID(), dk.PID()} {
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg := registry.Start(t)
	reg.Push(t, images.Busybox(t).Layout, "library/busybox:latest")
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	info := []string{"info", "--format", `{{.Debug}} {{json .RegistryConfig.Mirrors}} {{(index .RegistryConfig.IndexConfigs "r.example:5000").Secure}}`}
	events := func() (string, string) {
		t.Helper()
		args := []string{"events", "--since", since, "--until", time.Now().Format(time.RFC3339Nano), "--filter", "type=daemon",
			"--format", `{{.Type}} {{.Action}} {{.Actor.Attributes.debug}} {{index .Actor.Attributes "insecure-registries"}} {{.Actor.Attributes.name}}`}
		return d.Must(t, args...), dk.Must(t, args...)
	}

	write(`{"debug": true, "insecure-registries": ["r.example:5000"], "registry-mirrors": ["` + reg.URL + `"]}`)
	hup()
	want := "true [\"" + reg.URL + "/\"] false\n"
	waitFor(t, "berthd reloads", func() bool { out, _ := d.Docker(info...); return out == want })
	waitFor(t, "dockerd reloads", func() bool { out, _ := dk.Docker(info...); return out == want })
	host, _ := os.Hostname()
	if ours, theirs := events(); ours != theirs || ours != "daemon reload true [\"r.example:5000\"] "+host+"\n" {
		t.Errorf("reload events:\nberth:\n%s\ndocker:\n%s", ours, theirs)
	}
	// The new mirror serves Docker Hub's busybox.
	if out := d.Must(t, "pull", "busybox"); !strings.Contains(out, "Downloaded newer image for busybox:latest") {
		t.Errorf("pull through the reloaded mirror:\n%s", out)
	}

	// Broken, then invalid: logged, nothing changes, no event.
	for _, bad := range []struct{ file, log string }{
		{`{"debug": fals`, "unable to configure the daemon with file " + ourFile},
		{`{"registry-mirrors": ["ftp://m.example.com"]}`, `invalid mirror: unsupported scheme \"ftp\"`},
	} {
		write(bad.file)
		hup()
		waitFor(t, "berthd logs the refused reload", func() bool { return strings.Contains(d.Log(), bad.log) })
		if out := d.Must(t, info...); out != want {
			t.Errorf("after a refused reload (%s): %q, want %q", bad.file, out, want)
		}
	}
	if ours, _ := events(); strings.Count(ours, "reload") != 1 {
		t.Errorf("refused reloads made events:\n%s", ours)
	}
	if d.PID() == 0 || berthd.Ping(d.Socket) != nil {
		t.Error("berthd stopped serving")
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
	}
}
