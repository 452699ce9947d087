package userns_test

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/idmap"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// remapUser creates a system user of the test's own with subordinate uid
// and gid ranges, removed (with its subuid/subgid lines) at cleanup.
func remapUser(t *testing.T) (name string, uid, gid int) {
	t.Helper()
	name = fmt.Sprintf("bu%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "-r", "-U", "-M", "-s", "/bin/false", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
		exec.Command("groupdel", name).Run() // gone with the user unless shared
		for _, f := range []string{idmap.HostFiles.Subuid, idmap.HostFiles.Subgid} {
			removeLines(t, f, name+":")
		}
	})
	for _, f := range []string{idmap.HostFiles.Subuid, idmap.HostFiles.Subgid} {
		if err := idmap.EnsureRange(f, name); err != nil {
			t.Fatal(err)
		}
	}
	r, err := idmap.Resolve(name, idmap.HostFiles)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid = r.Root()
	return name, uid, gid
}

func removeLines(t *testing.T, file, prefix string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Error(err)
		return
	}
	var keep []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasPrefix(l, prefix) {
			keep = append(keep, l)
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(keep, "")), 0o644); err != nil {
		t.Error(err)
	}
}

// remapDaemon starts berthd --userns-remap=user in a directory the
// remapped root can traverse (as dockerd, berthd refuses otherwise).
func remapDaemon(t *testing.T, user string) *berthd.Daemon {
	t.Helper()
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := berthd.NewDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// After the daemon's cleanup, before the dir goes: no mount of the
	// daemon's (rootfs, idmapped layers) may be left.
	testutil.LeakCheck(t, testutil.WatchDir(dir))
	// Refused while the directory is closed to the range's root.
	if d, err := berthd.Launch(bin, dir, "--userns-remap", user); err == nil {
		d.Stop()
		t.Fatal("berthd started with its data root in a 0700 directory")
	} else if !strings.Contains(err.Error(), "o+x") {
		t.Errorf("refusal: %v", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return launch(t, dir, "--userns-remap", user)
}

func busyboxArchive(t *testing.T) string { return images.Busybox(t).Archive }

func owner(t *testing.T, p string) string {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", s.Uid, s.Gid)
}

func docker(t *testing.T, d *berthd.Daemon, args ...string) (string, int) {
	t.Helper()
	return d.DockerCode(t, args...)
}

func remapTest(t *testing.T, noIDMap bool) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	if noIDMap {
		t.Setenv("BERTHD_USERNS_NO_IDMAP", "1")
	}
	user, uid, gid := remapUser(t)
	d := remapDaemon(t, user)
	root := fmt.Sprintf("%d:%d", uid, gid)

	if out := d.Must(t, "info", "-f", "{{json .SecurityOptions}}"); !strings.Contains(out, "name=userns") {
		t.Errorf("info SecurityOptions: %s", out)
	}

	// Inside: root, mapped to the range; the image's files are root's.
	// /.dockerenv is the init layer's, made for the mapping.
	out := d.Must(t, "run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map; stat -c %u:%g /bin/busybox /etc/passwd / /.dockerenv")
	lines := berthd.Lines(out)
	if len(lines) != 7 || lines[0] != "0" || strings.Join(strings.Fields(lines[1]), " ") != fmt.Sprintf("0 %d 65536", uid) ||
		strings.Join(strings.Fields(lines[2]), " ") != fmt.Sprintf("0 %d 65536", gid) || lines[3] != "0:0" || lines[4] != "0:0" || lines[5] != "0:0" || lines[6] != "0:0" {
		t.Errorf("remapped container sees:\n%s", out)
	}

	// On the host: the process and what it writes are the range root's.
	d.Must(t, "run", "-d", "--name", "long", "busybox", "sleep", "1000")
	pid := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{.State.Pid}}", "long"))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)) {
		t.Errorf("container process status on the host:\n%s", status)
	}
	d.Must(t, "exec", "long", "sh", "-c", "echo made > /made; mkdir /home/u; chown 1000:1000 /home/u; touch /etc/passwd")
	for p, want := range map[string]string{"made": root, "home/u": fmt.Sprintf("%d:%d", uid+1000, gid+1000), "etc/passwd": root} {
		if got := owner(t, filepath.Join("/proc", pid, "root", p)); got != want {
			t.Errorf("/%s on the host: %s, want %s", p, got, want)
		}
	}
	if out := d.Must(t, "exec", "long", "stat", "-c", "%u:%g", "/made", "/home/u"); berthd.Lines(out)[0] != "0:0" || berthd.Lines(out)[1] != "1000:1000" {
		t.Errorf("owners inside: %s", out)
	}
	if out := d.Must(t, "inspect", "-f", "{{.HostConfig.UsernsMode}}", "long"); strings.TrimSpace(out) != "" {
		t.Errorf("UsernsMode of a remapped container: %q", out)
	}

	// Live restore: a restarted daemon finds the container and still
	// remaps new ones.
	d.Crash()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if out := d.Must(t, "exec", "long", "cat", "/made"); strings.TrimSpace(out) != "made" {
		t.Errorf("exec after restart: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "busybox", "cat", "/proc/self/uid_map"); !strings.Contains(out, strconv.Itoa(uid)) {
		t.Errorf("uid_map after restart: %q", out)
	}

	// cp and export show the image's owners; cp in writes as the
	// container's root.
	for name, tarball := range map[string]string{
		"export": d.Must(t, "export", "long"),
		"cp":     d.Must(t, "cp", "long:/home", "-"),
	} {
		owners := tarOwners(t, tarball)
		want := map[string]string{"home/u/": "1000:1000", "home/": "0:0"}
		if name == "export" {
			want["made"], want["bin/busybox"] = "0:0", "0:0"
		}
		for p, w := range want {
			if owners[p] != w {
				t.Errorf("docker %s: %s owned by %q, want %s", name, p, owners[p], w)
			}
		}
	}
	incoming := filepath.Join(d.Dir, "incoming")
	if err := os.WriteFile(incoming, []byte("in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Must(t, "cp", incoming, "long:/incoming")
	if out := d.Must(t, "exec", "long", "stat", "-c", "%u:%g", "/incoming"); strings.TrimSpace(out) != "0:0" {
		t.Errorf("file copied in, inside: %q", out)
	}
	if got := owner(t, filepath.Join("/proc", pid, "root", "incoming")); got != root {
		t.Errorf("file copied in, on the host: %s, want %s", got, root)
	}

	// Commit: what the container's root made is uid 0 in the layer.
	d.Must(t, "commit", "long", "remapped:commit")
	d.Must(t, "rm", "-f", "long")
	if out := d.Must(t, "run", "--rm", "--userns=host", "remapped:commit", "stat", "-c", "%u:%g", "/made", "/home/u", "/etc/passwd"); strings.Join(berthd.Lines(out), " ") != "0:0 1000:1000 0:0" {
		t.Errorf("committed files seen with the host's ids: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "remapped:commit", "stat", "-c", "%u:%g", "/made"); strings.TrimSpace(out) != "0:0" {
		t.Errorf("committed file in a remapped container: %q", out)
	}

	// A stopped container's files, through a temporary mount.
	d.Must(t, "create", "--name", "stopped", "remapped:commit")
	if owners := tarOwners(t, d.Must(t, "export", "stopped")); owners["made"] != "0:0" || owners["home/u/"] != "1000:1000" {
		t.Errorf("export of a stopped container: made %q home/u %q", owners["made"], owners["home/u/"])
	}
	if owners := tarOwners(t, d.Must(t, "cp", "stopped:/made", "-")); owners["made"] != "0:0" {
		t.Errorf("cp from a stopped container: %v", owners)
	}
	d.Must(t, "rm", "stopped")

	// A root-only host file bound in: host root reads it, the remapped
	// root may not.
	secret := filepath.Join(d.Dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := docker(t, d, "run", "--rm", "-v", secret+":/secret", "busybox", "sh", "-c", "cat /secret || echo x >> /secret"); code == 0 || strings.Contains(out, "s3cret") {
		t.Errorf("remapped root read or wrote a 0600 host file: %d %q", code, out)
	}
	if out := d.Must(t, "run", "--rm", "--userns=host", "-v", secret+":/secret", "busybox", "cat", "/secret"); strings.TrimSpace(out) != "s3cret" {
		t.Errorf("--userns=host read: %q", out)
	}
	// Device nodes: even with CAP_MKNOD and CAP_SYS_ADMIN, no mknod nor a
	// mount of a real filesystem in the user namespace.
	if out, code := docker(t, d, "run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "mknod /tmp/sda b 8 0"); code == 0 {
		t.Errorf("mknod in a remapped container: %q", out)
	}
	if out, code := docker(t, d, "run", "--rm", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", "mkdir /m && mount -t sysfs sysfs /m"); code == 0 {
		t.Errorf("sysfs mount in a remapped container with SYS_ADMIN: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--userns=host", "busybox", "sh", "-c", "mknod /tmp/sda b 8 0 && cat /proc/self/uid_map"); strings.Join(strings.Fields(out), " ") != "0 0 4294967295" {
		t.Errorf("--userns=host: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--userns=host", "busybox", "true"); out != "" {
		t.Errorf("--userns=host run: %q", out)
	}

	// --privileged needs --userns=host, as with dockerd.
	if out, code := docker(t, d, "run", "--rm", "--privileged", "busybox", "true"); code == 0 || !strings.Contains(out, "privileged mode is incompatible with user namespaces") {
		t.Errorf("--privileged with remapping: %d %q", code, out)
	}
	if out := d.Must(t, "run", "--rm", "--privileged", "--userns=host", "busybox", "id", "-u"); strings.TrimSpace(out) != "0" {
		t.Errorf("--privileged --userns=host: %q", out)
	}

	// Volumes belong to the remapped root; its files stay the range's.
	d.Must(t, "run", "--rm", "-v", "vol:/data", "busybox", "sh", "-c", "echo v > /data/f")
	mp := strings.TrimSpace(d.Must(t, "volume", "inspect", "-f", "{{.Mountpoint}}", "vol"))
	if got := owner(t, mp); got != root {
		t.Errorf("volume data dir: %s, want %s", got, root)
	}
	if got := owner(t, filepath.Join(mp, "f")); got != root {
		t.Errorf("file in the volume: %s, want %s", got, root)
	}
	if out := d.Must(t, "run", "--rm", "-v", "vol:/data", "busybox", "stat", "-c", "%u:%g", "/data/f"); strings.TrimSpace(out) != "0:0" {
		t.Errorf("volume file inside: %q", out)
	}
	// The layers were shown through idmapped mounts, or copied once.
	cache := filepath.Join(d.DataRoot, "userns", fmt.Sprintf("%d.%d", uid, gid))
	ents, _ := os.ReadDir(cache)
	if noIDMap && len(ents) == 0 {
		t.Errorf("no chown'd layer copies in %s", cache)
	}
	if !noIDMap && len(ents) != 0 {
		t.Errorf("layer copies in %s although idmapped mounts work", cache)
	}
	for _, e := range ents {
		bb := filepath.Join(cache, e.Name(), "bin", "busybox")
		if _, err := os.Lstat(bb); err == nil {
			if got := owner(t, bb); got != root {
				t.Errorf("copied layer %s: /bin/busybox owned by %s, want %s", e.Name(), got, root)
			}
		}
	}
	// The berth CLI drives the same.
	if stdout, stderr, code := d.Berth(t, "", "info"); code != 0 || !strings.Contains(stdout, " Security Options:\n  seccomp\n   Profile: builtin\n  userns\n") {
		t.Errorf("berth info: %d %q %q", code, stdout, stderr)
	}
	if stdout, stderr, code := d.Berth(t, "", "run", "--rm", "busybox", "cat", "/proc/self/uid_map"); code != 0 || !strings.Contains(stdout, strconv.Itoa(uid)) {
		t.Errorf("berth run: %d %q %q", code, stdout, stderr)
	}
}

func TestRemapIDMapped(t *testing.T) { remapTest(t, false) }

// TestRemapCopiedLayers forces the fallback: chown'd copies of the layers,
// cached once per range.
func TestRemapCopiedLayers(t *testing.T) { remapTest(t, true) }

// tarOwners maps the entries of a tar to their "uid:gid".
func tarOwners(t *testing.T, s string) map[string]string {
	t.Helper()
	owners := map[string]string{}
	tr := tar.NewReader(strings.NewReader(s))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return owners
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		owners[strings.TrimPrefix(hdr.Name, "/")] = fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid)
	}
}
