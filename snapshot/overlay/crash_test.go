package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/snapshot"
)

var errCrash = errors.New("simulated crash")

// crashAt makes the next operation stop at point, as if the process died
// there.
func crashAt(t *testing.T, point string) {
	testHookCrash = func(p string) error {
		if p == point {
			return errCrash
		}
		return nil
	}
	t.Cleanup(func() { testHookCrash = nil })
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// reopen simulates the restart after a crash: the old Snapshotter is
// dropped (its lock released) and a new one opened on the same root.
func reopen(t *testing.T, s *Snapshotter) *Snapshotter {
	t.Helper()
	testHookCrash = nil
	s.Close()
	n, err := New(s.root)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestCrashPoints(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	for _, c := range []struct {
		point string
		op    func(s *Snapshotter) error
		// after checks the state seen after restart, before Cleanup.
		after func(t *testing.T, s *Snapshotter)
	}{
		{"create:staged", func(s *Snapshotter) error {
			_, err := s.Prepare(ctx, "new", "base")
			return err
		}, func(t *testing.T, s *Snapshotter) {
			if _, err := s.Stat(ctx, "new"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("half-made snapshot is visible: %v", err)
			}
			if len(entries(t, filepath.Join(s.root, "staging"))) != 1 {
				t.Errorf("staging: %q, want the half-made snapshot", entries(t, filepath.Join(s.root, "staging")))
			}
		}},
		{"record:written", func(s *Snapshotter) error { // during Commit
			return s.Commit(ctx, "committed", "active")
		}, func(t *testing.T, s *Snapshotter) {
			info, err := s.Stat(ctx, "active")
			if err != nil || info.Kind != snapshot.KindActive {
				t.Errorf("interrupted commit: active = %+v, %v; want it still active", info, err)
			}
			if _, err := s.Stat(ctx, "committed"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("interrupted commit is visible: %v", err)
			}
		}},
		{"remove:trashed", func(s *Snapshotter) error {
			return s.Remove(ctx, "active")
		}, func(t *testing.T, s *Snapshotter) {
			if _, err := s.Stat(ctx, "active"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("removed snapshot is back: %v", err)
			}
			if len(entries(t, filepath.Join(s.root, "trash"))) != 1 {
				t.Errorf("trash: %q, want the removed snapshot", entries(t, filepath.Join(s.root, "trash")))
			}
		}},
	} {
		t.Run(c.point, func(t *testing.T) {
			s, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Prepare(ctx, "base-active", "")
			check(t, err)
			check(t, s.Commit(ctx, "base", "base-active"))
			_, err = s.Prepare(ctx, "active", "base")
			check(t, err)

			crashAt(t, c.point)
			if err := c.op(s); !errors.Is(err, errCrash) {
				t.Fatalf("operation did not reach %s: %v", c.point, err)
			}
			s = reopen(t, s)
			c.after(t, s)
			check(t, s.Cleanup(ctx))
			assertClean(t, s)
			// The store works normally afterwards.
			_, err = s.Prepare(ctx, "after", "base")
			check(t, err)
			check(t, s.Commit(ctx, "after-c", "after"))
		})
	}
}

// assertClean checks that staging/ and trash/ are empty, no temporary
// record is left and every snapshot's directory is complete.
func assertClean(t *testing.T, s *Snapshotter) {
	t.Helper()
	for _, d := range []string{"staging", "trash"} {
		if left := entries(t, filepath.Join(s.root, d)); len(left) > 0 {
			t.Errorf("%s after Cleanup: %q", d, left)
		}
	}
	for _, id := range entries(t, filepath.Join(s.root, "snapshots")) {
		for _, f := range entries(t, s.dir(id)) {
			if strings.HasSuffix(f, ".tmp") {
				t.Errorf("snapshot %s: %s left after Cleanup", id, f)
			}
		}
		if _, err := os.Stat(filepath.Join(s.dir(id), "fs")); err != nil {
			t.Errorf("snapshot %s: %v", id, err)
		}
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesSecondOpenAndBrokenRecords(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	check(t, err)
	if _, err := New(root); err == nil {
		t.Fatal("a second Snapshotter opened the same root")
	}
	check(t, s.Close())
	check(t, os.MkdirAll(filepath.Join(root, "snapshots", "7", "fs"), 0o755))
	if _, err := New(root); err == nil || !strings.Contains(err.Error(), "snapshot 7") {
		t.Fatalf("New with a record-less snapshot dir: %v, want an error naming it", err)
	}
}

// crashChildEnv names the root a child process works on until it is
// killed (see TestKilledMidOperation).
const crashChildEnv = "BERTH_OVERLAY_CRASH_CHILD"

func TestMain(m *testing.M) {
	if root := os.Getenv(crashChildEnv); root != "" {
		crashChild(root)
		return
	}
	os.Exit(m.Run())
}

// crashChild makes, commits and removes snapshots in a loop until killed.
func crashChild(root string) {
	ctx := context.Background()
	s, err := New(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		key := fmt.Sprintf("k%d-%d", os.Getpid(), i)
		parent := ""
		_ = s.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
			if info.Kind == snapshot.KindCommitted && i%3 != 0 {
				parent = info.Name
			}
			return nil
		})
		if _, err := s.Prepare(ctx, key, parent); err != nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(s.dir(s.records[key].ID), "fs", "f"), []byte(key), 0o644)
		if i%2 == 0 {
			_ = s.Commit(ctx, "c-"+key, key)
		} else {
			_ = s.Remove(ctx, key)
		}
		// Collect leaves now and then.
		if i%5 == 0 {
			children := map[string]bool{}
			var leaves []string
			_ = s.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
				children[info.Parent] = true
				return nil
			})
			_ = s.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
				if !children[info.Name] {
					leaves = append(leaves, info.Name)
				}
				return nil
			})
			for _, l := range leaves {
				_ = s.Remove(ctx, l)
			}
		}
	}
}

// TestKilledMidOperation SIGKILLs a process that is busy changing the
// store, at random moments, and checks after each kill that the store
// opens, every record is complete and mountable, and Cleanup leaves no
// litter.
func TestKilledMidOperation(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	ctx := context.Background()
	root := t.TempDir()
	for round := 0; round < 8; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+root)
		out, err := cmd.StdoutPipe()
		check(t, err)
		check(t, cmd.Start())
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("child did not start: %v", err)
		}
		time.Sleep(time.Duration(20+round*15) * time.Millisecond)
		check(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		s, err := New(root)
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		check(t, s.Cleanup(ctx))
		assertClean(t, s)
		n := 0
		check(t, s.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
			n++
			mounts, err := s.Mounts(ctx, info.Name)
			if err != nil {
				return err
			}
			dir := t.TempDir()
			if err := snapshot.MountAll(mounts, dir); err != nil {
				return fmt.Errorf("round %d: %s: %w", round, info.Name, err)
			}
			return snapshot.UnmountAll(dir)
		}))
		t.Logf("round %d: %d snapshots", round, n)
		check(t, s.Close())
	}
}
