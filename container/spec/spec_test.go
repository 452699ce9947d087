package spec

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/errdefs"
)

const testID = "50b1bc195e6437f7c56647296feeea3077973eb0adc705d08dce23f7ddc3f10e"

// The passwd and group files of the image the dockerd comparisons ran
// with: busybox plus a user 1000 in groups wheel (10) and staff (50).
const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	testGroup  = "root:x:0:\nwheel:x:10:user\nstaff:x:50:user,nobody\nuser:x:1000:\nnogroup:x:65534:\n"
)

var busyboxImage = ocispec.ImageConfig{Env: []string{"PATH=" + DefaultPath}, Cmd: []string{"sh"}}

func testRootfs(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(testPasswd), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte(testGroup), 0o644)
	return root
}

func testInput(t *testing.T, cfg *container.Config, hc *container.HostConfig) Input {
	t.Helper()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 10.255.255.53\n"), 0o644)
	return Input{
		ID: testID, Config: cfg, HostConfig: hc, Image: busyboxImage,
		Rootfs: testRootfs(t), Dir: t.TempDir(), InitBinary: "/usr/local/bin/berth-init",
		HostResolvConf: resolv,
	}
}

func mustGenerate(t *testing.T, in Input) *specs.Spec {
	t.Helper()
	s, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mountOf(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if g, w := jsonOf(got), jsonOf(want); g != w {
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

// TestDefaultSpecLikeDockerd: `docker run --name a1 busybox id` on
// dockerd 20.10 (cgroupfs driver, cgroup v1 host).
func TestDefaultSpecLikeDockerd(t *testing.T) {
	in := testInput(t, &container.Config{Image: "busybox", Cmd: []string{"id"}}, &container.HostConfig{})
	s := mustGenerate(t, in)
	p := s.Process
	eq(t, "args", p.Args, []string{"id"})
	eq(t, "env", p.Env, []string{"PATH=" + DefaultPath, "HOSTNAME=50b1bc195e64"})
	eq(t, "user", p.User, specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}})
	eq(t, "cwd", p.Cwd, "/")
	eq(t, "terminal", p.Terminal, false)
	eq(t, "bounding", p.Capabilities.Bounding, DefaultCapabilities)
	eq(t, "effective", p.Capabilities.Effective, DefaultCapabilities)
	eq(t, "permitted", p.Capabilities.Permitted, DefaultCapabilities)
	eq(t, "oomScoreAdj", *p.OOMScoreAdj, 0)
	eq(t, "hostname", s.Hostname, "50b1bc195e64")
	eq(t, "root", *s.Root, specs.Root{Path: in.Rootfs})
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	eq(t, "mount order", dsts, []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"})
	eq(t, "/dev", mountOf(s, "/dev").Options, []string{"nosuid", "strictatime", "mode=755", "size=65536k"})
	eq(t, "/dev/pts", mountOf(s, "/dev/pts").Options, []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"})
	eq(t, "/sys", mountOf(s, "/sys").Options, []string{"nosuid", "noexec", "nodev", "ro"})
	eq(t, "cgroup", mountOf(s, "/sys/fs/cgroup").Options, []string{"ro", "nosuid", "noexec", "nodev"})
	eq(t, "/dev/shm", *mountOf(s, "/dev/shm"), specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=67108864"}})
	eq(t, "hosts mount", *mountOf(s, "/etc/hosts"), specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(in.Dir, "hosts"), Options: []string{"rbind", "rprivate"}})
	eq(t, "sysctl", s.Linux.Sysctl, map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"})
	eq(t, "cgroupsPath", s.Linux.CgroupsPath, "/berth/"+testID)
	wantNS := []specs.LinuxNamespace{{Type: "mount"}, {Type: "network"}, {Type: "uts"}, {Type: "pid"}, {Type: "ipc"}}
	if hostCgroupV2() {
		wantNS = append(wantNS, specs.LinuxNamespace{Type: "cgroup"})
	}
	eq(t, "namespaces", s.Linux.Namespaces, wantNS)
	eq(t, "device rules", s.Linux.Resources.Devices, defaultDeviceRules())
	if jsonOf(s.Linux.Resources.Devices) != `[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":9,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":8,"access":"rwm"},{"allow":true,"type":"c","major":5,"minor":0,"access":"rwm"},{"allow":true,"type":"c","major":5,"minor":1,"access":"rwm"},{"allow":false,"type":"c","major":10,"minor":229,"access":"rwm"}]` {
		t.Errorf("device rules differ from dockerd's: %s", jsonOf(s.Linux.Resources.Devices))
	}
	eq(t, "memory", s.Linux.Resources.Memory, &specs.LinuxMemory{DisableOOMKiller: boolPtr(false)})
	eq(t, "masked", s.Linux.MaskedPaths[:10], []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"})
	eq(t, "readonly", s.Linux.ReadonlyPaths, []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"})
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp %v, want the default profile", s.Linux.Seccomp)
	}
	if p.Rlimits != nil || s.Linux.Resources.Pids != nil {
		t.Errorf("rlimits %v pids %v, want none", p.Rlimits, s.Linux.Resources.Pids)
	}
	// The files dockerd writes.
	hosts, _ := os.ReadFile(filepath.Join(in.Dir, "hosts"))
	eq(t, "hosts", string(hosts), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	hostname, _ := os.ReadFile(filepath.Join(in.Dir, "hostname"))
	eq(t, "hostname file", string(hostname), "50b1bc195e64\n")
	resolv, _ := os.ReadFile(filepath.Join(in.Dir, "resolv.conf"))
	eq(t, "resolv.conf", string(resolv), "nameserver 10.255.255.53\n")
}

// TestOptionsLikeDockerd: `docker run --init -t -u 1:2 --group-add 10
// --hostname foo --domainname bar.com -w /nonexist -e FOO=1 --cap-add
// NET_ADMIN --cap-drop CHOWN --ulimit nofile=100:200 --shm-size 32m
// --read-only --oom-score-adj 100 -m 64m --memory-swap 128m --cpu-shares
// 512 --cpus 0.5 --cpuset-cpus 0 --pids-limit 50 --stop-signal SIGUSR1
// busybox cat /etc/hosts` on dockerd 20.10.
func TestOptionsLikeDockerd(t *testing.T) {
	pids := int64(50)
	init := true
	cfg := &container.Config{Image: "busybox", Cmd: []string{"cat", "/etc/hosts"}, Tty: true, User: "1:2",
		Hostname: "foo", Domainname: "bar.com", WorkingDir: "/nonexist", Env: []string{"FOO=1"}, StopSignal: "SIGUSR1"}
	hc := &container.HostConfig{GroupAdd: []string{"10"}, CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"CHOWN"},
		ShmSize: 32 << 20, ReadonlyRootfs: true, OomScoreAdj: 100, Init: &init,
		Resources: container.Resources{Ulimits: []*container.Ulimit{{Name: "nofile", Soft: 100, Hard: 200}},
			Memory: 64 << 20, MemorySwap: 128 << 20, CPUShares: 512, NanoCPUs: 5e8, CpusetCpus: "0", PidsLimit: &pids}}
	in := testInput(t, cfg, hc)
	s := mustGenerate(t, in)
	p := s.Process
	eq(t, "args", p.Args, []string{"/sbin/docker-init", "--", "cat", "/etc/hosts"})
	eq(t, "init mount", *mountOf(s, "/sbin/docker-init"), specs.Mount{Destination: "/sbin/docker-init", Type: "bind", Source: in.InitBinary, Options: []string{"bind", "ro"}})
	eq(t, "env", p.Env, []string{"PATH=" + DefaultPath, "HOSTNAME=foo", "TERM=xterm", "FOO=1"})
	eq(t, "user", p.User, specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{2, 10}})
	eq(t, "cwd", p.Cwd, "/nonexist")
	if st, err := os.Stat(filepath.Join(in.Rootfs, "nonexist")); err != nil || !st.IsDir() {
		t.Errorf("working dir not created in the rootfs: %v", err)
	}
	eq(t, "caps", p.Capabilities.Bounding, []string{"CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_ADMIN"})
	eq(t, "rlimits", p.Rlimits, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 200, Soft: 100}})
	eq(t, "oom", *p.OOMScoreAdj, 100)
	eq(t, "terminal", p.Terminal, true)
	eq(t, "root", s.Root.Readonly, true)
	eq(t, "hostname", s.Hostname, "foo")
	eq(t, "shm", mountOf(s, "/dev/shm").Options[4], "size=33554432")
	for _, f := range []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"} {
		eq(t, f+" options", mountOf(s, f).Options, []string{"rbind", "ro", "rprivate"})
	}
	eq(t, "domainname", s.Linux.Sysctl["kernel.domainname"], "bar.com")
	r := s.Linux.Resources
	eq(t, "memory", jsonOf(r.Memory), `{"limit":67108864,"swap":134217728,"disableOOMKiller":false}`)
	eq(t, "cpu", jsonOf(r.CPU), `{"shares":512,"quota":50000,"period":100000,"cpus":"0"}`)
	eq(t, "pids", jsonOf(r.Pids), `{"limit":50}`)
}

func TestUserResolution(t *testing.T) {
	for _, tc := range []struct {
		user     string
		groupAdd []string
		want     specs.User
		err      string
	}{
		// Each expectation is what dockerd 20.10 put in the spec for
		// the same -u/--group-add on an image with these files.
		{"", nil, specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}, ""},
		{"root", nil, specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}, ""},
		{"nobody", nil, specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534, 50}}, ""},
		{"nobody:nogroup", nil, specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}}, ""},
		{"user", nil, specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 50}}, ""},
		{"1000", nil, specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 50}}, ""},
		{"user:0", nil, specs.User{UID: 1000, GID: 0, AdditionalGids: []uint32{0}}, ""},
		{"user", []string{"staff", "77"}, specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 50, 50, 77}}, ""},
		{"1:2", []string{"10"}, specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{2, 10}}, ""},
		{"", []string{"0"}, specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 0}}, ""},
		{"4242", nil, specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}, ""},
		{"foo", nil, specs.User{}, "unable to find user foo: no matching entries in passwd file"},
		{"0:foo", nil, specs.User{}, "unable to find group foo: no matching entries in group file"},
		{"", []string{"nosuch"}, specs.User{}, "Unable to find group nosuch: no matching entries in group file"},
	} {
		u, err := ResolveUser(testRootfs(t), tc.user, tc.groupAdd)
		if tc.err != "" {
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("-u %q --group-add %v: error %v, want %q", tc.user, tc.groupAdd, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("-u %q: %v", tc.user, err)
			continue
		}
		eq(t, "-u "+tc.user, specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}, tc.want)
	}
}

