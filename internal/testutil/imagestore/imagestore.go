// Package imagestore opens the image side's stores together for tests: a
// content store, an overlay snapshotter, image records and their collector,
// under one temporary directory, closed at the test's end.
package imagestore

import (
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/snapshot/overlay"
)

// Stores are the stores of one image root.
type Stores struct {
	Content   *local.Store
	Snapshots *overlay.Snapshotter
	Images    *store.Store
	GC        *gc.Collector
}

// Open opens fresh stores in a temporary directory of t.
func Open(t testing.TB) *Stores {
	t.Helper()
	dir := t.TempDir()
	cs, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := overlay.New(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	st, err := store.Open(filepath.Join(dir, "images"), cs, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Stores{Content: cs, Snapshots: sn, Images: st, GC: gc.New(cs, sn, st)}
}
