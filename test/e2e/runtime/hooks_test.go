package e2eruntime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

const hookScript = `#!/bin/sh
# $1: hook name, $2: log dir. Saves the state from stdin, logs the order.
cat > "$2/$1.json"
echo "$1" >> "$2/order"
`

// writeHook writes the recording hook script at path.
func writeHook(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(hookScript), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestHooksOrderAndState(t *testing.T) {
	rt := newRuntime(t)
	logDir := t.TempDir()
	hook := filepath.Join(t.TempDir(), "hook.sh")
	writeHook(t, hook)
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	h := func(name string) []specs.Hook {
		return []specs.Hook{{Path: hook, Args: []string{"hook.sh", name, logDir}, Env: env}}
	}
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithSpec(func(s *specs.Spec) {
		s.Annotations = map[string]string{"hook.test": "yes"}
		s.Hooks = &specs.Hooks{
			Prestart:        h("prestart"),
			CreateRuntime:   h("createRuntime"),
			CreateContainer: h("createContainer"),
			// Runs inside the container: a path in the rootfs, logging
			// into the bound log dir.
			StartContainer: []specs.Hook{{Path: "/bin/hook.sh", Args: []string{"hook.sh", "startContainer", "/hooklog"}, Env: env}},
			Poststart:      h("poststart"),
			Poststop:       h("poststop"),
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: logDir, Options: []string{"bind"}})
	}))
	// The host's /bin/sh may not exist in the rootfs under that name: the
	// container's own busybox sh runs the script there.
	writeHook(t, filepath.Join(b.Rootfs, "bin", "hook.sh"))
	id := testutil.UniqueName(t)
	order := func() string {
		b, _ := os.ReadFile(filepath.Join(logDir, "order"))
		return strings.Join(strings.Fields(string(b)), ",")
	}
	rt.MustRun("create", "--bundle", b.Dir, id)
	if got := order(); got != "prestart,createRuntime,createContainer" {
		t.Errorf("after create: hooks %q", got)
	}
	pid := initPid(t, rt, id)
	rt.MustRun("start", id)
	waitStatus(t, rt, id, "running")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(order(), "poststart") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := order(); got != "prestart,createRuntime,createContainer,startContainer,poststart" {
		t.Errorf("after start: hooks %q", got)
	}
	rt.MustRun("kill", id, "KILL")
	waitStatus(t, rt, id, "stopped")
	rt.MustRun("delete", id)
	if got := order(); got != "prestart,createRuntime,createContainer,startContainer,poststart,poststop" {
		t.Errorf("after delete: hooks %q", got)
	}

	wantStatus := map[string]string{"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
		"startContainer": "running", "poststart": "running", "poststop": "stopped"}
	for name, status := range wantStatus {
		data, err := os.ReadFile(filepath.Join(logDir, name+".json"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var st specs.State
		if err := json.Unmarshal(data, &st); err != nil {
			t.Errorf("%s: state on stdin is not JSON: %q", name, data)
			continue
		}
		if st.ID != id || st.Bundle != b.Dir || string(st.Status) != status || st.Annotations["hook.test"] != "yes" || st.Version == "" {
			t.Errorf("%s: state %+v, want id %s bundle %s status %s", name, st, id, b.Dir, status)
		}
		switch name {
		case "prestart", "createRuntime", "poststart":
			if st.Pid != pid {
				t.Errorf("%s: pid %d, want the container's %d", name, st.Pid, pid)
			}
		case "createContainer", "startContainer":
			if st.Pid <= 0 {
				t.Errorf("%s: pid %d", name, st.Pid)
			}
		}
	}
}

// failingCreate runs create for b and wants it to fail with msg in
// stderr and in the JSON log, leaving nothing behind.
func failingCreate(t *testing.T, rt *testutil.Runtime, b *testutil.Bundle, id string, msgs ...string) string {
	t.Helper()
	lr, log := logRuntime(t, rt)
	_, errOut, err := lr.Run("create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatalf("create %s succeeded", id)
	}
	if exitCode(err) <= 0 {
		t.Errorf("create exit %v, want non-zero", err)
	}
	wantContains(t, "create stderr", errOut, msgs...)
	for _, m := range msgs {
		wantJSONErrorLog(t, log, m)
	}
	cg := ""
	bundle := ""
	if b != nil {
		bundle = b.Dir
		if b.Spec.Linux != nil {
			cg = b.Spec.Linux.CgroupsPath
		}
	}
	assertNothingLeft(t, rt, id, cg, bundle)
	return errOut
}

func TestHookTimeout(t *testing.T) {
	rt := newRuntime(t)
	timeout := 1
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 20; true"}, Timeout: &timeout}}}
	}))
	start := time.Now()
	failingCreate(t, rt, b, testutil.UniqueName(t), "prestart", "timed out")
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("create with a 1s hook timeout took %v", d)
	}
}

func TestFailingPrestartHook(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo hook-says-no >&2; exit 3"}}}}
	}))
	failingCreate(t, rt, b, testutil.UniqueName(t), "prestart", "hook-says-no", "exit status 3")
}

func TestFailingCreateContainerHook(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/false"}}}
	}))
	failingCreate(t, rt, b, testutil.UniqueName(t), "createContainer", "exit status 1")
}
