package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/reference"
)

type env struct {
	t     *testing.T
	dir   string
	cs    *local.Store
	s     *Store
	inUse map[digest.Digest][]string
	mu    sync.Mutex
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir(), inUse: map[digest.Digest][]string{}}
	cs, err := local.NewStore(e.dir + "/content")
	if err != nil {
		t.Fatal(err)
	}
	e.cs = cs
	e.open()
	return e
}

func (e *env) open() {
	s, err := Open(e.dir+"/images", e.cs, Options{InUse: func(id digest.Digest) []string {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.inUse[id]
	}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
	e.t.Cleanup(func() { s.Close() })
}

func (e *env) blob(mediaType string, v any) ocispec.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	d := content.Descriptor(mediaType, b)
	if err := content.WriteBlob(context.Background(), e.cs, "test-"+d.Digest.Encoded(), strings.NewReader(string(b)), d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// image writes a config with the given layers (diff ids made from the
// strings) and history, and its manifest; it returns the manifest.
func (e *env) image(layers []string, history []ocispec.History) ocispec.Descriptor {
	created := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg := ocispec.Image{
		Created:  &created,
		Platform: DefaultPlatform(),
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
		History:  history,
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		d := digest.FromString(l)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d)
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("gz" + l), Size: int64(len(l))})
	}
	m.Config = e.blob(ocispec.MediaTypeImageConfig, cfg)
	return e.blob(ocispec.MediaTypeImageManifest, m)
}

func (e *env) put(target ocispec.Descriptor, sizes []int64, names ...string) Image {
	e.t.Helper()
	var ns []reference.Named
	for _, n := range names {
		ns = append(ns, reference.MustParse(n))
	}
	img, err := e.s.Put(context.Background(), target, PutOptions{Names: ns, LayerSizes: sizes})
	if err != nil {
		e.t.Fatal(err)
	}
	return img
}

func lines(recs []image.DeleteResponse) string {
	var out []string
	for _, r := range recs {
		if r.Untagged != "" {
			out = append(out, "Untagged: "+r.Untagged)
		}
		if r.Deleted != "" {
			out = append(out, "Deleted: "+r.Deleted)
		}
	}
	return strings.Join(out, "\n")
}

func TestPutGetListTag(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.image([]string{"a", "b"}, nil)
	img := e.put(m, []int64{100, 200}, "busybox")
	if img.Size != 300 || len(img.DiffIDs) != 2 || img.ChainID != ChainIDs(img.DiffIDs)[1] {
		t.Fatalf("record: %+v", img)
	}
	if got := img.RepoTags(); len(got) != 1 || got[0] != "busybox:latest" {
		t.Fatalf("RepoTags %v", got)
	}
	for _, q := range []string{"busybox", "busybox:latest", "docker.io/library/busybox:latest", img.ID.String(), img.ID.Encoded(), ShortID(img.ID), img.ID.Encoded()[:4]} {
		got, err := e.s.Get(ctx, q)
		if err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %v, %v", q, got.ID, err)
		}
	}
	if _, err := e.s.Get(ctx, "nosuch"); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "No such image: nosuch") {
		t.Errorf("Get(nosuch) = %v", err)
	}
	if err := e.s.Tag(ctx, "busybox", reference.MustParse("localhost:5000/bb:1.0")); err != nil {
		t.Fatal(err)
	}
	got, _ := e.s.Get(ctx, "localhost:5000/bb:1.0")
	if fmt.Sprint(got.RepoTags()) != "[busybox:latest localhost:5000/bb:1.0]" || got.LastTagTime.IsZero() {
		t.Fatalf("after tag: %v %v", got.RepoTags(), got.LastTagTime)
	}

	// A second image; the tag moves to it and the first stays, dangling? No:
	// it keeps localhost:5000/bb:1.0.
	m2 := e.image([]string{"a", "c"}, nil)
	img2 := e.put(m2, nil, "busybox:latest")
	if img2.Size != 2 { // compressed sizes as a fallback
		t.Errorf("fallback size %d", img2.Size)
	}
	yes, no := true, false
	for _, c := range []struct {
		opts ListOptions
		want []digest.Digest
	}{
		{ListOptions{}, sortedIDs(img.ID, img2.ID)},
		{ListOptions{Dangling: &yes}, nil},
		{ListOptions{Dangling: &no}, sortedIDs(img.ID, img2.ID)},
		{ListOptions{Reference: "busybox"}, []digest.Digest{img2.ID}},
		{ListOptions{Reference: "localhost:5000/*"}, []digest.Digest{img.ID}},
		{ListOptions{Reference: "localhost:5000/bb:1.*"}, []digest.Digest{img.ID}},
	} {
		l, err := e.s.List(ctx, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var ids []digest.Digest
		for _, i := range l {
			ids = append(ids, i.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.opts, ids, c.want)
		}
	}

	// Records survive a reopen.
	e.s.Close()
	e.open()
	got, err := e.s.Get(ctx, "localhost:5000/bb:1.0")
	if err != nil || got.ID != img.ID || got.Size != 300 {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
}

func sortedIDs(ids ...digest.Digest) []digest.Digest {
	if ids[0] > ids[1] {
		ids[0], ids[1] = ids[1], ids[0]
	}
	return ids
}

func TestAmbiguousPrefix(t *testing.T) {
	e := newEnv(t)
	// Make images until two IDs share a first hex digit.
	seen := map[byte]digest.Digest{}
	for i := 0; ; i++ {
		img := e.put(e.image([]string{fmt.Sprint("layer", i)}, nil), nil)
		c := img.ID.Encoded()[0]
		if other, ok := seen[c]; ok {
			_, err := e.s.Get(context.Background(), string(c))
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "ambiguous") {
				t.Fatalf("Get(%q) with %s and %s: %v", c, other, img.ID, err)
			}
			if got, err := e.s.Get(context.Background(), img.ID.Encoded()[:12]); err != nil || got.ID != img.ID {
				t.Fatalf("longer prefix: %v", err)
			}
			return
		}
		seen[c] = img.ID
	}
}

func TestRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	base := e.image([]string{"a"}, nil)
	child := e.image([]string{"a", "b"}, nil)
	b := e.put(base, []int64{10}, "base:1")
	c := e.put(child, []int64{10, 20}, "app:1", "app:2", "app@"+string(digest.FromString("m")))
	chains := ChainIDs(c.DiffIDs)

	// Untag one of several tags: only Untagged.
	recs, err := e.s.Remove(ctx, "app:2", RemoveOptions{})
	if err != nil || lines(recs) != "Untagged: app:2" {
		t.Fatalf("rmi app:2: %v\n%s", err, lines(recs))
	}
	// By ID with names in one repository: all untagged, then deleted;
	// the shared base layer stays.
	recs, err = e.s.Remove(ctx, ShortID(c.ID), RemoveOptions{})
	want := "Untagged: app:1\nUntagged: app@" + string(digest.FromString("m")) + "\nDeleted: " + c.ID.String() + "\nDeleted: " + chains[1].String()
	if err != nil || lines(recs) != want {
		t.Fatalf("rmi id: %v\n%s\nwant\n%s", err, lines(recs), want)
	}
	if _, err := e.s.Get(ctx, c.ID.String()); !errdefs.IsNotFound(err) {
		t.Fatalf("still there: %v", err)
	}

	// Several repositories: by ID needs force.
	if err := e.s.Tag(ctx, "base:1", reference.MustParse("other:1")); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.Remove(ctx, b.ID.String(), RemoveOptions{})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "image is referenced in multiple repositories") {
		t.Fatalf("multi repo: %v", err)
	}

	// A container uses it.
	e.mu.Lock()
	e.inUse[b.ID] = []string{"0123456789abcdef0123"}
	e.mu.Unlock()
	if _, err := e.s.Remove(ctx, "base:1", RemoveOptions{}); err != nil {
		t.Fatalf("untag one of two names of an image in use: %v", err)
	}
	_, err = e.s.Remove(ctx, "other:1", RemoveOptions{})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), `unable to remove repository reference "other:1" (must force) - container 0123456789ab is using its referenced image`) {
		t.Fatalf("in use: %v", err)
	}
	_, err = e.s.Remove(ctx, b.ID.String(), RemoveOptions{})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "being used by stopped container 0123456789ab") {
		t.Fatalf("in use by id: %v", err)
	}
	// Force untags, but the image stays (dangling) while in use.
	recs, err = e.s.Remove(ctx, "other:1", RemoveOptions{Force: true})
	if err != nil || lines(recs) != "Untagged: other:1" {
		t.Fatalf("force: %v %s", err, lines(recs))
	}
	got, err := e.s.Get(ctx, b.ID.String())
	if err != nil || !got.Dangling() {
		t.Fatalf("forced image in use: %+v %v", got, err)
	}
	// Prune skips it while in use, deletes it after.
	rep, err := e.s.Prune(ctx)
	if err != nil || len(rep.ImagesDeleted) != 0 {
		t.Fatalf("prune in use: %+v %v", rep, err)
	}
	e.mu.Lock()
	delete(e.inUse, b.ID)
	e.mu.Unlock()
	rep, err = e.s.Prune(ctx)
	if err != nil || lines(rep.ImagesDeleted) != "Deleted: "+b.ID.String()+"\nDeleted: "+chains[0].String() || rep.SpaceReclaimed != 10 {
		t.Fatalf("prune: %v %s %d", err, lines(rep.ImagesDeleted), rep.SpaceReclaimed)
	}
	if l, _ := e.s.List(ctx, ListOptions{}); len(l) != 0 {
		t.Fatalf("left: %v", l)
	}
}