// A symlinked /etc/passwd resolves inside the rootfs: it cannot make the
// daemon read a host file.
func TestUserFilesStayInRootfs(t *testing.T) {
	root := testRootfs(t)
	outside := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(outside, []byte("evil:x:4242:4242::/:/bin/sh\n"), 0o644)
	os.Remove(filepath.Join(root, "etc", "passwd"))
	if err := os.Symlink(outside, filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveUser(root, "evil", nil); err == nil {
		t.Fatal("user resolved from a file outside the rootfs")
	}
	// A relative escape is clamped to the rootfs too.
	os.Remove(filepath.Join(root, "etc", "passwd"))
	rel, _ := filepath.Rel(filepath.Join(root, "etc"), outside)
	os.Symlink(rel, filepath.Join(root, "etc", "passwd"))
	if _, err := ResolveUser(root, "evil", nil); err == nil {
		t.Fatal("user resolved through a ../ symlink out of the rootfs")
	}
	// A fifo as /etc/group must not hang the daemon.
	os.Remove(filepath.Join(root, "etc", "group"))
	if err := mkfifo(filepath.Join(root, "etc", "group")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveUser(root, "0:0", nil); err == nil {
		t.Fatal("a fifo /etc/group was accepted")
	}
}

func TestWorkdir(t *testing.T) {
	in := testInput(t, &container.Config{Cmd: []string{"true"}, WorkingDir: "/etc/passwd"}, &container.HostConfig{})
	if _, err := Generate(in); err == nil || !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "Cannot mkdir: /etc/passwd is not a directory") {
		t.Fatalf("-w /etc/passwd: %v", err)
	}
	in = testInput(t, &container.Config{Cmd: []string{"true"}, WorkingDir: "rel"}, &container.HostConfig{})
	if _, err := Generate(in); err == nil || !strings.HasPrefix(err.Error(), "the working directory 'rel' is invalid, it needs to be an absolute path") {
		t.Fatalf("-w rel: %v", err)
	}
	// A symlink to a host path never leads outside the rootfs: the
	// target is looked up inside it, and as it does not exist there the
	// directory is refused rather than created through the symlink.
	in = testInput(t, &container.Config{Cmd: []string{"true"}, WorkingDir: "/link/sub"}, &container.HostConfig{})
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(in.Rootfs, "link"))
	if _, err := Generate(in); err == nil {
		t.Error("working dir through a dangling symlink accepted")
	}
	if _, err := os.Stat(filepath.Join(outside, "sub")); err == nil {
		t.Fatal("working dir created outside the rootfs through a symlink")
	}
	// When the target exists inside the rootfs, that is where it goes.
	os.MkdirAll(filepath.Join(in.Rootfs, outside), 0o755)
	mustGenerate(t, in)
	if _, err := os.Stat(filepath.Join(outside, "sub")); err == nil {
		t.Fatal("working dir created outside the rootfs through a symlink")
	}
	if _, err := os.Stat(filepath.Join(in.Rootfs, outside, "sub")); err != nil {
		t.Fatalf("working dir not created inside the rootfs: %v", err)
	}
	// An existing directory is fine.
	in = testInput(t, &container.Config{Cmd: []string{"true"}, WorkingDir: "/etc"}, &container.HostConfig{})
	mustGenerate(t, in)
}

