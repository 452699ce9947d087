package e2eruntime

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

func withMount(m specs.Mount) testutil.Option {
	return testutil.WithSpec(func(s *specs.Spec) { s.Mounts = append(s.Mounts, m) })
}

func TestNamespacesAreNew(t *testing.T) {
	rt := newRuntime(t)
	all := []specs.LinuxNamespaceType{"pid", "network", "ipc", "uts", "mount", "cgroup"}
	procName := []string{"pid", "net", "ipc", "uts", "mnt", "cgroup"}
	script := ""
	for _, n := range procName {
		script += "readlink /proc/self/ns/" + n + "; "
	}
	out := mustRunContainer(t, rt, testutil.WithNamespaces(all...), sh(script))
	got := strings.Fields(out)
	if len(got) != len(procName) {
		t.Fatalf("output %q", out)
	}
	for i, n := range procName {
		host, _ := os.Readlink("/proc/self/ns/" + n)
		if got[i] == host || !strings.HasPrefix(got[i], n+":[") {
			t.Errorf("ns %s: container %s, host %s", n, got[i], host)
		}
	}
	// Without a uts/net namespace the container shares the host's.
	out = mustRunContainer(t, rt, testutil.WithNamespaces("pid", "mount"), testutil.WithHostname(""),
		sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts"))
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	hostUTS, _ := os.Readlink("/proc/self/ns/uts")
	if out != hostNet+"\n"+hostUTS+"\n" {
		t.Errorf("shared namespaces: %q, host %s %s", out, hostNet, hostUTS)
	}
}

func TestPidNamespaceInit(t *testing.T) {
	rt := newRuntime(t)
	out := mustRunContainer(t, rt, sh("echo $$; ps -o pid,args; exit 0"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// $$, the header, sh (pid 1) and ps itself: nothing of the host.
	if len(lines) != 4 || lines[0] != "1" || !strings.HasPrefix(strings.TrimSpace(lines[2]), "1 sh -c") {
		t.Errorf("pid ns: %q", out)
	}
}

// chownTree gives every file under dir the owner uid:gid (not following
// symlinks).
func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// openParents makes the directories above dir traversable by others (a
// remapped root is "others" for root-owned 0700 temp dirs).
func openParents(t *testing.T, dir string) {
	t.Helper()
	for d := filepath.Dir(dir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestUserNamespace(t *testing.T) {
	rt := newRuntime(t)
	const hostID = 100000
	b := testutil.NewBundle(t, testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
		c := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Effective: c, Permitted: c}
	}), sh("id -u; cat /proc/self/uid_map; touch /tmp/by-root; mkdir /tmp/d; chown 1000:1000 /tmp/d; ls -ln /etc/passwd"))
	chownTree(t, b.Rootfs, hostID, hostID)
	openParents(t, b.Rootfs)
	out, errOut, code := runBundle(t, rt, b)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %q %q", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	if lines[0] != "0" {
		t.Errorf("id -u in user ns: %q", lines[0])
	}
	if f := strings.Fields(lines[1]); len(f) != 3 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" {
		t.Errorf("uid_map %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 4 || f[2] != "0" || f[3] != "0" {
		t.Errorf("ls -ln /etc/passwd in container: %q (want owner 0 0)", lines[2])
	}
	for p, want := range map[string]uint32{"tmp/by-root": hostID, "tmp/d": hostID + 1000} {
		st, err := os.Stat(filepath.Join(b.Rootfs, p))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != want || sys.Gid != want {
			t.Errorf("%s on the host: %d:%d, want %d:%d", p, sys.Uid, sys.Gid, want, want)
		}
	}
}

func TestJoinNetworkNamespace(t *testing.T) {
	rt := newRuntime(t)
	name := testutil.UniqueName(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	// Mark the namespace: its lo is up (a fresh one's is down).
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	nsPath := "/run/netns/" + name
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		t.Fatal(err)
	}
	out := mustRunContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == "network" {
				s.Linux.Namespaces[i].Path = nsPath
			}
		}
	}), sh("readlink /proc/self/ns/net; ip -o link show lo"))
	wantContains(t, "container", out, fmt.Sprintf("net:[%d]", st.Ino), "UP")
	// A fresh network namespace has lo down: the join was not a new one.
	out = mustRunContainer(t, rt, sh("ip -o link show lo"))
	if strings.Contains(out, "UP") {
		t.Errorf("a new netns has lo up: %q", out)
	}
}

