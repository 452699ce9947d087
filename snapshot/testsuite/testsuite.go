// Package testsuite is the conformance suite every snapshot.Snapshotter
// implementation must pass: lifecycle and error rules, mounts that really
// mount (it needs root), long chains, removal rules, reopening, cleanup and
// concurrency. An implementation's test calls Run with a constructor.
package testsuite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/runtime/mountinfo"
	"github.com/berth-dev/berth/snapshot"
)

// Opener opens the Snapshotter that keeps its state under root, an
// existing directory; opening the same root again must see the same
// snapshots.
type Opener func(ctx context.Context, root string) (snapshot.Snapshotter, error)

// Run runs the suite against the implementation that open makes.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"Lifecycle", testLifecycle},
		{"Errors", testErrors},
		{"Labels", testLabels},
		{"MountChain", testMountChain},
		{"View", testView},
		{"LongChain", testLongChain},
		{"RemoveRules", testRemoveRules},
		{"GarbageCollect", testGarbageCollect},
		{"Reopen", testReopen},
		{"Cleanup", testCleanup},
		{"ConcurrentPrepare", testConcurrentPrepare},
		{"Usage", testUsage},
	} {
		t.Run(c.name, func(t *testing.T) {
			testutil.RequireRoot(t)
			testutil.LeakCheck(t)
			e := newEnv(t, open, "")
			c.fn(t, e)
		})
	}
}

// env is one test's snapshotter and its root.
type env struct {
	t    *testing.T
	ctx  context.Context
	root string
	open Opener
	sn   snapshot.Snapshotter
}

func newEnv(t *testing.T, open Opener, sub string) *env {
	root := filepath.Join(t.TempDir(), sub)
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: context.Background(), root: root, open: open}
	e.reopen()
	t.Cleanup(func() {
		if err := e.sn.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		mi, err := mountinfo.Read()
		if err != nil {
			t.Fatal(err)
		}
		if left := mountinfo.Under(mi, root); len(left) > 0 {
			t.Errorf("mounts left under the snapshotter root: %q", left)
		}
	})
	return e
}

// reopen closes the snapshotter (if open) and opens it again on the root.
func (e *env) reopen() {
	e.t.Helper()
	if e.sn != nil {
		if err := e.sn.Close(); err != nil {
			e.t.Fatalf("close: %v", err)
		}
	}
	sn, err := e.open(e.ctx, e.root)
	if err != nil {
		e.t.Fatalf("open %q: %v", e.root, err)
	}
	e.sn = sn
}

