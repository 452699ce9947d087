package volume_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTmpfs: --tmpfs and --mount type=tmpfs with size and mode, noexec
// by default as Docker, and what inspect shows of each.
func TestTmpfs(t *testing.T) {
	d := daemon(t)
	out := d.Must(t, "run", "--rm", "--tmpfs", "/t:size=1m,mode=1770", "busybox", "sh", "-c", "grep ' /t ' /proc/self/mountinfo; stat -c %a /t")
	if !strings.Contains(out, " - tmpfs tmpfs ") || !strings.Contains(out, "size=1024k") || !strings.Contains(out, "mode=1770") ||
		!strings.Contains(out, "noexec") || !strings.Contains(out, "nosuid") || !strings.Contains(out, "nodev") || !strings.HasSuffix(out, "\n1770\n") {
		t.Errorf("--tmpfs: %q", out)
	}
	out = d.Must(t, "run", "--rm", "--mount", "type=tmpfs,dst=/m,tmpfs-size=2097152,tmpfs-mode=0700", "busybox", "sh", "-c", "grep ' /m ' /proc/self/mountinfo; stat -c %a /m")
	if !strings.Contains(out, " - tmpfs tmpfs ") || !strings.Contains(out, "size=2048k") || !strings.HasSuffix(out, "\n700\n") {
		t.Errorf("--mount type=tmpfs: %q", out)
	}
	// noexec unless asked: a program copied there does not run.
	out, code := d.DockerCode(t, "run", "--rm", "--tmpfs", "/t", "busybox", "sh", "-c", "cp /bin/busybox /t/true && /t/true")
	if code == 0 || !strings.Contains(out, "Permission denied") {
		t.Errorf("exec from a default --tmpfs: %q exit %d", out, code)
	}
	if out, code := d.DockerCode(t, "run", "--rm", "--tmpfs", "/t:exec", "busybox", "sh", "-c", "cp /bin/busybox /t/echo && /t/echo ran"); code != 0 || out != "ran\n" {
		t.Errorf("exec from --tmpfs /t:exec: %q exit %d", out, code)
	}
	d.Must(t, "create", "--name", "tm", "--tmpfs", "/a:size=1m", "--mount", "type=tmpfs,dst=/b", "busybox", "true")
	if out := d.Must(t, "inspect", "-f", "{{json .HostConfig.Tmpfs}} {{json .Mounts}}", "tm"); out != `{"/a":"size=1m"} [{"Type":"tmpfs","Source":"","Destination":"/b","Mode":"","RW":true,"Propagation":""}]`+"\n" {
		t.Errorf("inspect tmpfs: %q", out)
	}
	// A tmpfs over the image's directory hides it, as a mount does.
	if out := d.Must(t, "run", "--rm", "--tmpfs", "/etc/network", "busybox", "ls", "-A", "/etc/network"); out != "" {
		t.Errorf("tmpfs over an image dir shows %q", out)
	}
}

// TestReadOnlyRootfs: --read-only makes every write outside volumes,
// binds and tmpfs fail; those still take writes.
func TestReadOnlyRootfs(t *testing.T) {
	d := daemon(t)
	host := t.TempDir()
	out, code := d.DockerCode(t, "run", "--rm", "--read-only", "busybox", "touch", "/x")
	if code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("--read-only write to /: %q exit %d", out, code)
	}
	for _, p := range []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/tmp/x", "/sys/kernel/x"} {
		if out, code := d.DockerCode(t, "run", "--rm", "--read-only", "busybox", "sh", "-c", "echo x >> "+p); code == 0 {
			t.Errorf("--read-only write to %s succeeded: %q", p, out)
		}
	}
	out, code = d.DockerCode(t, "run", "--rm", "--read-only", "-v", "rw:/vol", "-v", host+":/bind", "--tmpfs", "/tmp", "busybox",
		"sh", "-c", "echo v > /vol/f && echo b > /bind/f && echo t > /tmp/f && echo s > /dev/shm/f && cat /vol/f /bind/f /tmp/f /dev/shm/f")
	if code != 0 || out != "v\nb\nt\ns\n" {
		t.Errorf("--read-only with a volume, a bind and a tmpfs: %q exit %d", out, code)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "f")); string(b) != "b\n" {
		t.Errorf("bind write under --read-only: %q", b)
	}
	d.Must(t, "volume", "rm", "rw")
}