func TestReadonlyRootfs(t *testing.T) {
	rt := newRuntime(t)
	out, errOut, code := runContainer(t, rt, testutil.WithReadonlyRootfs(true), sh("touch /x; echo code=$?; touch /tmp/y; echo tmp=$?; echo ok > /dev/shm/z && cat /dev/shm/z"))
	if code != 0 {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	wantContains(t, "stdout", out, "code=1", "tmp=1", "ok")
	wantContains(t, "stderr", errOut, "Read-only file system")
}

func TestTmpfsMountOptions(t *testing.T) {
	rt := newRuntime(t)
	out := mustRunContainer(t, rt,
		withMount(specs.Mount{Destination: "/data/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "mode=0710", "nosuid", "nodev"}}),
		sh("stat -c %a /data/t; grep ' /data/t ' /proc/self/mountinfo; head -c 2000000 /dev/zero > /data/t/big; echo $?"))
	lines := strings.Split(out, "\n")
	if lines[0] != "710" {
		t.Errorf("tmpfs mode %q", lines[0])
	}
	wantContains(t, "mountinfo", lines[1], "nosuid", "nodev", "size=1024k", "tmpfs")
	if lines[2] == "0" {
		t.Errorf("2MB fits in a 1MB tmpfs")
	}
}

// hostDir makes a directory with a file, with a tmpfs submount holding
// another file; it is unmounted after the test.
func hostDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "file"), []byte("top\n"), 0o644)
	if err := unix.Mount("tmpfs", filepath.Join(d, "sub"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(d, "sub"), unix.MNT_DETACH) })
	os.WriteFile(filepath.Join(d, "sub", "inner"), []byte("inner\n"), 0o644)
	return d
}