func TestArgsFromEntrypointAndCmd(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"echo", "ep"}, Cmd: []string{"c1"}, WorkingDir: "/wd", User: "user"}
	for _, tc := range []struct {
		name       string
		entrypoint []string
		cmd        []string
		want       []string
	}{
		// dockerd 20.10 with an image ENTRYPOINT ["echo","ep"] CMD ["c1"]:
		{"image defaults", nil, nil, []string{"echo", "ep", "c1"}},
		{"args replace cmd", nil, []string{"x", "y"}, []string{"echo", "ep", "x", "y"}},
		{"--entrypoint resets cmd", []string{"cat"}, nil, []string{"cat"}},
		{"--entrypoint with args", []string{"cat"}, []string{"/etc/hosts"}, []string{"cat", "/etc/hosts"}},
		{`--entrypoint ""`, []string{""}, []string{"x", "y"}, []string{"x", "y"}},
	} {
		cfg := &container.Config{Entrypoint: tc.entrypoint, Cmd: tc.cmd}
		MergeImageConfig(cfg, img)
		eq(t, tc.name, processArgs(cfg), tc.want)
		if cfg.WorkingDir != "/wd" || cfg.User != "user" {
			t.Errorf("%s: workdir %q user %q not taken from the image", tc.name, cfg.WorkingDir, cfg.User)
		}
	}
	cfg := &container.Config{Entrypoint: []string{""}}
	MergeImageConfig(cfg, img)
	if err := Validate(cfg, &container.HostConfig{}); err == nil || !strings.HasPrefix(err.Error(), "No command specified") {
		t.Fatalf("no command: %v", err)
	}
}

