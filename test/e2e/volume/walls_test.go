package volume_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// hostCanary is a path under the host's /tmp that an escape would
// create; it must never exist.
func hostCanary(t *testing.T) string {
	t.Helper()
	name := "berth-escape-" + testutil.UniqueName(t)
	p := filepath.Join("/tmp", name)
	os.RemoveAll(p)
	t.Cleanup(func() {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("ESCAPE: %s was created on the host", p)
			os.RemoveAll(p)
		}
	})
	return name
}

// TestEscapeMountDestinationSymlink: a mount destination that runs
// through a symlink in the image pointing at / lands inside the
// container, never on the host.
func TestEscapeMountDestinationSymlink(t *testing.T) {
	d := daemon(t)
	canary := hostCanary(t)
	d.Must(t, "run", "--name", "mk", "busybox", "ln", "-s", "/", "/escape")
	d.Must(t, "commit", "mk", "evil")
	d.Must(t, "rm", "mk")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "marker"), []byte("m\n"), 0o644)
	for _, flag := range [][]string{
		{"-v", src + ":/escape/tmp/" + canary},
		{"--mount", "type=bind,src=" + src + ",dst=/escape/tmp/" + canary},
		{"-v", "evilvol:/escape/tmp/" + canary},
		{"--tmpfs", "/escape/tmp/" + canary},
	} {
		args := append(append([]string{"run", "--rm"}, flag...), "evil", "sh", "-c", "ls -A /tmp/"+canary)
		if out, code := d.DockerCode(t, args...); code != 0 {
			t.Errorf("%v: %q exit %d (the mount must land in the container's /tmp)", flag, out, code)
		}
	}
	d.Must(t, "volume", "rm", "evilvol")
	d.Must(t, "rmi", "evil")
}

// TestEscapeSymlinkInVolume: a symlink a container leaves in a volume or
// a bound directory, pointing out, leads nowhere outside for the next
// container's mounts, for cp, or for copy-up.
func TestEscapeSymlinkInVolume(t *testing.T) {
	d := daemon(t)
	canary := hostCanary(t)
	host := t.TempDir()
	d.Must(t, "run", "--rm", "-v", "trap:/data", "-v", host+":/bind", "busybox", "sh", "-c", "ln -s / /data/root && ln -s / /bind/root && ln -s /tmp /data/tmp")
	// On the host, the bound directory's link is just a link; the volume's too.
	if target, err := os.Readlink(filepath.Join(host, "root")); err != nil || target != "/" {
		t.Fatalf("setup: %q %v", target, err)
	}
	src := t.TempDir()
	for _, dst := range []string{"/data/root/tmp/" + canary, "/bind/root/tmp/" + canary, "/data/tmp/" + canary} {
		out, code := d.DockerCode(t, "run", "--rm", "-v", "trap:/data", "-v", host+":/bind", "-v", src+":"+dst, "busybox", "sh", "-c", "test -d /tmp/"+canary+" && echo inside")
		if code != 0 || out != "inside\n" {
			t.Errorf("bind at %s: %q exit %d, want it inside the container's /tmp", dst, out, code)
		}
	}
	// cp into a running container through the volume's and the bind's links.
	d.Must(t, "run", "-d", "--name", "victim", "-v", "trap:/data", "-v", host+":/bind", "busybox", "sleep", "1000")
	f := filepath.Join(t.TempDir(), canary)
	os.WriteFile(f, []byte("payload\n"), 0o644)
	for _, dst := range []string{"victim:/data/root/tmp/", "victim:/bind/root/tmp/", "victim:/data/tmp/"} {
		if out, code := d.DockerCode(t, "cp", f, dst); code != 0 {
			t.Errorf("cp to %s: %q exit %d", dst, out, code)
		}
	}
	if out := d.Must(t, "exec", "victim", "cat", "/tmp/"+canary); out != "payload\n" {
		t.Errorf("cp through links did not land in the container's /tmp: %q", out)
	}
	// cp out through the links reads the container's files, not the host's.
	hostname, _ := os.ReadFile("/etc/hostname")
	if out := d.Must(t, "exec", "victim", "sh", "-c", "echo inside-hostname > /etc/hostname"); out != "" {
		t.Fatal(out)
	}
	outDir := t.TempDir()
	d.Must(t, "cp", "victim:/data/root/etc/hostname", outDir)
	if b, _ := os.ReadFile(filepath.Join(outDir, "hostname")); string(b) == string(hostname) && string(b) != "inside-hostname\n" {
		t.Errorf("cp out through a volume's link read the host's /etc/hostname")
	}
	d.Must(t, "rm", "-f", "victim")
	d.Must(t, "volume", "rm", "trap")
}

// TestEscapeCpSymlinkSwap: cp into a path a container keeps swapping
// between a directory and a symlink to / (CVE-2018-15664) never writes
// to the host.
func TestEscapeCpSymlinkSwap(t *testing.T) {
	d := daemon(t)
	canary := hostCanary(t)
	d.Must(t, "run", "-d", "--name", "swapper", "busybox", "sh", "-c",
		"mkdir -p /w/real; while true; do ln -sfn / /w/link; mv -T /w/link /w/d 2>/dev/null; rm -rf /w/d; mkdir /w/d; done")
	f := filepath.Join(t.TempDir(), canary)
	os.WriteFile(f, []byte("payload\n"), 0o644)
	for i := 0; i < 40; i++ {
		d.DockerCode(t, "cp", f, "swapper:/w/d/tmp/")
		d.DockerCode(t, "cp", f, "swapper:/w/d/")
	}
	d.Must(t, "rm", "-f", "swapper")
}

// TestEscapeCpIntoStoppedVolume: cp into a path of a created container
// whose destination runs through the image's symlink to / stays inside.
func TestEscapeCpThroughImageSymlink(t *testing.T) {
	d := daemon(t)
	canary := hostCanary(t)
	d.Must(t, "create", "--name", "other", "busybox", "sleep", "100")
	d.Must(t, "run", "--name", "mk", "busybox", "ln", "-s", "/", "/escape")
	d.Must(t, "commit", "mk", "evil")
	d.Must(t, "rm", "mk")
	d.Must(t, "create", "--name", "stopped", "evil", "true")
	f := filepath.Join(t.TempDir(), canary)
	os.WriteFile(f, []byte("payload\n"), 0o644)
	if out, code := d.DockerCode(t, "cp", f, "stopped:/escape/tmp/"); code != 0 {
		t.Errorf("cp into a stopped container through its link: %q exit %d", out, code)
	}
	out := d.Must(t, "cp", "stopped:/tmp/"+canary, "-")
	if !strings.Contains(out, "payload") {
		t.Errorf("cp through the link did not land in the container's /tmp: %q", out)
	}
	d.Must(t, "rm", "stopped", "other")
	d.Must(t, "rmi", "evil")
}