func TestBindMounts(t *testing.T) {
	rt := newRuntime(t)
	src := hostDir(t)
	file := filepath.Join(t.TempDir(), "hostfile")
	os.WriteFile(file, []byte("from-host-file\n"), 0o644)
	out, errOut, code := runContainer(t, rt,
		withMount(specs.Mount{Destination: "/ro", Type: "bind", Source: src, Options: []string{"bind", "ro"}}),
		withMount(specs.Mount{Destination: "/rw", Type: "none", Source: src, Options: []string{"bind", "rw"}}),
		withMount(specs.Mount{Destination: "/rec", Type: "bind", Source: src, Options: []string{"rbind"}}),
		withMount(specs.Mount{Destination: "/etc/hostfile", Type: "bind", Source: file, Options: []string{"bind", "ro"}}),
		sh(`cat /ro/file; echo x > /ro/new; echo ro=$?
echo written > /rw/new; echo rw=$?
cat /rec/sub/inner; ls /rw/sub | wc -l
cat /etc/hostfile; echo y >> /etc/hostfile; echo rofile=$?`))
	if code != 0 {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	want := "top\nro=1\nrw=0\ninner\n0\nfrom-host-file\nrofile=1\n"
	if out != want {
		t.Errorf("stdout %q, want %q (stderr %q)", out, want, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(src, "new")); string(b) != "written\n" {
		t.Errorf("rw bind: host sees %q", b)
	}
	if b, _ := os.ReadFile(file); string(b) != "from-host-file\n" {
		t.Errorf("ro file bind changed: %q", b)
	}
}

func TestRecursiveReadonly(t *testing.T) {
	rt := newRuntime(t)
	src := hostDir(t)
	out, errOut, code := runContainer(t, rt,
		withMount(specs.Mount{Destination: "/plain", Type: "bind", Source: src, Options: []string{"rbind", "ro"}}),
		withMount(specs.Mount{Destination: "/rro", Type: "bind", Source: src, Options: []string{"rbind", "rro"}}),
		sh(`touch /plain/sub/a; echo plain-sub=$?; touch /rro/x; echo rro=$?; touch /rro/sub/a; echo rro-sub=$?`))
	if code != 0 {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	// plain "ro" covers the top mount only; rro covers the submount too.
	if out != "plain-sub=0\nrro=1\nrro-sub=1\n" {
		t.Errorf("stdout %q (stderr %q)", out, errOut)
	}
}

func TestMountPropagation(t *testing.T) {
	rt := newRuntime(t)
	d := filepath.Join(t.TempDir(), "shared")
	os.MkdirAll(d, 0o755)
	if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(d, unix.MNT_DETACH) })
	if err := unix.Mount("", d, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(d, "late"), 0o755)
	id, _ := startContainer(t, rt,
		withMount(specs.Mount{Destination: "/slave", Type: "bind", Source: d, Options: []string{"rbind", "rslave"}}),
		withMount(specs.Mount{Destination: "/private", Type: "bind", Source: d, Options: []string{"rbind", "rprivate"}}))
	late := filepath.Join(d, "late")
	if err := unix.Mount("tmpfs", late, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(late, unix.MNT_DETACH) })
	os.WriteFile(filepath.Join(late, "f"), []byte("propagated\n"), 0o644)
	out := execOut(t, rt, id, "sh", "-c", "cat /slave/late/f; ls /private/late | wc -l; grep -c /slave /proc/self/mountinfo")
	if !strings.HasPrefix(out, "propagated\n0\n") {
		t.Errorf("propagation: %q", out)
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	rt := newRuntime(t)
	// This VM's kernel has neither /proc/kcore nor /proc/sysrq-trigger, so
	// the test also masks paths of its own: a file and a directory that
	// exist in the rootfs, and makes /tmp read-only.
	out, errOut, code := runContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/etc/passwd", "/home")
		s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/tmp")
	}), sh(`cat /proc/kcore 2>/dev/null | wc -c; wc -c < /proc/keys; wc -c < /proc/timer_list; wc -c < /etc/passwd; ls -A /home | wc -l
echo h > /proc/sysrq-trigger; echo sysrq=$?; echo 1 > /proc/sys/kernel/panic; echo sys=$?
touch /tmp/x; echo tmp=$?; echo x > /etc/passwd; echo masked-write=$?; touch /home/x; echo home=$?`))
	if code != 0 {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	want := "0\n0\n0\n0\n0\nsysrq=1\nsys=1\ntmp=1\nmasked-write=0\nhome=1\n"
	if out != want {
		t.Errorf("stdout %q, want %q (stderr %q)", out, want, errOut)
	}
	wantContains(t, "stderr", errOut, "/proc/sys/kernel/panic: Read-only file system", "/tmp/x: Read-only file system", "/home/x: Read-only file system")
}

func TestHostnameDomainname(t *testing.T) {
	rt := newRuntime(t)
	out := mustRunContainer(t, rt, testutil.WithHostname("h1"), testutil.WithSpec(func(s *specs.Spec) { s.Domainname = "example.test" }),
		sh("hostname; cat /proc/sys/kernel/domainname"))
	if out != "h1\nexample.test\n" {
		t.Errorf("stdout %q", out)
	}
	host, _ := os.Hostname()
	if host == "h1" {
		t.Error("the host's name changed")
	}
}

func TestRlimits(t *testing.T) {
	rt := newRuntime(t)
	out := mustRunContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 654}, {Type: "RLIMIT_NPROC", Soft: 100, Hard: 200}}
	}), sh("ulimit -n; ulimit -Hn; ulimit -u"))
	if out != "321\n654\n100\n" {
		t.Errorf("stdout %q", out)
	}
}

func TestProcessUser(t *testing.T) {
	rt := newRuntime(t)
	umask := uint32(0o027)
	out := mustRunContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 44}, Umask: &umask}
	}), sh("id -u; id -g; id -G; umask; touch /tmp/f; stat -c %a /tmp/f; grep Groups /proc/self/status"))
	lines := strings.Split(out, "\n")
	if lines[0] != "1000" || lines[1] != "1000" || lines[3] != "0027" || lines[4] != "640" {
		t.Errorf("stdout %q", out)
	}
	if g := strings.Fields(lines[2]); len(g) != 3 || !strings.Contains(lines[2], "5") || !strings.Contains(lines[2], "44") {
		t.Errorf("id -G %q", lines[2])
	}
	if f := strings.Fields(lines[5]); len(f) != 3 || f[1] != "5" || f[2] != "44" {
		t.Errorf("Groups %q", lines[5])
	}
}

