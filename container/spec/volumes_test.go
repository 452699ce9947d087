package spec

import (
	"testing"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestUserMounts: the user's mounts come after the defaults, parents
// first; one at a default's or an engine file's destination replaces it;
// --tmpfs gets dockerd's options; --read-only makes the defaults but
// /proc and /dev read-only.
func TestUserMounts(t *testing.T) {
	in := testInput(t, &container.Config{Image: "busybox", Cmd: []string{"id"}}, &container.HostConfig{
		Tmpfs: map[string]string{"/run": "size=1m,exec", "/data/tmp": ""}, ReadonlyRootfs: true,
	})
	in.Mounts = []specs.Mount{
		{Destination: "/data/sub/deeper", Type: "bind", Source: "/srv/a", Options: []string{"rbind", "rprivate"}},
		{Destination: "/data", Type: "bind", Source: "/var/lib/berth/volumes/v/_data", Options: []string{"rbind", "ro", "rprivate"}},
		{Destination: "/dev/shm", Type: "bind", Source: "/srv/shm", Options: []string{"rbind", "rprivate"}},
		{Destination: "/etc/hosts", Type: "bind", Source: "/srv/hosts", Options: []string{"rbind", "rprivate"}},
	}
	in.RootfsPropagation = "rslave"
	s := mustGenerate(t, in)
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	eq(t, "mount order", dests, []string{
		"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
		"/data", "/run", "/etc/resolv.conf", "/etc/hostname", "/dev/shm", "/etc/hosts", "/data/tmp", "/data/sub/deeper",
	})
	eq(t, "/dev/shm", *mountOf(s, "/dev/shm"), in.Mounts[2])
	eq(t, "/etc/hosts", *mountOf(s, "/etc/hosts"), in.Mounts[3])
	eq(t, "--tmpfs /run", *mountOf(s, "/run"), specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"exec", "nosuid", "nodev", "rprivate", "size=1m"}})
	eq(t, "--tmpfs /data/tmp", mountOf(s, "/data/tmp").Options, []string{"noexec", "nosuid", "nodev", "rprivate"})
	eq(t, "read-only /dev/mqueue", mountOf(s, "/dev/mqueue").Options, []string{"nosuid", "noexec", "nodev"})
	eq(t, "read-only /proc", mountOf(s, "/proc").Options, []string{"nosuid", "noexec", "nodev"})
	eq(t, "root propagation", s.Linux.RootfsPropagation, "rslave")
	if !s.Root.Readonly {
		t.Error("--read-only: root not read-only")
	}
	// Privileged, /sys is writable unless --read-only.
	in = testInput(t, &container.Config{Image: "busybox", Cmd: []string{"id"}}, &container.HostConfig{Privileged: true, ReadonlyRootfs: true})
	s = mustGenerate(t, in)
	eq(t, "privileged read-only /sys", mountOf(s, "/sys").Options, []string{"nosuid", "noexec", "nodev", "ro"})
}

func TestMergeTmpfsOptions(t *testing.T) {
	eq(t, "merge", MergeTmpfsOptions([]string{"noexec", "nosuid", "size=1m", "mode=755", "exec", "size=2m", "ro"}),
		[]string{"exec", "nosuid", "size=2m", "mode=755", "ro"})
}
