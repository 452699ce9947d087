package testutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// LeakOption widens what LeakCheck attributes to the test.
type LeakOption func(*fixture.LeakScope)

// WatchDir makes LeakCheck attribute new mounts under dir, and processes
// rooted or working under it, to the test.
func WatchDir(dir string) LeakOption {
	return func(s *fixture.LeakScope) { s.Dirs = append(s.Dirs, dir) }
}

// WatchName makes LeakCheck attribute new cgroups, netns and (outside the
// temp dir) mounts whose path contains name to the test.
func WatchName(name string) LeakOption {
	return func(s *fixture.LeakScope) { s.Names = append(s.Names, name) }
}

// LeakCheck snapshots mounts, cgroups, processes and named network
// namespaces now and, when the test ends, fails it if any new one in the
// test's scope is still there; it then removes them (kills processes by
// pid, detaches mounts, removes cgroup dirs and netns entries).
//
// In scope: mounts under the test's temp dirs, or whose path contains the
// test's Marker, or "berth" outside os.TempDir(); cgroup dirs in any
// hierarchy whose path contains the Marker or "berth" (name cgroups and
// containers with UniqueName); processes descended from the test binary or
// whose root or cwd lies in the test's temp dirs, or that sit in a cgroup
// in scope (a leaked container); netns
// entries whose name contains the Marker or "berth".
//
// Call it first in the test, before creating anything, so its check runs
// after the test's other cleanups.
//
// With BERTH_TEST_SHARED set (several people testing on one machine), the
// catch-all "berth" name is dropped: only what carries the test's Marker,
// lies in its dirs or descends from it counts, so one run never reports
// (and kills) another's containers.
func LeakCheck(t testing.TB, opts ...LeakOption) {
	t.Helper()
	scope := fixture.LeakScope{
		Marker: Marker(t),
		// t.TempDir() dirs all share one parent per test.
		Dirs:  []string{filepath.Dir(t.TempDir())},
		Names: []string{"berth"},
	}
	if os.Getenv("BERTH_TEST_SHARED") != "" {
		scope.Names = nil
	}
	for _, o := range opts {
		o(&scope)
	}
	snap, err := fixture.TakeLeakSnapshot(scope)
	if err != nil {
		t.Fatalf("leak check: %v", err)
	}
	t.Cleanup(func() {
		leaks, err := snap.Check()
		// Clean-ups that outlive their request (a shim removing its
		// container's cgroup after reporting the exit) get ten seconds
		// to finish, for a loaded host; a leak stays.
		for i := 0; err == nil && len(leaks) > 0 && i < 100; i++ {
			time.Sleep(100 * time.Millisecond)
			leaks, err = snap.Check()
		}
		if err != nil {
			t.Errorf("leak check: %v", err)
			return
		}
		if len(leaks) == 0 {
			return
		}
		for _, l := range leaks {
			t.Errorf("leaked %s", l)
		}
		if err := fixture.Clean(leaks); err != nil {
			t.Errorf("cleaning leaks: %v", err)
		}
	})
}
