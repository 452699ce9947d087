package files_test

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func syscallMkfifo(p string) error { return unix.Mkfifo(p, 0o644) }

func listenUnix(t *testing.T, p string) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func mknodWhiteout(p string) error { return unix.Mknod(p, unix.S_IFCHR, 0) }

func setOpaque(p string) error { return unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0) }

// copyMeta gives dst the mode, owner and times of src (an overlay copy-up).
func copyMeta(t *testing.T, src, dst string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		t.Fatal(err)
	}
	if err := unix.UtimesNano(dst, []unix.Timespec{st.Atim, st.Mtim}); err != nil {
		t.Fatal(err)
	}
}
