package security

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
)

// symlink makes rootfs/name a symlink to target, replacing what was there.
func symlink(t *testing.T, rootfs, name, target string) {
	t.Helper()
	p := filepath.Join(rootfs, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// hostUntouched fails the test if dir holds anything but want or has a
// mount at or below it on the host.
func hostUntouched(t *testing.T, dir string, want ...string) {
	t.Helper()
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("host dir %s now holds %v, want %v: the runtime followed a symlink out of the rootfs", dir, got, want)
	}
	if m := hostMountsUnder(t, dir); len(m) > 0 {
		t.Errorf("host has mounts under %s: %v", dir, m)
	}
}

// TestMountDestinationSymlinksStayInRoot gives the runtime an image whose
// mount destinations lead out of the rootfs through symlinks: an absolute
// symlink to a host dir, a relative one climbing with "..", a symlink to
// "/", and a symlink as an intermediate component. Every mount must land
// inside the rootfs (the symlinks resolved as if the rootfs were /), and
// the host must be untouched: no new entry in the host dirs, no mount on
// the host.
//
// Defense: mount targets are resolved in-root with pathrs-lite and mounted
// through /proc/self/fd (rootfs.go mkdirIn). With a plain
// MkdirAll(rootfs+dest) the runtime creates the mount points in the host
// dir and this test fails.
func TestMountDestinationSymlinksStayInRoot(t *testing.T) {
	rt := setup(t)
	host := t.TempDir()
	marker := "host-marker"
	if err := os.WriteFile(filepath.Join(host, marker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir() // a bind source the container should see at /etc
	if err := os.WriteFile(filepath.Join(src, "bound-marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hostEtcMounts := hostMountsUnder(t, "/etc")
	climb := strings.Repeat("../", 12)

	mounts := []specs.Mount{
		{Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/evilrel/y", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/a/b/c/d", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/evil2/etc", Type: "bind", Source: src, Options: []string{"rbind", "ro"}},
		{Destination: "/evil/file", Type: "bind", Source: filepath.Join(src, "bound-marker"), Options: []string{"bind"}},
	}
	script := `
		for d in /evil/x /evilrel/y /a/b/c/d; do echo "$d $(stat -f -c %T $d)"; done
		ls /etc
		echo "file $(stat -c %F /evil/file)"
		grep -c " ` + host + `/" /proc/self/mountinfo
	`
	b := testutil.NewBundle(t,
		testutil.WithArgs("/bin/sh", "-c", script),
		testutil.WithSpec(func(s *specs.Spec) { s.Mounts = append(s.Mounts, mounts...) }),
	)
	// The image has the symlinks' targets too, so they resolve inside it.
	if err := os.MkdirAll(filepath.Join(b.Rootfs, host), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, b.Rootfs, "evil", host)
	symlink(t, b.Rootfs, "evilrel", climb+strings.TrimPrefix(host, "/"))
	symlink(t, b.Rootfs, "evil2", "/")
	symlink(t, b.Rootfs, "a/b", climb+strings.TrimPrefix(host, "/"))
	out, _, err := rt.Run("run", "--bundle", b.Dir, testutil.UniqueName(t))
	if err != nil {
		t.Errorf("run: %v\n%s", err, out)
	} else {
		expectLines(t, out, "/evil/x tmpfs", "/evilrel/y tmpfs", "/a/b/c/d tmpfs", "bound-marker", "file regular empty file", "4")
	}

	hostUntouched(t, host, marker)
	hostUntouched(t, src, "bound-marker")
	if got := hostMountsUnder(t, "/etc"); !slices.Equal(got, hostEtcMounts) {
		t.Errorf("host mounts under /etc changed: %v, before %v", got, hostEtcMounts)
	}
	// The mount points exist where the symlinks lead inside the rootfs.
	for _, p := range []string{"x", "y", "c/d", "file"} {
		if _, err := os.Lstat(filepath.Join(b.Rootfs, host, p)); err != nil {
			t.Errorf("mount point not created inside the rootfs: %v", err)
		}
	}
}

// TestDanglingMountSymlinkStaysInRoot is TestMountDestinationSymlinksStayInRoot
// with symlinks whose targets exist only on the host: the runtime may
// refuse them or create the targets inside the rootfs, never on the host.
func TestDanglingMountSymlinkStaysInRoot(t *testing.T) {
	rt := setup(t)
	host := t.TempDir()
	climb := strings.Repeat("../", 12)
	for name, mnt := range map[string]specs.Mount{
		"absolute":     {Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"},
		"relative":     {Destination: "/evilrel/y", Type: "tmpfs", Source: "tmpfs"},
		"intermediate": {Destination: "/a/b/c/d", Type: "tmpfs", Source: "tmpfs"},
		"bind":         {Destination: "/evil/z", Type: "bind", Source: t.TempDir(), Options: []string{"rbind"}},
	} {
		t.Run(name, func(t *testing.T) {
			b := testutil.NewBundle(t,
				testutil.WithArgs("/bin/sh", "-c", "grep -c tmpfs /proc/self/mountinfo"),
				testutil.WithSpec(func(s *specs.Spec) { s.Mounts = append(s.Mounts, mnt) }),
			)
			symlink(t, b.Rootfs, "evil", host)
			symlink(t, b.Rootfs, "evilrel", climb+strings.TrimPrefix(host, "/"))
			symlink(t, b.Rootfs, "a/b", climb+strings.TrimPrefix(host, "/"))
			if _, _, err := rt.Run("run", "--bundle", b.Dir, testutil.UniqueName(t)); err != nil {
				t.Logf("refused: %v", err)
			}
			hostUntouched(t, host)
		})
	}
}

// TestSymlinkedProcStaysInRoot replaces the image's /proc with a symlink
// to a host directory (absolute, and relative with ".."; the target exists
// in the image, or only on the host): proc must be mounted inside the
// rootfs or refused, never mounted on the host directory, and the
// container's masked paths must still be masked.
//
// Defense: as for TestMountDestinationSymlinksStayInRoot.
func TestSymlinkedProcStaysInRoot(t *testing.T) {
	rt := setup(t)
	for _, tc := range []struct{ name, target func(host string) string }{
		{name: func(string) string { return "absolute" }, target: func(host string) string { return host }},
		{name: func(string) string { return "relative" }, target: func(host string) string {
			return strings.Repeat("../", 12) + strings.TrimPrefix(host, "/")
		}},
	} {
		for _, inImage := range []bool{true, false} {
			name := tc.name("") + map[bool]string{true: "-in-image", false: "-dangling"}[inImage]
			t.Run(name, func(t *testing.T) {
				host := t.TempDir()
				b := testutil.NewBundle(t, testutil.WithArgs("/bin/sh", "-c",
					`echo "proc $(stat -f -c %T /proc/)"; echo "timer_list $(wc -c < /proc/timer_list)"`))
				symlink(t, b.Rootfs, "proc", tc.target(host))
				if inImage {
					if err := os.MkdirAll(filepath.Join(b.Rootfs, host), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				out, _, err := rt.Run("run", "--bundle", b.Dir, testutil.UniqueName(t))
				switch {
				case inImage && err != nil:
					t.Errorf("run: %v", err)
				case err != nil:
					// Refusing is fine as long as the host is untouched.
					t.Logf("run refused the dangling /proc symlink: %v", err)
				default:
					expectLines(t, out, "proc proc", "timer_list 0")
				}
				hostUntouched(t, host)
			})
		}
	}
}
