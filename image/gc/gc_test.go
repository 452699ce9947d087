package gc_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/imagestore"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/overlay"
)

type env struct {
	t  *testing.T
	cs *local.Store
	sn *overlay.Snapshotter
	st *store.Store
	gc *gc.Collector
	a  *archive.Archiver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	s := imagestore.Open(t)
	return &env{t: t, cs: s.Content, sn: s.Snapshots, st: s.Images, gc: s.GC,
		a: &archive.Archiver{Content: s.Content, Snapshots: s.Snapshots, Images: s.Images, GC: s.GC}}
}

func (e *env) blobs() map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	e.cs.Walk(context.Background(), func(i content.Info) error { out[i.Digest] = true; return nil })
	return out
}

func (e *env) snapshots() map[string]snapshot.Kind {
	out := map[string]snapshot.Kind{}
	e.sn.Walk(context.Background(), func(_ context.Context, i snapshot.Info) error { out[i.Name] = i.Kind; return nil })
	return out
}

// setup loads busybox and imports a small rootfs (tagged "small").
func (e *env) setup() (bb, small store.Image) {
	ctx := context.Background()
	f, err := os.Open(images.Busybox(e.t).Archive)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := e.a.Load(ctx, f, archive.LoadOptions{}); err != nil {
		e.t.Fatal(err)
	}
	dir := e.t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), bytes.Repeat([]byte("x"), 100000), 0o644)
	var buf bytes.Buffer
	cmd := exec.Command("tar", "-C", dir, "-cf", "-", ".")
	cmd.Stdout = &buf
	if err := cmd.Run(); err != nil {
		e.t.Fatal(err)
	}
	small, err = e.a.Import(ctx, &buf, archive.ImportOptions{Name: reference.MustParse("small")})
	if err != nil {
		e.t.Fatal(err)
	}
	bb, err = e.st.Get(ctx, "busybox")
	if err != nil {
		e.t.Fatal(err)
	}
	return bb, small
}

func TestCollectKeepsReferencedAndSweepsDeleted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bb, small := e.setup()
	if n := len(e.blobs()); n != 6 {
		t.Fatalf("%d blobs after setup, want 6", n)
	}
	res, err := e.gc.Collect(ctx)
	if err != nil || len(res.Blobs)+len(res.Snapshots) != 0 || res.Bytes != 0 {
		t.Fatalf("nothing to collect: %+v %v", res, err)
	}

	// rmi small: the record goes; the collection takes its blobs and layer.
	if _, err := e.st.Remove(ctx, "small", store.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = e.gc.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blobs) != 3 || len(res.Snapshots) != 1 || res.Snapshots[0] != small.ChainID.String() || res.Bytes < 100000 {
		t.Fatalf("result %+v", res)
	}
	blobs := e.blobs()
	for _, d := range []digest.Digest{bb.ID, bb.Manifest.Digest} {
		if !blobs[d] {
			t.Errorf("busybox blob %s collected", d)
		}
	}
	if _, ok := e.snapshots()[bb.ChainID.String()]; !ok {
		t.Errorf("busybox snapshot collected")
	}
	if _, err := store.Resolve(ctx, e.cs, bb.Target, store.DefaultPlatform()); err != nil {
		t.Errorf("busybox no longer resolves: %v", err)
	}
}

func TestLeaseProtects(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := []byte("leased blob")
	d := content.Descriptor("application/octet-stream", b)
	l := e.gc.NewLease()
	l.AddBlob(d.Digest)
	if err := content.WriteBlob(ctx, e.cs, "x", bytes.NewReader(b), d); err != nil {
		t.Fatal(err)
	}
	// A leased snapshot chain: kept with its parent.
	if _, err := e.sn.Prepare(ctx, "base-key", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Commit(ctx, "base", "base-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.Prepare(ctx, "top-key", "base"); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Commit(ctx, "top", "top-key"); err != nil {
		t.Fatal(err)
	}
	l.AddSnapshot("top")
	if res, err := e.gc.Collect(ctx); err != nil || len(res.Blobs)+len(res.Snapshots) != 0 {
		t.Fatalf("leased content collected: %+v %v", res, err)
	}
	l.Release()
	res, err := e.gc.Collect(ctx)
	if err != nil || len(res.Blobs) != 1 || strings.Join(res.Snapshots, ",") != "top,base" {
		t.Fatalf("after release: %+v %v", res, err)
	}
}

func TestSnapshotsLeavesFirstAndActiveKept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	commit := func(name, parent string) {
		if _, err := e.sn.Prepare(ctx, name+"-key", parent); err != nil {
			t.Fatal(err)
		}
		if err := e.sn.Commit(ctx, name, name+"-key"); err != nil {
			t.Fatal(err)
		}
	}
	commit("l1", "")
	commit("l2", "l1")
	commit("l3", "l2")
	// A container on l2 keeps l2 and l1; an unpack that crashed left a
	// temporary snapshot on l3, which goes with l3.
	if _, err := e.sn.Prepare(ctx, "container", "l2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.Prepare(ctx, "extract-crashed", "l3", snapshot.WithLabels(map[string]string{gc.LabelTemporary: "true"})); err != nil {
		t.Fatal(err)
	}
	res, err := e.gc.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Snapshots, ",") != "extract-crashed,l3" {
		t.Fatalf("removed %v", res.Snapshots)
	}
	left := e.snapshots()
	if len(left) != 3 || left["container"] != snapshot.KindActive || left["l1"] == 0 || left["l2"] == 0 {
		t.Fatalf("left %v", left)
	}
}

// failingStore fails blob deletion after n deletions: a crash mid-sweep.
type failingStore struct {
	*local.Store
	n int
}

func (f *failingStore) Delete(ctx context.Context, d digest.Digest) error {
	if f.n == 0 {
		return errors.New("crash")
	}
	f.n--
	return f.Store.Delete(ctx, d)
}

func TestCrashMidCollect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bb, _ := e.setup()
	if _, err := e.st.Remove(ctx, "small", store.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	crashing := gc.New(&failingStore{Store: e.cs, n: 1}, e.sn, e.st)
	if _, err := crashing.Collect(ctx); err == nil || !strings.Contains(err.Error(), "crash") {
		t.Fatalf("want the injected crash, got %v", err)
	}
	// Every record still resolves to complete content.
	imgs, err := e.st.List(ctx, store.ListOptions{})
	if err != nil || len(imgs) != 1 || imgs[0].ID != bb.ID {
		t.Fatalf("records %v %v", imgs, err)
	}
	r, err := store.Resolve(ctx, e.cs, bb.Target, store.DefaultPlatform())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range r.ManifestBody.Layers {
		if _, err := e.cs.Info(ctx, l.Digest); err != nil {
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
	}
	// The next collection finishes the job.
	res, err := e.gc.Collect(ctx)
	if err != nil || len(res.Blobs) != 2 {
		t.Fatalf("second collection %+v %v", res, err)
	}
	if n := len(e.blobs()); n != 3 {
		t.Fatalf("%d blobs left, want busybox's 3", n)
	}
	// And rmi busybox + collect empties everything.
	if _, err := e.st.Remove(ctx, "busybox", store.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gc.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.blobs())+len(e.snapshots()) != 0 {
		t.Fatalf("left: %v %v", e.blobs(), e.snapshots())
	}
}
