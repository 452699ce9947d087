package overlay

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/snapshot"
)

// TestContainerRootfs: an image layer (busybox) committed, a container
// snapshot on it mounted as a bundle's rootfs, a program run chrooted in
// it; its writes land in the container's snapshot only.
func TestContainerRootfs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	ctx := context.Background()
	s, err := New(t.TempDir())
	check(t, err)
	t.Cleanup(func() { s.Close() })

	mounts, err := s.Prepare(ctx, "image-active", "")
	check(t, err)
	dir := t.TempDir()
	check(t, snapshot.MountAll(mounts, dir))
	out, err := exec.Command("cp", "-a", testutil.BusyboxRootfsShared(t)+"/.", dir).CombinedOutput()
	check(t, snapshot.UnmountAll(dir))
	if err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	check(t, s.Commit(ctx, "image", "image-active"))

	mounts, err = s.Prepare(ctx, "container", "image")
	check(t, err)
	rootfs := filepath.Join(t.TempDir(), "bundle", "rootfs")
	check(t, os.MkdirAll(rootfs, 0o755))
	check(t, snapshot.MountAll(mounts, rootfs))
	t.Cleanup(func() { _ = snapshot.UnmountAll(rootfs) })

	cmd := exec.Command("/bin/sh", "-c", "echo from-container > /written && rm /bin/ls && cat /written")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Dir = "/"
	out, err = cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "from-container" {
		t.Fatalf("program in the rootfs: %v: %q", err, out)
	}
	check(t, snapshot.UnmountAll(rootfs))

	upper := filepath.Join(s.dir(s.records["container"].ID), "fs")
	if b, err := os.ReadFile(filepath.Join(upper, "written")); err != nil || string(b) != "from-container\n" {
		t.Errorf("container's write in its snapshot: %q, %v", b, err)
	}
	image := filepath.Join(s.dir(s.records["image"].ID), "fs")
	if _, err := os.Lstat(filepath.Join(image, "bin/ls")); err != nil {
		t.Errorf("the image layer lost bin/ls: %v", err)
	}
	if _, err := os.Stat(filepath.Join(image, "written")); err == nil {
		t.Error("the container's write reached the image layer")
	}
}
