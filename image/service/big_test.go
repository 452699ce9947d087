package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/internal/testutil/images"
	treg "github.com/berth-dev/berth/internal/testutil/registry"
)

// TestPullGenerated200MB pulls the full generated test image (20 layers,
// ~200 MB of file data, gzip, zstd and uncompressed layers in turn, files
// deleted, replaced and re-created across layers) from a loopback
// registry, mounts its rootfs and checks it file by file against the
// expected tree. The image is generated once and cached (CacheDir).
func TestPullGenerated200MB(t *testing.T) {
	s, root, _ := open(t)
	ctx := context.Background()

	start := time.Now()
	gen := images.Generated(t, images.Spec{Seed: 7}) // the defaults: 20 layers, BigSize
	t.Logf("generated image: %d layers, %d MB compressed, %s", len(gen.Layers), gen.TotalSize()>>20, time.Since(start).Round(time.Millisecond))
	if len(gen.Layers) != 20 {
		t.Fatalf("generated %d layers, want 20", len(gen.Layers))
	}
	comps := map[images.Compression]bool{}
	for _, l := range gen.Layers {
		comps[l.Compression] = true
	}
	if len(comps) != 3 {
		t.Fatalf("layer compressions %v, want gzip, zstd and uncompressed", comps)
	}

	reg := treg.Start(t)
	start = time.Now()
	reg.Push(t, gen.Layout, "gen/big:latest")
	t.Logf("push: %s", time.Since(start).Round(time.Millisecond))
	ref := reg.Host + "/gen/big:latest"

	start = time.Now()
	img, err := s.Pull(ctx, ref, service.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pull: %s", time.Since(start).Round(time.Millisecond))
	var tarSize int64
	for _, l := range gen.Layers {
		tarSize += l.TarSize
	}
	if img.Size != tarSize || len(img.LayerSizes) != len(gen.Layers) {
		t.Errorf("size %d (%d layers), want %d (%d layers)", img.Size, len(img.LayerSizes), tarSize, len(gen.Layers))
	}
	if img.ID.String() != gen.Manifest.Config.Digest.String() {
		t.Errorf("image ID %s, want the config digest %s", img.ID, gen.Manifest.Config.Digest)
	}

	dir := mountRootfs(t, s, ref, "ctr-big")
	start = time.Now()
	if err := gen.Tree.Check(dir); err != nil {
		t.Error(err)
	}
	t.Logf("check of %d entries: %s", len(gen.Tree.Entries), time.Since(start).Round(time.Millisecond))
	unmountRootfs(t, s, dir, "ctr-big")

	if _, err := s.Remove(ctx, ref, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	assertEmpty(t, root)
}