func (e *env) check(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// mount mounts mounts on a new temp dir, unmounted at cleanup unless the
// returned unmount function was called first.
func (e *env) mount(mounts []snapshot.Mount) (dir string, unmount func()) {
	e.t.Helper()
	dir = e.t.TempDir()
	e.check(snapshot.MountAll(mounts, dir))
	done := false
	unmount = func() {
		e.t.Helper()
		if !done {
			done = true
			e.check(snapshot.UnmountAll(dir))
		}
	}
	e.t.Cleanup(func() {
		if !done {
			done = true
			if err := snapshot.UnmountAll(dir); err != nil {
				e.t.Error(err)
			}
		}
	})
	return dir, unmount
}

// layer prepares an active snapshot on parent, mounts it, lets change
// edit the tree, unmounts and commits it as name.
func (e *env) layer(name, parent string, change func(dir string)) {
	e.t.Helper()
	key := name + "-active"
	mounts, err := e.sn.Prepare(e.ctx, key, parent)
	e.check(err)
	dir, unmount := e.mount(mounts)
	change(dir)
	unmount()
	e.check(e.sn.Commit(e.ctx, name, key))
}

// files writes path=content pairs under dir, making parent directories.
func files(t *testing.T, dir string, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		p := filepath.Join(dir, kv[i])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(kv[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// expect checks path=content pairs under dir; content "!" means the path
// must not exist.
func expect(t *testing.T, dir string, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		b, err := os.ReadFile(filepath.Join(dir, kv[i]))
		if kv[i+1] == "!" {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: exists (%q, %v), want it gone", kv[i], b, err)
			}
			continue
		}
		if err != nil || string(b) != kv[i+1] {
			t.Errorf("%s = %q, %v; want %q", kv[i], b, err, kv[i+1])
		}
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func testLifecycle(t *testing.T, e *env) {
	e.layer("base", "", func(d string) { files(t, d, "a", "1") })
	e.layer("top", "base", func(d string) { files(t, d, "b", "2") })
	_, err := e.sn.Prepare(e.ctx, "ctr", "top")
	e.check(err)

	for _, c := range []struct {
		key    string
		kind   snapshot.Kind
		parent string
	}{
		{"base", snapshot.KindCommitted, ""},
		{"top", snapshot.KindCommitted, "base"},
		{"ctr", snapshot.KindActive, "top"},
	} {
		info, err := e.sn.Stat(e.ctx, c.key)
		e.check(err)
		if info.Name != c.key || info.Kind != c.kind || info.Parent != c.parent || info.Created.IsZero() {
			t.Errorf("Stat(%q) = %+v, want kind %s parent %q", c.key, info, c.kind, c.parent)
		}
	}
	// Committing consumes the key.
	_, err = e.sn.Stat(e.ctx, "top-active")
	wantErr(t, "Stat of a committed key", err, errdefs.ErrNotFound)

	var names []string
	e.check(e.sn.Walk(e.ctx, func(_ context.Context, info snapshot.Info) error {
		names = append(names, info.Name)
		return nil
	}))
	if want := []string{"base", "ctr", "top"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Walk = %q, want %q", names, want)
	}
	stop := errors.New("stop")
	if err := e.sn.Walk(e.ctx, func(context.Context, snapshot.Info) error { return stop }); err != stop {
		t.Errorf("Walk did not return the callback's error: %v", err)
	}
	// A chain can be committed on top of an active snapshot's commit.
	mounts, err := e.sn.Mounts(e.ctx, "ctr")
	e.check(err)
	dir, unmount := e.mount(mounts)
	expect(t, dir, "a", "1", "b", "2")
	files(t, dir, "c", "3")
	unmount()
	e.check(e.sn.Commit(e.ctx, "ctr-image", "ctr"))
	mounts, err = e.sn.View(e.ctx, "check", "ctr-image")
	e.check(err)
	dir, _ = e.mount(mounts)
	expect(t, dir, "a", "1", "b", "2", "c", "3")
}

func testErrors(t *testing.T, e *env) {
	e.layer("base", "", func(d string) { files(t, d, "a", "1") })
	_, err := e.sn.Prepare(e.ctx, "active", "base")
	e.check(err)
	_, err = e.sn.View(e.ctx, "view", "base")
	e.check(err)

	_, err = e.sn.Prepare(e.ctx, "active", "base")
	wantErr(t, "Prepare of an existing key", err, errdefs.ErrAlreadyExists)
	_, err = e.sn.View(e.ctx, "base", "")
	wantErr(t, "View with a committed name as key", err, errdefs.ErrAlreadyExists)
	_, err = e.sn.Prepare(e.ctx, "x", "missing")
	wantErr(t, "Prepare on a missing parent", err, errdefs.ErrNotFound)
	_, err = e.sn.Prepare(e.ctx, "x", "active")
	wantErr(t, "Prepare on an active parent", err, errdefs.ErrInvalidArgument)
	_, err = e.sn.View(e.ctx, "x", "view")
	wantErr(t, "View on a view", err, errdefs.ErrInvalidArgument)
	_, err = e.sn.Prepare(e.ctx, "", "base")
	wantErr(t, "Prepare with an empty key", err, errdefs.ErrInvalidArgument)
	wantErr(t, "Commit of a missing key", e.sn.Commit(e.ctx, "n", "missing"), errdefs.ErrNotFound)
	wantErr(t, "Commit of a view", e.sn.Commit(e.ctx, "n", "view"), errdefs.ErrFailedPrecondition)
	wantErr(t, "Commit of a committed snapshot", e.sn.Commit(e.ctx, "n", "base"), errdefs.ErrFailedPrecondition)
	wantErr(t, "Commit onto a taken name", e.sn.Commit(e.ctx, "view", "active"), errdefs.ErrAlreadyExists)
	_, err = e.sn.Stat(e.ctx, "missing")
	wantErr(t, "Stat of a missing key", err, errdefs.ErrNotFound)
	_, err = e.sn.Mounts(e.ctx, "missing")
	wantErr(t, "Mounts of a missing key", err, errdefs.ErrNotFound)
	_, err = e.sn.Usage(e.ctx, "missing")
	wantErr(t, "Usage of a missing key", err, errdefs.ErrNotFound)
	wantErr(t, "Remove of a missing key", e.sn.Remove(e.ctx, "missing"), errdefs.ErrNotFound)
	_, err = e.sn.Update(e.ctx, snapshot.Info{Name: "base"}, "parent")
	wantErr(t, "Update of the parent", err, errdefs.ErrInvalidArgument)
	// The failed calls changed nothing.
	info, err := e.sn.Stat(e.ctx, "active")
	e.check(err)
	if info.Kind != snapshot.KindActive || info.Parent != "base" {
		t.Errorf("active changed: %+v", info)
	}
}

func testLabels(t *testing.T, e *env) {
	_, err := e.sn.Prepare(e.ctx, "a", "", snapshot.WithLabels(map[string]string{"x": "1", "y": "2"}))
	e.check(err)
	info, err := e.sn.Stat(e.ctx, "a")
	e.check(err)
	if !reflect.DeepEqual(info.Labels, map[string]string{"x": "1", "y": "2"}) {
		t.Errorf("labels after Prepare = %v", info.Labels)
	}
	info, err = e.sn.Update(e.ctx, snapshot.Info{Name: "a", Labels: map[string]string{"x": "9", "z": "3"}}, "labels.x", "labels.y")
	e.check(err)
	if !reflect.DeepEqual(info.Labels, map[string]string{"x": "9"}) {
		t.Errorf("labels after Update of x and y = %v, want x=9 (y deleted, z not touched)", info.Labels)
	}
	e.check(e.sn.Commit(e.ctx, "c", "a", snapshot.WithLabels(map[string]string{"gc": "keep"})))
	e.reopen()
	info, err = e.sn.Stat(e.ctx, "c")
	e.check(err)
	if !reflect.DeepEqual(info.Labels, map[string]string{"x": "9", "gc": "keep"}) {
		t.Errorf("labels after Commit and reopen = %v", info.Labels)
	}
	info, err = e.sn.Update(e.ctx, snapshot.Info{Name: "c"})
	e.check(err)
	if len(info.Labels) != 0 {
		t.Errorf("labels after replacing them with none = %v", info.Labels)
	}
}

// testMountChain: three layers made through mounts (so the lower layers
// hold overlay's own whiteouts), a container layer on top.
func testMountChain(t *testing.T, e *env) {
	e.layer("l1", "", func(d string) { files(t, d, "etc/a", "1", "etc/b", "b", "dir/x", "x", "keep", "k") })
	e.layer("l2", "l1", func(d string) { files(t, d, "etc/a", "2", "l2", "two") })
	e.layer("l3", "l2", func(d string) {
		e.check(os.Remove(filepath.Join(d, "etc/b")))
		e.check(os.RemoveAll(filepath.Join(d, "dir")))
		files(t, d, "dir/y", "y")
	})
	mounts, err := e.sn.Prepare(e.ctx, "ctr", "l3")
	e.check(err)
	dir, unmount := e.mount(mounts)
	expect(t, dir, "etc/a", "2", "etc/b", "!", "dir/x", "!", "dir/y", "y", "l2", "two", "keep", "k")
	e.check(os.Remove(filepath.Join(dir, "l2")))
	files(t, dir, "etc/a", "ctr", "new", "n")
	expect(t, dir, "l2", "!", "etc/a", "ctr", "new", "n")
	unmount()

	// The container's changes persist in its snapshot and nowhere else.
	dir, unmount = e.mount(mounts)
	expect(t, dir, "l2", "!", "etc/a", "ctr", "new", "n", "keep", "k")
	unmount()
	mounts, err = e.sn.View(e.ctx, "v", "l3")
	e.check(err)
	dir, _ = e.mount(mounts)
	expect(t, dir, "l2", "two", "etc/a", "2", "new", "!", "etc/b", "!")
}

func testView(t *testing.T, e *env) {
	e.layer("l1", "", func(d string) { files(t, d, "a", "1") })
	e.layer("l2", "l1", func(d string) { files(t, d, "b", "2") })
	for _, c := range []struct{ key, parent string }{{"v0", ""}, {"v1", "l1"}, {"v2", "l2"}, {"committed", ""}} {
		var mounts []snapshot.Mount
		var err error
		if c.key == "committed" {
			mounts, err = e.sn.Mounts(e.ctx, "l2")
		} else {
			mounts, err = e.sn.View(e.ctx, c.key, c.parent)
		}
		e.check(err)
		dir, _ := e.mount(mounts)
		err = os.WriteFile(filepath.Join(dir, "w"), nil, 0o644)
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("view %s: write = %v, want EROFS", c.key, err)
		}
		switch c.key {
		case "v1":
			expect(t, dir, "a", "1", "b", "!")
		case "v2", "committed":
			expect(t, dir, "a", "1", "b", "2")
		}
		if c.key != "committed" {
			info, err := e.sn.Stat(e.ctx, c.key)
			e.check(err)
			if info.Kind != snapshot.KindView {
				t.Errorf("Stat(%s).Kind = %s", c.key, info.Kind)
			}
		}
	}
}

// testLongChain stacks 25 layers under a deep root, so the overlay
// options of the top snapshot are longer than a page.
func testLongChain(t *testing.T, e *env) {
	e.check(e.sn.Close())
	*e = *newEnv(t, e.open, strings.Repeat("deep-root-", 10))
	const n = 25
	parent := ""
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("sha256:%064d", i)
		e.layer(name, parent, func(d string) {
			files(t, d, fmt.Sprintf("f%02d", i), fmt.Sprint(i), "shared", fmt.Sprint(i))
			if i == n-1 {
				e.check(os.Remove(filepath.Join(d, "f00")))
			}
		})
		parent = name
	}
	mounts, err := e.sn.Prepare(e.ctx, "ctr", parent)
	e.check(err)
	size := 0
	for _, m := range mounts {
		size += len(strings.Join(m.Options, ","))
	}
	if size < os.Getpagesize() {
		t.Fatalf("options are %d bytes: the test needs more than a page", size)
	}
	dir, _ := e.mount(mounts)
	expect(t, dir, "shared", fmt.Sprint(n-1), "f00", "!")
	for i := 1; i < n; i++ {
		expect(t, dir, fmt.Sprintf("f%02d", i), fmt.Sprint(i))
	}
	files(t, dir, "upper", "u")
}

func testRemoveRules(t *testing.T, e *env) {
	e.layer("l1", "", func(d string) { files(t, d, "a", "1") })
	e.layer("l2", "l1", func(d string) { files(t, d, "b", "2") })
	_, err := e.sn.View(e.ctx, "view", "l2")
	e.check(err)
	_, err = e.sn.Prepare(e.ctx, "active", "l2")
	e.check(err)

	wantErr(t, "Remove of a parent", e.sn.Remove(e.ctx, "l1"), errdefs.ErrFailedPrecondition)
	wantErr(t, "Remove of a view's parent", e.sn.Remove(e.ctx, "l2"), errdefs.ErrFailedPrecondition)
	e.check(e.sn.Remove(e.ctx, "view"))
	wantErr(t, "Remove of an active snapshot's parent", e.sn.Remove(e.ctx, "l2"), errdefs.ErrFailedPrecondition)
	e.check(e.sn.Remove(e.ctx, "active"))
	e.check(e.sn.Remove(e.ctx, "l2"))
	e.check(e.sn.Remove(e.ctx, "l1"))
	for _, k := range []string{"l1", "l2", "view", "active"} {
		_, err := e.sn.Stat(e.ctx, k)
		wantErr(t, "Stat after Remove", err, errdefs.ErrNotFound)
	}
	// A removed name can be used again.
	e.layer("l1", "", func(d string) { files(t, d, "again", "yes") })
	mounts, err := e.sn.View(e.ctx, "v", "l1")
	e.check(err)
	dir, _ := e.mount(mounts)
	expect(t, dir, "again", "yes", "a", "!")
}

// testGarbageCollect removes everything unreferenced the way a collector
// does: Walk, then remove leaves until nothing is removable.
func testGarbageCollect(t *testing.T, e *env) {
	e.layer("a1", "", func(d string) { files(t, d, "a", "1") })
	e.layer("a2", "a1", func(d string) { files(t, d, "a", "2") })
	e.layer("b2", "a1", func(d string) { files(t, d, "b", "2") }) // shares a1
	e.layer("b3", "b2", func(d string) { files(t, d, "b", "3") })
	_, err := e.sn.Prepare(e.ctx, "ctr", "a2")
	e.check(err)
	keep := map[string]bool{"ctr": true, "a2": true, "a1": true} // what the container needs

	for {
		var removable []string
		children := map[string]int{}
		var all []snapshot.Info
		e.check(e.sn.Walk(e.ctx, func(_ context.Context, info snapshot.Info) error {
			all = append(all, info)
			children[info.Parent]++
			return nil
		}))
		for _, info := range all {
			if !keep[info.Name] && children[info.Name] == 0 {
				removable = append(removable, info.Name)
			}
		}
		if len(removable) == 0 {
			break
		}
		for _, k := range removable {
			e.check(e.sn.Remove(e.ctx, k))
		}
	}
	var left []string
	e.check(e.sn.Walk(e.ctx, func(_ context.Context, info snapshot.Info) error {
		left = append(left, info.Name)
		return nil
	}))
	if want := []string{"a1", "a2", "ctr"}; !reflect.DeepEqual(left, want) {
		t.Errorf("after collecting: %q, want %q", left, want)
	}
	mounts, err := e.sn.Mounts(e.ctx, "ctr")
	e.check(err)
	dir, _ := e.mount(mounts)
	expect(t, dir, "a", "2", "b", "!")
}

func testReopen(t *testing.T, e *env) {
	e.layer("l1", "", func(d string) { files(t, d, "a", "1") })
	_, err := e.sn.Prepare(e.ctx, "ctr", "l1")
	e.check(err)
	_, err = e.sn.View(e.ctx, "v", "l1")
	e.check(err)
	// Unsynced, it is as durable as the others against a crash of the
	// process.
	_, err = e.sn.Prepare(e.ctx, "ctr-volatile", "l1", snapshot.WithVolatile())
	e.check(err)
	before := walk(t, e)
	if len(before) != 4 {
		t.Fatalf("snapshots: %+v, want 4", before)
	}
	mountsBefore, err := e.sn.Mounts(e.ctx, "ctr")
	e.check(err)
	e.reopen()
	if after := walk(t, e); !reflect.DeepEqual(before, after) {
		t.Errorf("after reopening:\n%+v\nwant\n%+v", after, before)
	}
	mounts, err := e.sn.Mounts(e.ctx, "ctr")
	e.check(err)
	if !reflect.DeepEqual(mounts, mountsBefore) {
		t.Errorf("mounts after reopening: %+v, want %+v", mounts, mountsBefore)
	}
	dir, _ := e.mount(mounts)
	expect(t, dir, "a", "1")
	// New snapshots after reopening do not collide with old ones.
	e.layer("l2", "l1", func(d string) { files(t, d, "b", "2") })
	mounts, err = e.sn.View(e.ctx, "v2", "l2")
	e.check(err)
	dir, _ = e.mount(mounts)
	expect(t, dir, "a", "1", "b", "2")
}

func walk(t *testing.T, e *env) []snapshot.Info {
	var out []snapshot.Info
	e.check(e.sn.Walk(e.ctx, func(_ context.Context, info snapshot.Info) error {
		info.Created, info.Updated = info.Created.UTC(), info.Updated.UTC()
		out = append(out, info)
		return nil
	}))
	return out
}

// testCleanup: on a healthy store, Cleanup removes nothing that has a
// record. (Crash leftovers are implementation-specific: each
// implementation tests them with its own crash points.)
func testCleanup(t *testing.T, e *env) {
	c, ok := e.sn.(snapshot.Cleaner)
	if !ok {
		t.Skip("not a snapshot.Cleaner")
	}
	e.layer("l1", "", func(d string) { files(t, d, "a", "1") })
	_, err := e.sn.Prepare(e.ctx, "ctr", "l1")
	e.check(err)
	e.check(e.sn.Remove(e.ctx, "ctr"))
	mounts, err := e.sn.Prepare(e.ctx, "ctr2", "l1")
	e.check(err)
	dir, _ := e.mount(mounts)
	files(t, dir, "b", "2")
	before := walk(t, e)
	e.check(c.Cleanup(e.ctx)) // with ctr2 mounted
	if after := walk(t, e); !reflect.DeepEqual(before, after) {
		t.Errorf("Cleanup changed the snapshots: %+v, want %+v", after, before)
	}
	expect(t, dir, "a", "1", "b", "2")
}

func testConcurrentPrepare(t *testing.T, e *env) {
	e.layer("base", "", func(d string) { files(t, d, "a", "1") })
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() { // distinct keys
			defer wg.Done()
			_, errs[i] = e.sn.Prepare(e.ctx, fmt.Sprintf("k%02d", i), "base")
		}()
		go func() { // one key, raced
			defer wg.Done()
			_, errs[n+i] = e.sn.Prepare(e.ctx, "same", "base")
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil && i >= n:
			won++
		case err != nil && i < n:
			t.Errorf("Prepare k%02d: %v", i, err)
		case err != nil && !errors.Is(err, errdefs.ErrAlreadyExists):
			t.Errorf("racing Prepare of one key: %v, want ErrAlreadyExists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d racing Prepares of one key succeeded, want 1", won)
	}
	// Each active snapshot is its own writable tree.
	var mu sync.Mutex
	dirs := map[string]string{}
	for i := 0; i < n; i++ {
		mounts, err := e.sn.Mounts(e.ctx, fmt.Sprintf("k%02d", i))
		e.check(err)
		dir, _ := e.mount(mounts)
		dirs[fmt.Sprintf("k%02d", i)] = dir
	}
	for k, dir := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := os.WriteFile(filepath.Join(dir, "who"), []byte(k), 0o644)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	keys := make([]string, 0, len(dirs))
	for k, dir := range dirs {
		expect(t, dir, "who", k, "a", "1")
		e.check(snapshot.UnmountAll(dir))
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Concurrent commits and removes.
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				err = e.sn.Commit(e.ctx, "c-"+k, k)
			} else {
				err = e.sn.Remove(e.ctx, k)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := len(walk(t, e)); got != 1+1+n/2 {
		t.Errorf("%d snapshots after committing half and removing half, want %d", got, 2+n/2)
	}
}

func testUsage(t *testing.T, e *env) {
	mounts, err := e.sn.Prepare(e.ctx, "a", "")
	e.check(err)
	dir, unmount := e.mount(mounts)
	files(t, dir, "big", strings.Repeat("x", 1<<20), "small", "s")
	e.check(os.Link(filepath.Join(dir, "big"), filepath.Join(dir, "big-link")))
	unmount()
	u, err := e.sn.Usage(e.ctx, "a")
	e.check(err)
	if u.Size < 1<<20 || u.Size > 2<<20 || u.Inodes != 3 {
		t.Errorf("usage of a 1 MiB file, its hard link, a small file and the root = %+v", u)
	}
	e.check(e.sn.Commit(e.ctx, "c", "a"))
	uc, err := e.sn.Usage(e.ctx, "c")
	e.check(err)
	if uc != u {
		t.Errorf("usage after commit = %+v, want %+v", uc, u)
	}
}