func TestCapabilities(t *testing.T) {
	rt := newRuntime(t)
	set := []string{"CAP_CHOWN", "CAP_NET_RAW"}
	out := mustRunContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
	}), sh("grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status"))
	want := "0000000000002001" // bits 0 (CHOWN) and 13 (NET_RAW)
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if v := statusField(out, k); v != want {
			t.Errorf("%s %q, want %s", k, v, want)
		}
	}
	if v := statusField(out, "CapAmb"); v != "0000000000000000" {
		t.Errorf("CapAmb %q", v)
	}
	// Non-root user with ambient capabilities keeps them.
	out = mustRunContainer(t, rt, testutil.WithUser(1000, 1000), testutil.WithSpec(func(s *specs.Spec) {
		c := []string{"CAP_NET_BIND_SERVICE"}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Effective: c, Permitted: c, Inheritable: c, Ambient: c}
	}), sh("grep -E '^Cap(Eff|Amb)' /proc/self/status"))
	if v := statusField(out, "CapEff"); v != "0000000000000400" {
		t.Errorf("uid 1000 CapEff %q (%q)", v, out)
	}
}

// TestAllCapabilitiesFails: this VM lacks CAP_SYS_RESOURCE in every bounding
// set, so asking for it must fail clearly and leave nothing.
func TestAllCapabilitiesFails(t *testing.T) {
	rt := newRuntime(t)
	status, _ := os.ReadFile("/proc/self/status")
	var bnd uint64
	fmt.Sscanf(statusField(string(status), "CapBnd"), "%x", &bnd)
	if bnd&(1<<unix.CAP_SYS_RESOURCE) != 0 {
		t.Fatalf("this host has CAP_SYS_RESOURCE in its bounding set (%x): the test's premise changed", bnd)
	}
	all := []string{}
	for _, c := range strings.Fields("CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP") {
		all = append(all, c)
	}
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}))
	id := testutil.UniqueName(t)
	_, errOut, err := rt.Run("create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatal("create with every capability succeeded on a host without CAP_SYS_RESOURCE")
	}
	wantContains(t, "stderr", errOut, "operation not permitted", "CAP_SYS_RESOURCE")
	if !strings.Contains(strings.ToLower(errOut), "cap") {
		t.Errorf("error does not mention capabilities: %q", errOut)
	}
	assertNothingLeft(t, rt, id, b.Spec.Linux.CgroupsPath, b.Dir)
}

func TestNoNewPrivileges(t *testing.T) {
	rt := newRuntime(t)
	for _, nnp := range []bool{true, false} {
		out := mustRunContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) { s.Process.NoNewPrivileges = nnp }), sh("grep NoNewPrivs /proc/self/status"))
		want := "0"
		if nnp {
			want = "1"
		}
		if v := statusField(out, "NoNewPrivs"); v != want {
			t.Errorf("noNewPrivileges %v: NoNewPrivs %q", nnp, v)
		}
	}
}

func TestOOMScoreAdj(t *testing.T) {
	rt := newRuntime(t)
	v := 500
	out := mustRunContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &v }), sh("cat /proc/self/oom_score_adj"))
	if out != "500\n" {
		t.Errorf("oom_score_adj %q", out)
	}
	neg := -500
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &neg }))
	id := testutil.UniqueName(t)
	_, errOut, err := rt.Run("create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatal("negative oomScoreAdj succeeded without CAP_SYS_RESOURCE")
	}
	wantContains(t, "stderr", errOut, "oom_score_adj", "-500", "permission denied")
	assertNothingLeft(t, rt, id, b.Spec.Linux.CgroupsPath, b.Dir)
}

func TestSysctl(t *testing.T) {
	rt := newRuntime(t)
	hostBefore, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	out := mustRunContainer(t, rt, testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
	}), sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"))
	if out != "1\n1234\n" {
		t.Errorf("sysctls in container: %q", out)
	}
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(after) != string(hostBefore) {
		t.Errorf("host ip_forward changed: %q -> %q", hostBefore, after)
	}
}