func TestEnv(t *testing.T) {
	cfg := &container.Config{Env: []string{"FOO=1", "PATH=/x"}}
	MergeImageConfig(cfg, ocispec.ImageConfig{Env: []string{"PATH=/img", "LANG=C", "FOO=img"}})
	eq(t, "merged config env", cfg.Env, []string{"FOO=1", "PATH=/x", "LANG=C"})
	eq(t, "process env", processEnv(cfg, "h"), []string{"PATH=/x", "HOSTNAME=h", "FOO=1", "LANG=C"})
	tty := &container.Config{Tty: true, Env: []string{"TERM=vt100"}}
	eq(t, "tty env", processEnv(tty, "h"), []string{"PATH=" + DefaultPath, "HOSTNAME=h", "TERM=vt100"})
	unset := &container.Config{Env: []string{"HOSTNAME"}}
	eq(t, "unset", processEnv(unset, "h"), []string{"PATH=" + DefaultPath})
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		add, drop []string
		want      []string
		err       string
	}{
		{nil, nil, DefaultCapabilities, ""},
		{[]string{"CAP_SYS_ADMIN", "sys_time"}, nil, append(slices.Clone(DefaultCapabilities), "CAP_SYS_ADMIN", "CAP_SYS_TIME"), ""},
		{[]string{"chown"}, []string{"ALL"}, []string{"CAP_CHOWN"}, ""},
		{nil, []string{"all"}, []string{}, ""},
		{[]string{"ALL"}, []string{"NET_RAW"}, slices.DeleteFunc(AllCapabilities(), func(c string) bool { return c == "CAP_NET_RAW" }), ""},
		{[]string{"FOO"}, nil, nil, `invalid CapAdd: unknown capability: "CAP_FOO"`},
		{nil, []string{"bar"}, nil, `invalid CapDrop: unknown capability: "CAP_BAR"`},
	} {
		got, err := Capabilities(tc.add, tc.drop, false)
		if tc.err != "" {
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("add %v drop %v: %v, want %q", tc.add, tc.drop, err, tc.err)
			}
			continue
		}
		eq(t, "caps", got, tc.want)
	}
	if all := AllCapabilities(); len(all) < len(DefaultCapabilities) || !slices.Contains(all, "CAP_SYS_ADMIN") {
		t.Errorf("AllCapabilities = %v", all)
	}
}

