package spec

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

func TestDevicesFromMapping(t *testing.T) {
	hc := &container.HostConfig{Resources: container.Resources{Devices: []container.DeviceMapping{
		{PathOnHost: "/dev/null", PathInContainer: "/dev/mynull", CgroupPermissions: "r"},
	}}}
	s := mustGenerate(t, testInput(t, &container.Config{Cmd: []string{"true"}}, hc))
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/mynull" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
		t.Errorf("devices %s", jsonOf(s.Linux.Devices))
	}
	last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	eq(t, "rule", last, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: int64Ptr(1), Minor: int64Ptr(3), Access: "r"})

	// A directory maps every device node below it.
	dir := t.TempDir()
	devs, rules, err := devicesFromMapping(container.DeviceMapping{PathOnHost: "/dev", PathInContainer: "/host-dev", CgroupPermissions: "rw"})
	if err != nil || len(devs) == 0 || len(devs) != len(rules) {
		t.Fatalf("/dev: %d devices, %d rules, %v", len(devs), len(rules), err)
	}
	for _, d := range devs {
		if !strings.HasPrefix(d.Path, "/host-dev/") {
			t.Errorf("device path %s", d.Path)
		}
	}
	if _, _, err := devicesFromMapping(container.DeviceMapping{PathOnHost: dir + "/none"}); err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "error gathering device information") {
		t.Errorf("missing device: %v", err)
	}

	// Privileged: the host's devices and access to all; --device ignored.
	hc.Privileged = true
	devs, rules, err = Devices(hc)
	if err != nil || len(rules) != 1 || !rules[0].Allow || rules[0].Access != "rwm" || len(devs) < 3 {
		t.Errorf("privileged: %d devices, rules %s, %v", len(devs), jsonOf(rules), err)
	}
}

func TestJoinedNamespaces(t *testing.T) {
	hc := &container.HostConfig{PidMode: "container:other", IpcMode: "container:other"}
	in := testInput(t, &container.Config{Cmd: []string{"true"}}, hc)
	if _, err := Generate(in); err == nil || !errdefs.IsFailedPrecondition(err) {
		t.Errorf("unresolved container: modes: %v", err)
	}
	in.NamespacePaths = map[specs.LinuxNamespaceType]string{specs.PIDNamespace: "/proc/42/ns/pid", specs.IPCNamespace: "/proc/42/ns/ipc"}
	in.IPCShm = "/run/other/shm"
	s := mustGenerate(t, in)
	for _, ns := range s.Linux.Namespaces {
		switch ns.Type {
		case specs.PIDNamespace, specs.IPCNamespace:
			if ns.Path != "/proc/42/ns/"+string(ns.Type) {
				t.Errorf("%s namespace path %q", ns.Type, ns.Path)
			}
		default:
			if ns.Path != "" {
				t.Errorf("%s namespace joined: %q", ns.Type, ns.Path)
			}
		}
	}
	if m := mountOf(s, "/dev/shm"); m == nil || m.Type != "bind" || m.Source != "/run/other/shm" {
		t.Errorf("/dev/shm %s", jsonOf(m))
	}
	// The network namespace is the engine's to join (network package).
	if err := Validate(&container.Config{Cmd: []string{"true"}}, &container.HostConfig{NetworkMode: "container:x"}); err != nil {
		t.Errorf("network container: mode: %v", err)
	}
}

func TestSecurityOptsWithoutLSM(t *testing.T) {
	if lsmEnabled("apparmor") || lsmEnabled("label") {
		t.Log("this host runs an LSM: the refusals say berth cannot apply it")
	}
	for _, o := range []string{"apparmor=docker-default", "label=user:u", "label=level:s0"} {
		_, err := securityOpts([]string{o})
		if err == nil || !strings.Contains(err.Error(), o) {
			t.Errorf("%s: %v", o, err)
		}
	}
	for _, o := range []string{"label=disable", "apparmor=unconfined", "seccomp=builtin", "systempaths=unconfined", "no-new-privileges:true"} {
		if _, err := securityOpts([]string{o}); err != nil {
			t.Errorf("%s: %v", o, err)
		}
	}
	s := mustGenerate(t, testInput(t, &container.Config{Cmd: []string{"true"}}, &container.HostConfig{SecurityOpt: []string{"systempaths=unconfined"}}))
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 || s.Linux.Seccomp == nil {
		t.Errorf("systempaths=unconfined: masked %v, readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
}

func TestUnsupportedRefusedOrDiscarded(t *testing.T) {
	for _, hc := range []container.HostConfig{
		{Isolation: "hyperv"},
		{Cgroup: "container:x"},
		{StorageOpt: map[string]string{"size": "1G"}},
		{Runtime: "kata"},
		{Resources: container.Resources{IOMaximumIOps: 5}},
		{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{{Count: -1, Capabilities: [][]string{{"gpu"}}}}}},
		{Resources: container.Resources{Devices: []container.DeviceMapping{{PathOnHost: "/dev/null", CgroupPermissions: "rwx"}}}},
	} {
		if err := Validate(&container.Config{Cmd: []string{"true"}}, &hc); err == nil {
			t.Errorf("accepted %s", jsonOf(hc))
		}
	}
	hc := container.HostConfig{Resources: container.Resources{CPUPercent: 50, CPUCount: 2, OomKillDisable: boolPtr(true)}}
	w := DiscardUnsupported(&hc)
	if hc.CPUPercent != 0 || hc.CPUCount != 0 || len(w) != 3 {
		t.Errorf("discard: %q, %s", w, jsonOf(hc.Resources))
	}
}

func TestBlockIO(t *testing.T) {
	hc := &container.HostConfig{Resources: container.Resources{BlkioDeviceReadBps: []*blkiodev.ThrottleDevice{{Path: "/dev/null", Rate: 1}}}}
	if _, err := Resources(hc); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("throttle on a char device: %v", err)
	}
}

func TestAnnotationsAndUmask(t *testing.T) {
	umask := uint32(0o027)
	hc := &container.HostConfig{Annotations: map[string]string{"org.example": "1"}, Umask: &umask}
	s := mustGenerate(t, testInput(t, &container.Config{Cmd: []string{"true"}}, hc))
	if s.Annotations["org.example"] != "1" || s.Process.User.Umask == nil || *s.Process.User.Umask != 0o027 {
		t.Errorf("annotations %v, umask %v", s.Annotations, s.Process.User.Umask)
	}
}