func TestRemoveLastTagDeletes(t *testing.T) {
	e := newEnv(t)
	img := e.put(e.image([]string{"x"}, nil), []int64{5}, "solo:1")
	recs, err := e.s.Remove(context.Background(), "solo:1", RemoveOptions{})
	want := "Untagged: solo:1\nDeleted: " + img.ID.String() + "\nDeleted: " + img.DiffIDs[0].String()
	if err != nil || lines(recs) != want {
		t.Fatalf("%v\n%s", err, lines(recs))
	}
}

func TestInspectAndHistory(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	img := e.put(e.image([]string{"a", "b"}, []ocispec.History{
		{Created: &t0, CreatedBy: "ADD rootfs /"},
		{Created: &t0, CreatedBy: "ENV X=1", EmptyLayer: true},
		{Created: &t0, CreatedBy: "RUN make", Comment: "built"},
		{Created: &t0, CreatedBy: `CMD ["sh"]`, EmptyLayer: true},
	}), []int64{1000, 2000}, "busybox:1", "busybox@"+string(digest.FromString("m")))
	ins, err := e.s.Inspect(ctx, "busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ins)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"Id", "RepoTags", "RepoDigests", "Created", "Config", "Architecture", "Os", "Size", "RootFS", "Metadata"} {
		if _, ok := m[k]; !ok {
			t.Errorf("inspect JSON lacks %q: %s", k, b)
		}
	}
	if ins.ID != img.ID.String() || ins.Size != 3000 || ins.Os != "linux" || ins.Created != "2024-03-01T12:00:00Z" ||
		fmt.Sprint(ins.RepoTags) != "[busybox:1]" || fmt.Sprint(ins.RepoDigests) != "[busybox@"+string(digest.FromString("m"))+"]" ||
		ins.RootFS.Type != "layers" || len(ins.RootFS.Layers) != 2 || ins.Config.Cmd[0] != "sh" || ins.Metadata.LastTagTime.IsZero() {
		t.Errorf("inspect: %s", b)
	}
	h, err := e.s.History(ctx, img.ID.Encoded()[:6])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range h {
		got = append(got, fmt.Sprintf("%s|%s|%d|%v", i.ID, i.CreatedBy, i.Size, i.Tags))
	}
	want := []string{
		img.ID.String() + `|CMD ["sh"]|0|[busybox:1]`,
		"<missing>|RUN make|2000|[]",
		"<missing>|ENV X=1|0|[]",
		"<missing>|ADD rootfs /|1000|[]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestIndexTarget(t *testing.T) {
	e := newEnv(t)
	m := e.image([]string{"a"}, nil)
	p := DefaultPlatform()
	other := ocispec.Platform{OS: "linux", Architecture: "s390x"}
	m.Platform = &p
	idx := e.blob(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 3, Platform: &other}, m}})
	img := e.put(idx, nil, "multi")
	if img.Target.Digest != idx.Digest || img.Manifest.Digest != m.Digest {
		t.Fatalf("%+v", img)
	}
	roots, err := e.s.GCRoots(context.Background())
	if err != nil || len(roots.Blobs) != 3 || len(roots.Snapshots) != 1 {
		t.Fatalf("roots %+v %v", roots, err)
	}
}

func TestConcurrentTagAndRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.put(e.image([]string{"a"}, nil), nil, "base")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := reference.MustParse(fmt.Sprintf("t%d:x", i))
			if err := e.s.Tag(ctx, "base", name); err != nil {
				errs <- err
				return
			}
			if _, err := e.s.Remove(ctx, name.String(), RemoveOptions{}); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := e.s.Get(ctx, img.ID.String())
	if err != nil || fmt.Sprint(got.RepoTags()) != "[base:latest]" {
		t.Fatalf("%v %v", got.RepoTags(), err)
	}
}

func TestOpenTwiceIsUnavailable(t *testing.T) {
	e := newEnv(t)
	_, err := Open(e.dir+"/images", e.cs, Options{})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("second open: %v", err)
	}
}