func TestSeccompFollowsCapabilities(t *testing.T) {
	allows := func(s *specs.Spec, name string) bool {
		for _, sc := range s.Linux.Seccomp.Syscalls {
			if sc.Action == specs.ActAllow && len(sc.Args) == 0 && slices.Contains(sc.Names, name) {
				return true
			}
		}
		return false
	}
	plain := mustGenerate(t, testInput(t, &container.Config{Cmd: []string{"true"}}, &container.HostConfig{}))
	admin := mustGenerate(t, testInput(t, &container.Config{Cmd: []string{"true"}}, &container.HostConfig{CapAdd: []string{"SYS_ADMIN", "SYS_PTRACE"}}))
	for _, sc := range []string{"mount", "umount2", "unshare", "setns"} {
		if allows(plain, sc) {
			t.Errorf("default profile allows %s without CAP_SYS_ADMIN", sc)
		}
		if !allows(admin, sc) {
			t.Errorf("profile does not allow %s with CAP_SYS_ADMIN", sc)
		}
	}
	for _, sc := range []string{"kcmp", "pidfd_getfd"} {
		if allows(plain, sc) || !allows(admin, sc) {
			t.Errorf("%s must be allowed exactly with CAP_SYS_PTRACE", sc)
		}
	}
	if !allows(plain, "read") || !allows(plain, "execve") {
		t.Error("default profile does not allow read/execve")
	}
	// The arch filter: on amd64 the native arch with its 32-bit subarches.
	eq(t, "architectures", plain.Linux.Seccomp.Architectures, nativeArches())
	// seccomp=unconfined and privileged drop the filter.
	un := mustGenerate(t, testInput(t, &container.Config{Cmd: []string{"true"}}, &container.HostConfig{SecurityOpt: []string{"seccomp=unconfined"}}))
	if un.Linux.Seccomp != nil {
		t.Error("seccomp=unconfined kept a filter")
	}
}

