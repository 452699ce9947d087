package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// KeepSysctl holds a host-wide lock on the sysctl file path for the rest
// of the test and writes its value back when the test ends. Test binaries
// of several packages run at once: without the lock, one could save the
// value another test had just changed and "restore" that.
func KeepSysctl(t testing.TB, path string) {
	t.Helper()
	lockPath := filepath.Join(os.TempDir(), "berth-test-sysctl"+strings.ReplaceAll(path, "/", "_")+".lock")
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("sysctl lock %s: %v", lockPath, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("sysctl lock %s: %v", lockPath, err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		t.Fatalf("sysctl %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, before, 0o644); err != nil {
			t.Errorf("restore sysctl %s: %v", path, err)
		}
		f.Close() // releases the lock
	})
}
