package e2eruntime

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestJoinUserNamespace: a container joins another's user and PID
// namespaces by path (what berthd does for --pid container:<id> under
// --userns-remap), sees its processes and is root in the same mapping.
func TestJoinUserNamespace(t *testing.T) {
	rt := newRuntime(t)
	const hostID = 100000
	maps := func(s *specs.Spec) {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
	}
	db := testutil.NewBundle(t, testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
		maps(s)
	}), testutil.WithArgs("sleep", "1000"))
	chownTree(t, db.Rootfs, hostID, hostID)
	openParents(t, db.Rootfs)
	donor := testutil.UniqueName(t)
	rt.MustRun("create", "--bundle", db.Dir, donor)
	t.Cleanup(func() { rt.Run("delete", "-f", donor) })
	rt.MustRun("start", donor)
	waitStatus(t, rt, donor, "running")
	pid := itoa(initPid(t, rt, donor))
	b := testutil.NewBundle(t, testutil.WithSpec(func(s *specs.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.PIDNamespace {
				s.Linux.Namespaces[i].Path = "/proc/" + pid + "/ns/pid"
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user", Path: "/proc/" + pid + "/ns/user"})
		maps(s)
	}), sh("cat /proc/self/uid_map; ps -o comm | grep -c sleep"))
	chownTree(t, b.Rootfs, hostID, hostID)
	openParents(t, b.Rootfs)
	out, errOut, code := runBundle(t, rt, b)
	if code != 0 {
		t.Fatalf("exit %d: %q %q", code, out, errOut)
	}
	if got := strings.Join(strings.Fields(out), " "); got != "0 100000 65536 1" {
		t.Errorf("joined container: %q", got)
	}
	// Created, then started: the process waits for start in the joined
	// namespaces.
	b2 := testutil.NewBundle(t, testutil.WithSpec(func(s *specs.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.PIDNamespace {
				s.Linux.Namespaces[i].Path = "/proc/" + pid + "/ns/pid"
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user", Path: "/proc/" + pid + "/ns/user"})
		maps(s)
	}), testutil.WithArgs("sleep", "1000"))
	chownTree(t, b2.Rootfs, hostID, hostID)
	openParents(t, b2.Rootfs)
	id := testutil.UniqueName(t) + "-2"
	rt.MustRun("create", "--bundle", b2.Dir, id)
	t.Cleanup(func() { rt.Run("delete", "-f", id) })
	waitStatus(t, rt, id, "created")
	rt.MustRun("start", id)
	waitStatus(t, rt, id, "running")
}
