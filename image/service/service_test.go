package service_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/progress"
	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	treg "github.com/berth-dev/berth/internal/testutil/registry"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/overlay"
)

func open(t *testing.T, inUse ...func(digest.Digest) []string) (*service.Service, string, string) {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	config := filepath.Join(t.TempDir(), "config.json")
	opts := service.Options{ConfigPath: config}
	if len(inUse) > 0 {
		opts.InUse = inUse[0]
	}
	s, err := service.Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, root, config
}

// mountRootfs prepares the container snapshot key on ref, mounts it on a
// temporary directory and returns the directory; cleanups unmount it and
// remove the snapshot.
func mountRootfs(t *testing.T, s *service.Service, ref, key string) string {
	t.Helper()
	ctx := context.Background()
	mounts, err := s.RootfsMounts(ctx, ref, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := snapshot.MountAll(mounts, dir); err != nil {
		s.RemoveContainerSnapshot(ctx, key)
		t.Fatal(err)
	}
	return dir
}

func unmountRootfs(t *testing.T, s *service.Service, dir, key string) {
	t.Helper()
	if err := snapshot.UnmountAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveContainerSnapshot(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

func statuses(rec *progress.Recorder) []string {
	var out []string
	for _, ev := range rec.Events() {
		out = append(out, ev.Status)
	}
	return out
}

func hasStatus(rec *progress.Recorder, prefix string) bool {
	return slices.ContainsFunc(statuses(rec), func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// assertEmpty checks that the content store and the snapshotter under root
// hold nothing. The service must be closed (the snapshotter root is locked).
func assertEmpty(t *testing.T, root string) {
	t.Helper()
	ctx := context.Background()
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	var blobs []digest.Digest
	cs.Walk(ctx, func(i content.Info) error { blobs = append(blobs, i.Digest); return nil })
	if len(blobs) != 0 {
		t.Errorf("content store still holds %v", blobs)
	}
	sn, err := overlay.New(filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	var snaps []string
	sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error { snaps = append(snaps, i.Name); return nil })
	if len(snaps) != 0 {
		t.Errorf("snapshotter still holds %v", snaps)
	}
}

func TestBusybox(t *testing.T) {
	s, root, config := open(t)
	ctx := context.Background()
	bb := images.Busybox(t)
	reg := treg.Start(t, treg.WithTokenAuth(), treg.WithBasicAuth("berth", "s3cret"))
	reg.Push(t, bb.Layout, "library/busybox:latest")
	ref := reg.Host + "/library/busybox:latest"

	// Anonymous: refused.
	if _, err := s.Pull(ctx, ref, service.PullOptions{}); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("pull without login: %v, want unauthenticated", err)
	}
	if err := s.Login(ctx, reg.Host, "berth", "wrong"); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if err := s.Login(ctx, reg.Host, reg.Username, reg.Password); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(config); err != nil || !strings.Contains(string(b), reg.Host) {
		t.Fatalf("config after login: %q, %v", b, err)
	}

	rec := &progress.Recorder{}
	img, err := s.Pull(ctx, ref, service.PullOptions{Progress: rec})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Pulling from library/busybox", "Pull complete", "Digest: " + bb.Top.Digest.String(), "Status: Downloaded newer image for " + ref} {
		if !hasStatus(rec, want) {
			t.Errorf("no %q in the pull's progress %q", want, statuses(rec))
		}
	}
	var tarSize int64
	for _, l := range bb.Layers {
		tarSize += l.TarSize
	}
	insp, err := s.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if insp.ID != img.ID.String() || insp.ID != bb.Manifest.Config.Digest.String() {
		t.Errorf("inspect ID %s, record %s, fixture config %s", insp.ID, img.ID, bb.Manifest.Config.Digest)
	}
	if insp.Size != tarSize {
		t.Errorf("inspect Size %d, want the uncompressed %d", insp.Size, tarSize)
	}
	if want := []string{ref}; !slices.Equal(insp.RepoTags, want) {
		t.Errorf("RepoTags %q, want %q", insp.RepoTags, want)
	}
	if want := []string{reg.Host + "/library/busybox@" + bb.Top.Digest.String()}; !slices.Equal(insp.RepoDigests, want) {
		t.Errorf("RepoDigests %q, want %q", insp.RepoDigests, want)
	}
	// Pulled again: up to date.
	rec = &progress.Recorder{}
	if _, err := s.Pull(ctx, ref, service.PullOptions{Progress: rec}); err != nil {
		t.Fatal(err)
	}
	if !hasStatus(rec, "Status: Image is up to date for "+ref) {
		t.Errorf("second pull: %q", statuses(rec))
	}

	// A container root filesystem.
	dir := mountRootfs(t, s, ref, "ctr-1")
	if fi, err := os.Stat(filepath.Join(dir, "bin/sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("bin/sh in the rootfs: %v, %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hi"), 0o644); err != nil {
		t.Errorf("rootfs not writable: %v", err)
	}
	unmountRootfs(t, s, dir, "ctr-1")

	// Push to another repository of the registry: the layer is mounted.
	other := reg.Host + "/other/busybox:v1"
	if err := s.Tag(ctx, ref, other); err != nil {
		t.Fatal(err)
	}
	rec = &progress.Recorder{}
	if err := s.Push(ctx, other, service.PushOptions{Progress: rec}); err != nil {
		t.Fatal(err)
	}
	if !hasStatus(rec, "Mounted from library/busybox") {
		t.Errorf("push progress has no Mounted from: %q", statuses(rec))
	}
	if got := reg.ManifestDigest(t, "other/busybox", "v1"); got != bb.Top.Digest.String() {
		t.Errorf("pushed manifest %s, want %s", got, bb.Top.Digest)
	}
	if insp, err = s.Inspect(ctx, other); err != nil || !slices.Contains(insp.RepoDigests, reg.Host+"/other/busybox@"+bb.Top.Digest.String()) {
		t.Errorf("after push RepoDigests %q, %v", insp.RepoDigests, err)
	}
	if hist, err := s.History(ctx, ref); err != nil || len(hist) == 0 || hist[0].ID != img.ID.String() {
		t.Errorf("history %+v, %v", hist, err)
	}

	// save, rmi, load.
	var saved bytes.Buffer
	if err := s.Save(ctx, &saved, []string{ref}, archive.DockerArchive); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, img.ID.String(), false); !errdefs.IsConflict(err) {
		t.Errorf("rmi by ID of an image in two repositories without force: %v", err)
	}
	lines, err := s.Remove(ctx, other, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []image.DeleteResponse{{Untagged: other}, {Untagged: reg.Host + "/other/busybox@" + bb.Top.Digest.String()}}; !slices.Equal(lines, want) {
		t.Errorf("rmi %s: %+v, want %+v", other, lines, want)
	}
	lines, err = s.Remove(ctx, ref, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []image.DeleteResponse{
		{Untagged: ref},
		{Untagged: reg.Host + "/library/busybox@" + bb.Top.Digest.String()},
		{Deleted: img.ID.String()},
		{Deleted: img.ChainID.String()},
	}
	if !slices.Equal(lines, want) {
		t.Errorf("rmi lines %+v, want %+v", lines, want)
	}
	if list, err := s.List(ctx, store.ListOptions{}); err != nil || len(list) != 0 {
		t.Errorf("images after rmi: %v, %v", list, err)
	}
	s.Close()
	assertEmpty(t, root)
	s, err = service.Open(root, service.Options{ConfigPath: config})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	loaded, err := s.Load(ctx, &saved)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Loaded image: " + ref}; !slices.Equal(loaded, want) {
		t.Errorf("load: %q, want %q", loaded, want)
	}
	insp, err = s.Inspect(ctx, ref)
	if err != nil || insp.ID != img.ID.String() || insp.Size != tarSize {
		t.Errorf("after load: ID %s size %d (%v), want %s %d", insp.ID, insp.Size, err, img.ID, tarSize)
	}
	dir = mountRootfs(t, s, ref, "ctr-2")
	if _, err := os.Stat(filepath.Join(dir, "bin/sh")); err != nil {
		t.Error(err)
	}
	unmountRootfs(t, s, dir, "ctr-2")

	if _, err := s.Remove(ctx, ref, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, reg.Host); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, reg.Host); !errdefs.IsNotFound(err) {
		t.Errorf("second logout: %v", err)
	}
	s.Close()
	assertEmpty(t, root)
}

func TestGenerated(t *testing.T) {
	var used atomic.Pointer[digest.Digest]
	s, root, _ := open(t, func(id digest.Digest) []string {
		if u := used.Load(); u != nil && *u == id {
			return []string{"ctr-busy"}
		}
		return nil
	})
	ctx := context.Background()
	gen := images.Generated(t, images.Spec{Seed: 7, Layers: 6, Size: 8 << 20, Name: "gen", Tag: "small"})
	reg := treg.Start(t)
	reg.Push(t, gen.Layout, "gen/small:latest")
	ref := reg.Host + "/gen/small:latest"

	img, err := s.Pull(ctx, ref, service.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var tarSize int64
	for _, l := range gen.Layers {
		tarSize += l.TarSize
	}
	if img.Size != tarSize || len(img.LayerSizes) != len(gen.Layers) {
		t.Errorf("size %d (%v), want %d", img.Size, img.LayerSizes, tarSize)
	}
	dir := mountRootfs(t, s, ref, "ctr-gen")
	if err := gen.Tree.Check(dir); err != nil {
		t.Error(err)
	}
	unmountRootfs(t, s, dir, "ctr-gen")

	// An image a container uses is refused, and its layers survive rmi -f.
	mounts, err := s.RootfsMounts(ctx, ref, "ctr-busy")
	if err != nil || len(mounts) == 0 {
		t.Fatal(err)
	}
	used.Store(&img.ID)
	if _, err := s.Remove(ctx, img.ID.String(), false); !errdefs.IsConflict(err) {
		t.Errorf("rmi of an image in use: %v, want a conflict", err)
	}
	lines, err := s.Remove(ctx, ref, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || lines[0].Untagged != ref || slices.ContainsFunc(lines, func(l image.DeleteResponse) bool { return l.Deleted != "" }) {
		t.Errorf("rmi -f of an image in use: %+v", lines)
	}
	if _, err := s.Inspect(ctx, img.ID.String()); err != nil {
		t.Errorf("the image in use went: %v", err)
	}
	if err := s.RemoveContainerSnapshot(ctx, "ctr-busy"); err != nil {
		t.Fatal(err)
	}
	used.Store(nil)
	rep, err := s.Prune(ctx)
	if err != nil || len(rep.ImagesDeleted) == 0 {
		t.Errorf("prune: %+v, %v", rep, err)
	}
	s.Close()
	assertEmpty(t, root)
}

func TestIndexPlatformImport(t *testing.T) {
	s, root, _ := open(t)
	ctx := context.Background()
	idx := images.BusyboxIndex(t)
	reg := treg.Start(t)
	reg.Push(t, idx.Layout, "multi/busybox:latest", "--all")
	ref := reg.Host + "/multi/busybox:latest"

	img, err := s.Pull(ctx, ref, service.PullOptions{Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Platform.Architecture != "arm64" || img.Target.Digest != idx.Top.Digest {
		t.Errorf("pulled %s for %+v, want arm64 from index %s", img.Target.Digest, img.Platform, idx.Top.Digest)
	}
	insp, err := s.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{reg.Host + "/multi/busybox@" + idx.Top.Digest.String()}; !slices.Equal(insp.RepoDigests, want) {
		t.Errorf("RepoDigests %q, want %q", insp.RepoDigests, want)
	}
	// Only one platform is local: the platform manifest is pushed.
	other := reg.Host + "/single/busybox:arm64"
	if err := s.Tag(ctx, ref, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Push(ctx, other, service.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := reg.ManifestDigest(t, "single/busybox", "arm64"); got != img.Manifest.Digest.String() {
		t.Errorf("pushed %s, want the arm64 manifest %s", got, img.Manifest.Digest)
	}

	// import of the busybox layer as a plain rootfs tarball.
	bb := images.Busybox(t)
	f, err := os.Open(bb.BlobPath(bb.Layers[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imp, err := s.Import(ctx, f, "imported:v1", []string{`CMD ["sh"]`})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "imported:v1"); err != nil || got.ID != imp.ID || got.Size != bb.Layers[0].TarSize {
		t.Errorf("imported: %+v, %v", got, err)
	}
	dir := mountRootfs(t, s, "imported:v1", "ctr-imp")
	if _, err := os.Stat(filepath.Join(dir, "bin/sh")); err != nil {
		t.Error(err)
	}
	unmountRootfs(t, s, dir, "ctr-imp")
	for _, r := range []string{"imported:v1", img.ID.String()} {
		if _, err := s.Remove(ctx, r, true); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	assertEmpty(t, root)
}

// TestLoadThenPull: a loaded image keeps its layers' uncompressed blobs; a
// pull of the same image later reuses the unpacked layers and fetches the
// registry's compressed blobs without unpacking them, so the pulled image
// can be pushed.
func TestLoadThenPull(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	// gzip layers in the registry; the archive's are uncompressed.
	gen := images.Generated(t, images.Spec{Seed: 5, Layers: 2, Size: 1 << 20, Archive: true,
		Compressions: []images.Compression{images.Gzip}, Name: "loaded", Tag: "v1"})
	f, err := os.Open(gen.Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := s.Load(ctx, f); err != nil {
		t.Fatal(err)
	}
	reg := treg.Start(t)
	reg.Push(t, gen.Layout, "library/loaded:v1")
	ref := reg.Host + "/library/loaded:v1"
	rec := &progress.Recorder{}
	if _, err := s.Pull(ctx, ref, service.PullOptions{Progress: rec}); err != nil {
		t.Fatal(err)
	}
	if !hasStatus(rec, "Already exists") || hasStatus(rec, "Extracting") {
		t.Errorf("the loaded layers were not reused: %q", statuses(rec))
	}
	// Another registry: no cross-repository mount to hide a missing blob.
	reg2 := treg.Start(t)
	other := reg2.Host + "/copy/loaded:v1"
	if err := s.Tag(ctx, ref, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Push(ctx, other, service.PushOptions{}); err != nil {
		t.Fatalf("push of the pulled image: %v", err)
	}
	if got := reg2.ManifestDigest(t, "copy/loaded", "v1"); got != gen.Top.Digest.String() {
		t.Errorf("pushed manifest %s, want %s", got, gen.Top.Digest)
	}
}
