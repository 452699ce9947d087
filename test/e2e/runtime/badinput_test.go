package e2eruntime

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestBadConfigs(t *testing.T) {
	rt := newRuntime(t)
	cases := []struct {
		name string
		opts []testutil.Option
		msgs []string
	}{
		{"unknown namespace", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		})}, []string{"unknown namespace type", "bogus"}},
		{"unknown rlimit", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1})
		})}, []string{"rlimit", "RLIMIT_BOGUS"}},
		{"unknown capability", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_BOGUS")
		})}, []string{"unknown capabilities", "CAP_BOGUS"}},
		{"apparmor", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) { s.Process.ApparmorProfile = "docker-default" })},
			[]string{"apparmorProfile", "docker-default"}},
		{"selinux", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0" })},
			[]string{"selinuxLabel", "SELinux"}},
		{"intelRdt", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} })},
			[]string{"intelRdt"}},
		{"relative mount destination", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "relative/dir", Type: "tmpfs", Source: "tmpfs"})
		})}, []string{"relative/dir", "absolute"}},
		{"missing args", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) { s.Process.Args = nil })},
			[]string{"process.args"}},
		{"non-namespaced sysctl", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"kernel.randomize_va_space": "0"}
		})}, []string{"kernel.randomize_va_space", "not namespaced"}},
		{"net sysctl without netns", []testutil.Option{testutil.WithNamespaces("pid", "mount", "uts"), testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		})}, []string{"net.ipv4.ip_forward", "network namespace"}},
		{"missing rootfs", []testutil.Option{testutil.WithRootfs("/nonexistent/berth-rootfs")},
			[]string{"/nonexistent/berth-rootfs", "no such file"}},
		{"missing binary", []testutil.Option{testutil.WithArgs("/no/such/prog")},
			[]string{"/no/such/prog"}},
		{"user ns without mappings", []testutil.Option{testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
		})}, []string{"uidMappings"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := testutil.NewBundle(t, c.opts...)
			failingCreate(t, rt, b, testutil.UniqueName(t), c.msgs...)
		})
	}
}

func TestMalformedConfig(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t)
	if err := os.WriteFile(b.ConfigPath(), []byte(`{"ociVersion": "1.0.2", "process": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	failingCreate(t, rt, b, testutil.UniqueName(t), "config.json", "unexpected end of JSON")
	if err := os.WriteFile(b.ConfigPath(), []byte(`{"process": {"args": "not-a-list"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	failingCreate(t, rt, b, testutil.UniqueName(t), "config.json", "cannot unmarshal")
	os.Remove(b.ConfigPath())
	failingCreate(t, rt, b, testutil.UniqueName(t), "config.json", "no such file")
}

func TestUnsafeIDs(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	for _, id := range []string{"../x", "a/b", "", "..", "/abs", "x\ny"} {
		failingCreate(t, rt, b, id, "invalid container id")
		// Nothing was made next to the state root either.
		if _, err := os.Stat(filepath.Join(filepath.Dir(rt.Root), "x")); err == nil {
			t.Errorf("id %q escaped the state root", id)
		}
		for _, cmd := range []string{"state", "start", "kill", "delete"} {
			if _, errOut, err := rt.Run(cmd, id); err == nil {
				t.Errorf("%s %q succeeded", cmd, id)
			} else {
				wantContains(t, cmd+" stderr", errOut, "invalid container id")
			}
		}
	}
}

func TestDuplicateID(t *testing.T) {
	rt := newRuntime(t)
	id, _ := createContainer(t, rt)
	pid := initPid(t, rt, id)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	lr, log := logRuntime(t, rt)
	_, errOut, err := lr.Run("create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatal("second create with the same id succeeded")
	}
	wantContains(t, "stderr", errOut, "already exists")
	wantJSONErrorLog(t, log, "already exists")
	// The first container is untouched, and the second bundle's cgroup
	// was never made.
	if s := state(t, rt, id); s["status"] != "created" || int(s["pid"].(float64)) != pid {
		t.Errorf("first container after duplicate create: %v", s)
	}
	for _, mp := range cgroupMountpoints(t) {
		if _, err := os.Stat(filepath.Join(mp, b.Spec.Linux.CgroupsPath)); err == nil {
			t.Errorf("cgroup of the refused duplicate left in %s", mp)
		}
	}
	rt.MustRun("start", id)
	waitStatus(t, rt, id, "running")
}

func TestBadSignal(t *testing.T) {
	rt := newRuntime(t)
	id, _ := startContainer(t, rt)
	lr, log := logRuntime(t, rt)
	for _, sig := range []string{"SIGNOPE", "NOPE", "0", "65", "-1"} {
		_, errOut, err := lr.Run("kill", id, sig)
		if err == nil {
			t.Errorf("kill %s succeeded", sig)
			continue
		}
		wantContains(t, "kill "+sig, errOut, "signal")
	}
	wantJSONErrorLog(t, log, "SIGNOPE")
	if s := state(t, rt, id); s["status"] != "running" {
		t.Errorf("after bad kills: %v", s["status"])
	}
}

func TestSystemdCgroupRefused(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	lr, log := logRuntime(t, rt)
	lr.GlobalArgs = append(lr.GlobalArgs, "--systemd-cgroup")
	id := testutil.UniqueName(t)
	_, errOut, err := lr.Run("create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatal("--systemd-cgroup create succeeded")
	}
	wantContains(t, "stderr", errOut, "systemd-cgroup", "not supported")
	wantJSONErrorLog(t, log, "systemd")
	assertNothingLeft(t, rt, id, b.Spec.Linux.CgroupsPath, b.Dir)
}

func TestOperationsOnMissingContainer(t *testing.T) {
	rt := newRuntime(t)
	id := testutil.UniqueName(t)
	for _, args := range [][]string{{"state", id}, {"start", id}, {"kill", id}, {"delete", id}, {"exec", id, "true"}, {"ps", id}, {"pause", id}, {"resume", id}, {"events", "--stats", id}} {
		_, errOut, err := rt.Run(args...)
		if err == nil {
			t.Errorf("%v succeeded", args)
			continue
		}
		wantContains(t, args[0]+" stderr", errOut, "does not exist")
	}
	// As with runc, delete --force of a missing container succeeds.
	rt.MustRun("delete", "--force", id)
}
