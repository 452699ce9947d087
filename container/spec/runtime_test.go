package spec

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/testutil"
)

// runInRuntime generates the spec of a container on a private busybox
// rootfs, runs it to completion with bin/berth-runtime and returns its
// output and the runtime's error.
type runner struct {
	t       *testing.T
	rt      *testutil.Runtime
	rootfs  string
	initBin string
	parent  string
}

func newRunner(t *testing.T) *runner {
	testutil.RequireRoot(t)
	r := &runner{t: t, rt: testutil.NewRuntime(t), rootfs: testutil.BusyboxRootfs(t), parent: testutil.UniqueName(t)}
	t.Cleanup(func() { testutil.RemoveCgroupTree("/" + r.parent) })
	r.initBin = filepath.Join(t.TempDir(), "berth-init")
	cmd := exec.Command("go", "build", "-o", r.initBin, "../../cmd/berth-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth-init: %v\n%s", err, out)
	}
	return r
}

func (r *runner) run(cfg *container.Config, hc *container.HostConfig) (id, out string, err error) {
	t := r.t
	t.Helper()
	var b [32]byte
	rand.Read(b[:])
	id = hex.EncodeToString(b[:])
	s, err := Generate(Input{ID: id, Config: cfg, HostConfig: hc, Image: busyboxImage, Rootfs: r.rootfs,
		Dir: t.TempDir(), InitBinary: r.initBin, CgroupParent: r.parent})
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	data, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := r.rt.Run("run", "--bundle", bundle, id)
	if err != nil {
		err = errors.New(err.Error() + "\n" + stderr)
	}
	return id, out, err
}

func TestRunGeneratedSpec(t *testing.T) {
	r := newRunner(t)
	id, out, err := r.run(&container.Config{Cmd: []string{"sh", "-c",
		`id; grep -E '^Cap(Bnd|Eff)' /proc/self/status; echo ---; cat /etc/hosts; echo ---; cat /etc/hostname; hostname; echo ---; cat /etc/resolv.conf; echo ---; cat /proc/self/cgroup | grep -c ` + r.parent}},
		&container.HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(out, "---\n")
	if len(parts) != 5 {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.HasPrefix(parts[0], "uid=0(root) gid=0(root) groups=0(root)\n") {
		t.Errorf("id: %q", parts[0])
	}
	// Docker's default capability set, as /proc shows it in a docker run.
	for _, l := range []string{"CapBnd:\t00000000a80425fb", "CapEff:\t00000000a80425fb"} {
		if !strings.Contains(parts[0], l) {
			t.Errorf("caps: %q lacks %q", parts[0], l)
		}
	}
	if !strings.HasPrefix(parts[1], "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n") {
		t.Errorf("/etc/hosts: %q", parts[1])
	}
	if want := id[:12] + "\n" + id[:12] + "\n"; parts[2] != want {
		t.Errorf("hostname file and hostname: %q, want %q", parts[2], want)
	}
	if !strings.Contains(parts[3], "nameserver ") {
		t.Errorf("resolv.conf: %q", parts[3])
	}
	if strings.TrimSpace(parts[4]) == "0" {
		t.Errorf("process not in a cgroup under %s: %q", r.parent, parts[4])
	}
}

func TestRunUserAndReadonly(t *testing.T) {
	r := newRunner(t)
	_, out, err := r.run(&container.Config{User: "1000", WorkingDir: "/work/dir", Cmd: []string{"sh", "-c", "id; pwd; touch /x 2>&1 || echo ro"}},
		&container.HostConfig{GroupAdd: []string{"nogroup"}, ReadonlyRootfs: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "uid=1000(user) gid=1000(user) groups=1000(user),65534(nogroup)\n/work/dir\n") || !strings.HasSuffix(out, "ro\n") {
		t.Errorf("output:\n%s", out)
	}
}

func TestRunInit(t *testing.T) {
	r := newRunner(t)
	init := true
	// pid 1 is berth-init; the subshell's sleep is orphaned to it and
	// must be reaped, not left a zombie.
	_, out, err := r.run(&container.Config{Cmd: []string{"sh", "-c",
		`cat /proc/1/comm; tr '\0' ' ' < /proc/1/cmdline; echo; (sleep 0.1 &); sleep 0.8; ps -o pid,stat,comm; exit 7`}},
		&container.HostConfig{Init: &init})
	if err == nil || !strings.Contains(err.Error(), ": exit status 7:") {
		t.Fatalf("want the child's exit status 7 through berth-init, got %v\n%s", err, out)
	}
	lines := strings.Split(out, "\n")
	if lines[0] != "docker-init" || !strings.HasPrefix(lines[1], "/sbin/docker-init -- sh -c") {
		t.Errorf("pid 1 is not berth-init:\n%s", out)
	}
	for _, l := range lines[2:] {
		if f := strings.Fields(l); len(f) >= 2 && strings.HasPrefix(f[1], "Z") {
			t.Errorf("zombie in the container: %q\n%s", l, out)
		}
	}
}

func TestRunStartErrorsExitCodes(t *testing.T) {
	r := newRunner(t)
	for cmd, want := range map[string]int{"/nonexist": 127, "/etc": 126, "nosuchcommand": 127} {
		_, _, err := r.run(&container.Config{Cmd: []string{cmd}}, &container.HostConfig{})
		if err == nil {
			t.Fatalf("%s started", cmd)
		}
		if got := ExitCodeOf(err.Error()); got != want {
			t.Errorf("%s: ExitCodeOf = %d, want %d; runtime said: %v", cmd, got, want, err)
		}
	}
}