func TestPrivileged(t *testing.T) {
	s := mustGenerate(t, testInput(t, &container.Config{Cmd: []string{"true"}}, &container.HostConfig{Privileged: true}))
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Error("privileged container kept seccomp or masked/readonly paths")
	}
	eq(t, "caps", s.Process.Capabilities.Bounding, AllCapabilities())
	eq(t, "device rules", s.Linux.Resources.Devices, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}})
	eq(t, "/sys", mountOf(s, "/sys").Options, []string{"nosuid", "noexec", "nodev"})
	eq(t, "cgroup", mountOf(s, "/sys/fs/cgroup").Options, []string{"nosuid", "noexec", "nodev"})
	found := false
	for _, d := range s.Linux.Devices {
		if d.Path == "/dev/null" && d.Type == "c" && d.Major == 1 && d.Minor == 3 {
			found = true
		}
		if strings.HasPrefix(d.Path, "/dev/pts/") {
			t.Errorf("privileged devices include %s", d.Path)
		}
	}
	if !found {
		t.Error("privileged devices lack /dev/null")
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  container.Config
		hc   container.HostConfig
		want string
	}{
		{"stop signal", container.Config{StopSignal: "FOO"}, container.HostConfig{}, "Invalid signal: FOO"},
		{"ulimit order", container.Config{}, container.HostConfig{Resources: container.Resources{Ulimits: []*container.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}}}, "ulimit soft limit must be less than or equal to hard limit: 10 > 5"},
		{"ulimit name", container.Config{}, container.HostConfig{Resources: container.Resources{Ulimits: []*container.Ulimit{{Name: "foo", Soft: 1, Hard: 1}}}}, "invalid ulimit type: foo"},
		{"cap", container.Config{}, container.HostConfig{CapAdd: []string{"FOO"}}, `invalid CapAdd: unknown capability: "CAP_FOO"`},
		{"cpus and period", container.Config{}, container.HostConfig{Resources: container.Resources{NanoCPUs: 15e8, CPUPeriod: 50000}}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"},
		{"memory too low", container.Config{}, container.HostConfig{Resources: container.Resources{Memory: 1 << 20}}, "Minimum memory limit allowed is 6MB"},
		{"swap below memory", container.Config{}, container.HostConfig{Resources: container.Resources{Memory: 64 << 20, MemorySwap: 32 << 20}}, "Minimum memoryswap limit should be larger than memory limit, see usage"},
		{"oom score", container.Config{}, container.HostConfig{OomScoreAdj: 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"},
		{"device rule", container.Config{}, container.HostConfig{Resources: container.Resources{DeviceCgroupRules: []string{"x 1:3 r"}}}, "invalid device cgroup rule format: 'x 1:3 r'"},
		{"security opt", container.Config{}, container.HostConfig{SecurityOpt: []string{"foo"}}, `invalid --security-opt 1: "foo"`},
		{"cpuset", container.Config{}, container.HostConfig{Resources: container.Resources{CpusetCpus: "0-x"}}, "Invalid value 0-x for cpuset cpus"},
	} {
		cfg := tc.cfg
		cfg.Cmd = []string{"true"}
		err := Validate(&cfg, &tc.hc)
		if err == nil || !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		// Generate refuses the same input.
		if _, err := Generate(testInput(t, &cfg, &tc.hc)); err == nil {
			t.Errorf("%s: Generate accepted it", tc.name)
		}
	}
}

func TestResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    container.Resources
		want string
	}{
		{"memory default swap is twice", container.Resources{Memory: 64 << 20}, `{"limit":67108864,"swap":134217728,"disableOOMKiller":false}`},
		{"unlimited swap", container.Resources{Memory: 10 << 20, MemorySwap: -1}, `{"limit":10485760,"disableOOMKiller":false}`},
	} {
		eq(t, tc.name, jsonOf(linuxResources(&tc.r, nil).Memory), tc.want)
	}
	cpu := linuxResources(&container.Resources{CPUQuota: 20000, CPUPeriod: 50000, CpusetMems: "0"}, nil).CPU
	eq(t, "cpu quota/period", jsonOf(cpu), `{"shares":0,"quota":20000,"period":50000,"mems":"0"}`)
	rl, err := rlimit(&container.Ulimit{Name: "core", Soft: -1, Hard: -1})
	if err != nil || rl.Soft != ^uint64(0) || rl.Type != "RLIMIT_CORE" {
		t.Errorf("core=-1: %+v %v", rl, err)
	}
	d, err := deviceRule("c 1:3 r")
	eq(t, "device rule", jsonOf(d), `{"allow":true,"type":"c","major":1,"minor":3,"access":"r"}`)
	if err != nil {
		t.Fatal(err)
	}
	d, _ = deviceRule("a *:* rwm")
	eq(t, "wildcard rule", jsonOf(d), `{"allow":true,"type":"a","access":"rwm"}`)
}

func TestStopSignals(t *testing.T) {
	for in, want := range map[string]int{"SIGTERM": 15, "TERM": 15, "term": 15, "15": 15, "9": 9, "SIGKILL": 9,
		"SIGUSR1": 10, "SIGRTMIN": 34, "SIGRTMIN+3": 37, "RTMAX-1": 63, "SIGRTMAX": 64} {
		got, err := ParseSignal(in)
		if err != nil || int(got) != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"FOO", "", "0", "99", "-1", "SIG", "SIGRTMIN-1", "RTMAX+1", "SIGRTMIN+40"} {
		if _, err := ParseSignal(in); err == nil || !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "Invalid signal: "+in) {
			t.Errorf("ParseSignal(%q) = %v, want Invalid signal", in, err)
		}
	}
}

func TestExitCodeOf(t *testing.T) {
	for msg, want := range map[string]int{
		// What runc reported to dockerd for `docker run busybox /nonexist`, `/etc`, `/etc/passwd`.
		`runc create failed: unable to start container process: exec: "/nonexist": stat /nonexist: no such file or directory`: 127,
		`exec: "env": executable file not found in $PATH`:                                                                     127,
		`unable to start container process: exec: "/etc": permission denied`:                                                  126,
		`exec: "/etc/passwd": permission denied`:                                                                              126,
		`exec /etc: is a directory`:                                                                                           126,
		`mount /x to rootfs at /etc/hosts: not a directory`:                                                                   127,
		`unable to apply caps: operation not permitted`:                                                                       128,
	} {
		if got := ExitCodeOf(msg); got != want {
			t.Errorf("ExitCodeOf(%q) = %d, want %d", msg, got, want)
		}
	}
}

