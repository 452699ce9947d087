package netns

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestCreateDoRemove: the namespace is a new one with lo up, Do runs in
// it and returns the thread to the host's, Remove leaves nothing.
func TestCreateDoRemove(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	p := filepath.Join(t.TempDir(), "ns")
	if err := Create(p); err != nil {
		t.Fatal(err)
	}
	if err := Create(p); err == nil {
		t.Error("a second Create on the same path succeeded")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var host, inside unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &host); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(p, &inside); err != nil {
		t.Fatal(err)
	}
	if host.Ino == inside.Ino {
		t.Fatalf("the namespace file is the host's namespace (%d %d / %d %d)", host.Dev, host.Ino, inside.Dev, inside.Ino)
	}
	var loFlags uint16
	err := Do(p, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("lo")
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		loFlags = ifr.Uint16()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if loFlags&unix.IFF_UP == 0 {
		t.Errorf("lo is down in the new namespace")
	}
	var after unix.Stat_t
	unix.Stat("/proc/thread-self/ns/net", &after)
	if after.Ino != host.Ino {
		t.Errorf("this thread is not in the host's namespace after Do")
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("namespace file after Remove: %v", err)
	}
	if err := Remove(p); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}
