package pull_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/scratchfs"
	"github.com/berth-dev/berth/snapshot"
)

// smallSpec is the generated 20-layer image at a size that keeps the test
// fast; BenchmarkPullGenerated pulls the full ~200 MB one.
var smallSpec = images.Spec{Seed: 7, Size: 24 << 20}

func TestPullGenerated(t *testing.T) {
	testutil.LeakCheck(t)
	img := images.Generated(t, smallSpec)
	r := startRegistry(t)
	r.Push(t, img.Layout, "gen/image:latest")
	ref := r.Host + "/gen/image:latest"
	e := newEnv(t, registry.Options{})

	res, err := e.pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold pull: %d layers, %.1f MB compressed, %.1f MB unpacked in %v: %.0f MB/s",
		len(res.Layers), float64(res.Downloaded)/1e6, float64(res.Unpacked)/1e6, res.Duration.Round(time.Millisecond),
		res.BytesPerSecond()/1e6)
	if len(res.Layers) != len(img.Layers) || res.Downloaded != img.TotalSize() {
		t.Errorf("layers %d downloaded %d, want %d %d", len(res.Layers), res.Downloaded, len(img.Layers), img.TotalSize())
	}
	e.view(res.ChainID, func(root string) {
		if err := img.Tree.Check(root); err != nil {
			t.Error(err)
		}
	})
	st := e.statuses()
	if st[pull.StatusPullComplete] != len(img.Layers) {
		t.Errorf("events: %v", st)
	}
	// Every committed layer carries its uncompressed size.
	for i, chain := range pull.ChainIDs(res.DiffIDs) {
		info, err := e.sn.Stat(context.Background(), chain.String())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := info.Labels[snapshot.LabelLayerSize], strconv.FormatInt(img.Layers[i].TarSize, 10); got != want {
			t.Errorf("layer %d: size label %q, want %q", i, got, want)
		}
	}

	// A second pull does nothing, and says nothing of the layers.
	res2, err := e.pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Downloaded != 0 || res2.Existing != len(img.Layers) || len(e.statuses()) != 0 {
		t.Errorf("second pull: downloaded %d existing %d events %v", res2.Downloaded, res2.Existing, e.statuses())
	}
	for _, n := range e.snapshots() {
		if len(n) > 5 && n[:5] == "pull-" {
			t.Errorf("temporary snapshot %q left", n)
		}
	}
}

// TestPullHalfPresent pulls an image made of the first half of the
// generated image's layers, then the whole image: the first half is
// "Already exists", only the second half is downloaded.
func TestPullHalfPresent(t *testing.T) {
	testutil.LeakCheck(t)
	img := images.Generated(t, smallSpec)
	half := len(img.Layers) / 2
	r := startRegistry(t)
	r.Push(t, img.Layout, "gen/image:latest")
	r.Push(t, truncatedLayout(t, img, half), "gen/half:latest")
	e := newEnv(t, registry.Options{})
	if _, err := e.pull(r.Host + "/gen/half:latest"); err != nil {
		t.Fatal(err)
	}
	res, err := e.pull(r.Host + "/gen/image:latest")
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, l := range img.Layers[half:] {
		want += l.Size
	}
	if res.Existing != half || res.Downloaded != want {
		t.Errorf("existing %d downloaded %d, want %d %d", res.Existing, res.Downloaded, half, want)
	}
	t.Logf("half present: %.1f MB in %v", float64(res.Downloaded)/1e6, res.Duration.Round(time.Millisecond))
	e.view(res.ChainID, func(root string) {
		if err := img.Tree.Check(root); err != nil {
			t.Error(err)
		}
	})
}

// TestPullBlobsPresent pulls into a store that has every layer blob but no
// snapshot: nothing is downloaded, everything is unpacked from the store.
func TestPullBlobsPresent(t *testing.T) {
	testutil.LeakCheck(t)
	img := images.Generated(t, smallSpec)
	r := startRegistry(t)
	r.Push(t, img.Layout, "gen/image:latest")
	e := newEnv(t, registry.Options{})
	res, err := e.pull(r.Host + "/gen/image:latest")
	if err != nil {
		t.Fatal(err)
	}
	// A fresh snapshotter on the same content store.
	e2 := newEnv(t, registry.Options{})
	e2.cs = e.cs
	res2, err := e2.pull(r.Host + "/gen/image:latest")
	if err != nil {
		t.Fatal(err)
	}
	if res2.Downloaded != 0 || res2.FromStore != len(img.Layers) || res2.ChainID != res.ChainID {
		t.Errorf("downloaded %d from store %d", res2.Downloaded, res2.FromStore)
	}
	e2.view(res2.ChainID, func(root string) {
		if err := img.Tree.Check(root); err != nil {
			t.Error(err)
		}
	})
}

// truncatedLayout writes an OCI layout holding an image made of img's
// first n layers (same blobs, a config with the first n diff_ids).
func truncatedLayout(t *testing.T, img *images.Image, n int) string {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(mt string, v any) ocispec.Descriptor {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	cfg := img.Config
	cfg.RootFS.DiffIDs = cfg.RootFS.DiffIDs[:n]
	cfg.History = nil
	m := img.Manifest
	m.Config = write(ocispec.MediaTypeImageConfig, cfg)
	m.Layers = m.Layers[:n]
	for _, l := range m.Layers {
		dst := filepath.Join(blobs, l.Digest.Encoded())
		if os.Link(img.BlobPath(l.Digest), dst) != nil {
			b, err := os.ReadFile(img.BlobPath(l.Digest))
			if err == nil {
				err = os.WriteFile(dst, b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	top := write(ocispec.MediaTypeImageManifest, m)
	top.Annotations = map[string]string{ocispec.AnnotationRefName: "latest"}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{top}}
	b, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644)
	b, _ = json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), b, 0o644)
	return dir
}

// TestPullDurable: when a pull returns, its layers' files are on disk, not
// only in the page cache, so a power cut right after cannot leave committed
// layers of empty files (the store would trust them forever). On ext4,
// written data not yet on disk shows as delayed-allocation blocks.
func TestPullDurable(t *testing.T) {
	testutil.RequireRoot(t)
	fs := scratchfs.Make(t, 1<<30)
	img := images.Generated(t, images.Spec{Seed: 11, Layers: 3, Size: 8 << 20})
	r := startRegistry(t)
	r.Push(t, img.Layout, "gen/durable:latest")
	e := newEnvIn(t, fs.Dir, registry.Options{})
	if _, err := e.pull(r.Host + "/gen/durable:latest"); err != nil {
		t.Fatal(err)
	}
	n, err := fs.DelallocBlocks()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d blocks of the pulled image are only in the page cache", n)
	}
}