func TestResolvConfAndHosts(t *testing.T) {
	host := []byte("# generated\nnameserver 127.0.0.53\nnameserver ::1\nsearch example.com\noptions ndots:2\n")
	eq(t, "loopback only", string(ResolvConfContent(host, nil, nil, nil)),
		"# generated\nsearch example.com\noptions ndots:2\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n")
	eq(t, "kept", string(ResolvConfContent([]byte("nameserver 10.0.0.1\nnameserver 127.0.0.1\n"), nil, nil, nil)), "nameserver 10.0.0.1\n")
	dns := mustAddrs(t, "1.1.1.1")
	eq(t, "--dns", string(ResolvConfContent(host, dns, nil, []string{"ndots:1"})), "nameserver 1.1.1.1\nsearch example.com\noptions ndots:1\n")
	eq(t, "--dns-search .", string(ResolvConfContent(host, nil, []string{"."}, nil)), "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions ndots:2\n")
	hosts, err := Hosts{Hostname: "foo", Domainname: "bar.com", Addresses: mustAddrs(t, "172.17.0.2"), ExtraHosts: []string{"db:10.0.0.5"}}.Content()
	if err != nil {
		t.Fatal(err)
	}
	// dockerd's order: --add-host entries, links, then the container's own lines.
	if !strings.HasSuffix(string(hosts), "ff02::2\tip6-allrouters\n10.0.0.5\tdb\n172.17.0.2\tfoo.bar.com foo\n") {
		t.Errorf("hosts:\n%s", hosts)
	}
	if _, err := (Hosts{Hostname: "foo", ExtraHosts: []string{"nocolon"}}).Content(); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad --add-host: %v", err)
	}
	gw := netip.MustParseAddr("172.17.0.1")
	hosts, err = Hosts{Hostname: "foo", ExtraHosts: []string{"gw:host-gateway", "gw2=host-gateway"}, HostGateway: gw}.Content()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(hosts), "ip6-allrouters\n172.17.0.1\tgw\n172.17.0.1\tgw2\n") {
		t.Errorf("host-gateway:\n%s", hosts)
	}
	if _, err := (Hosts{ExtraHosts: []string{"gw:host-gateway"}}).Content(); err == nil || !strings.Contains(err.Error(), "unable to derive the IP value for host-gateway") {
		t.Errorf("host-gateway without a default bridge: %v", err)
	}
}

// TestValidateNetworkMode: with --network container:<id>, dockerd's
// conflicts are refused in its order, and the image's EXPOSE (merged
// later) does not count.
func TestValidateNetworkMode(t *testing.T) {
	mode := container.NetworkMode("container:web")
	for _, c := range []struct {
		cfg  container.Config
		hc   container.HostConfig
		want string
	}{
		{container.Config{Hostname: "h"}, container.HostConfig{DNS: mustAddrs(t, "1.1.1.1")}, "conflicting options: hostname and the network mode"},
		{container.Config{}, container.HostConfig{DNS: mustAddrs(t, "1.1.1.1")}, "conflicting options: dns and the network mode"},
		{container.Config{}, container.HostConfig{ExtraHosts: []string{"a:1.2.3.4"}}, "conflicting options: custom host-to-IP mapping and the network mode"},
		{container.Config{ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}}, container.HostConfig{PortBindings: network.PortMap{network.MustParsePort("80/tcp"): nil}}, "conflicting options: port publishing and the container type network mode"},
		{container.Config{}, container.HostConfig{PublishAllPorts: true}, "conflicting options: port publishing and the container type network mode"},
		{container.Config{ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}}, container.HostConfig{}, "conflicting options: port exposing and the container type network mode"},
		{container.Config{}, container.HostConfig{DNSSearch: []string{"x"}}, ""},
	} {
		c.hc.NetworkMode = mode
		err := ValidateNetworkMode(&c.cfg, &c.hc)
		if c.want == "" {
			if err != nil {
				t.Errorf("--dns-search: %v", err)
			}
			continue
		}
		if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	hc := container.HostConfig{NetworkMode: "bridge", DNS: mustAddrs(t, "1.1.1.1")}
	if err := ValidateNetworkMode(&container.Config{Hostname: "h"}, &hc); err != nil {
		t.Errorf("bridge mode: %v", err)
	}
}
