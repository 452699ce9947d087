package netns

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

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
	if !loUp(t, p) {
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

// loUp says whether lo is up in the namespace at path.
func loUp(t *testing.T, path string) bool {
	t.Helper()
	var flags uint16
	err := Do(path, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("lo")
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		flags = ifr.Uint16()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return flags&unix.IFF_UP != 0
}

// Spares: each Create gives a new namespace (not the host's, not one
// handed out before) with lo up, the first made on the spot and the next
// ones from the spare made meanwhile; after Close no spare is held and
// Create still works.
func TestSpares(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	var host unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &host); err != nil {
		t.Fatal(err)
	}
	var p Spares
	seen := map[uint64]bool{host.Ino: true}
	dir := t.TempDir()
	spare := func() *os.File {
		for i := 0; i < 200; i++ {
			p.mu.Lock()
			f := p.next
			p.mu.Unlock()
			if f != nil {
				return f
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	for i := range 4 {
		path := filepath.Join(dir, "ns"+strconv.Itoa(i))
		var want unix.Stat_t
		if i > 0 {
			f := spare()
			if f == nil {
				t.Fatalf("create %d: no spare was made", i)
			}
			unix.Fstat(int(f.Fd()), &want)
		}
		if err := p.Create(path); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if seen[st.Ino] {
			t.Errorf("create %d: namespace %d is the host's or was handed out before", i, st.Ino)
		}
		if i > 0 && st.Ino != want.Ino {
			t.Errorf("create %d: namespace %d, not the spare %d", i, st.Ino, want.Ino)
		}
		seen[st.Ino] = true
		if !loUp(t, path) {
			t.Errorf("create %d: lo is down", i)
		}
		t.Cleanup(func() { Remove(path) })
	}
	spare()
	p.Close()
	held := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.next != nil || p.filling
	}
	if held() {
		t.Error("a spare is held after Close")
	}
	path := filepath.Join(dir, "after-close")
	if err := p.Create(path); err != nil || !loUp(t, path) {
		t.Errorf("create after Close: %v", err)
	}
	Remove(path)
	time.Sleep(50 * time.Millisecond)
	if held() {
		t.Error("a spare was made after Close")
	}
}
