package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// memProvider serves the blobs of the current fuzz input.
type memProvider struct {
	mu    sync.Mutex
	blobs map[digest.Digest][]byte
}

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

func (p *memProvider) set(bs ...[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobs = map[digest.Digest][]byte{}
	for _, b := range bs {
		p.blobs[digest.FromBytes(b)] = b
	}
}

func (p *memProvider) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.blobs[desc.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	if desc.Size > 0 && desc.Size != int64(len(b)) {
		return nil, errdefs.ErrFailedPrecondition
	}
	return memReader{bytes.NewReader(b)}, nil
}

func (p *memProvider) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.blobs[d]
	if !ok {
		return content.Info{}, errdefs.ErrNotFound
	}
	return content.Info{Digest: d, Size: int64(len(b))}, nil
}

// FuzzResolveInspect feeds untrusted index/manifest list, manifest and
// image config bytes through the image store: Resolve (index platform
// selection, manifest and config decoding, diff_ids against layers), Put
// (the record: platform, created, chain id, sizes), Inspect (Docker's
// config shape) and History (history entries against diff_ids). It must
// never panic.
func FuzzResolveInspect(f *testing.F) {
	bb := images.Busybox(f)
	idx := images.BusyboxIndex(f)
	read := func(img *images.Image, d digest.Digest) []byte {
		b, err := os.ReadFile(img.BlobPath(d))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	cfg := read(bb, bb.Manifest.Config.Digest)
	man := images.SeedFrom(read(bb, bb.Top.Digest), bb.Manifest.Config, ocispec.Descriptor{})
	f.Add(man, []byte(nil), cfg, ocispec.MediaTypeImageManifest)
	f.Add(images.Dockerize(man), []byte(nil), cfg, store.MediaTypeDockerManifest)
	var ix ocispec.Index
	ib := read(idx, idx.Top.Digest)
	if err := json.Unmarshal(ib, &ix); err != nil {
		f.Fatal(err)
	}
	for _, md := range ix.Manifests {
		mb := read(idx, md.Digest)
		var m ocispec.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			f.Fatal(err)
		}
		child := images.SeedFrom(mb, m.Config, ocispec.Descriptor{})
		top := images.SeedFrom(ib, ocispec.Descriptor{}, md)
		cb := read(idx, m.Config.Digest)
		f.Add(top, child, cb, ocispec.MediaTypeImageIndex)
		f.Add(images.Dockerize(top), images.Dockerize(child), cb, store.MediaTypeDockerManifestList)
	}
	// A config whose history has more non-empty entries than layers, and
	// one with odd field types.
	f.Add(man, []byte(nil), []byte(`{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":["`+bb.Layers[0].DiffID.String()+`"]},"history":[{"created_by":"a"},{"created_by":"b"},{"empty_layer":true}]}`), ocispec.MediaTypeImageManifest)
	f.Add(man, []byte(nil), []byte(`{"architecture":1,"os":null,"config":{"Env":"x"},"rootfs":{"diff_ids":[""]}}`), ocispec.MediaTypeImageManifest)

	p := &memProvider{}
	s, err := store.Open(f.TempDir(), p, store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	name := reference.MustParse("fuzz/image:latest")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, top, child, config []byte, mediaType string) {
		if len(top) > 1<<16 || len(child) > 1<<16 || len(config) > 1<<16 {
			return
		}
		child = images.FillSeed(child, config, nil)
		top = images.FillSeed(top, config, child)
		p.set(top, child, config)
		target := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(top), Size: int64(len(top))}
		for _, plat := range []ocispec.Platform{store.DefaultPlatform(), {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
			r, err := store.Resolve(ctx, p, target, plat)
			if err != nil {
				continue
			}
			if len(r.Config.RootFS.DiffIDs) != len(r.ManifestBody.Layers) {
				t.Fatalf("resolved %d layers with %d diff ids", len(r.ManifestBody.Layers), len(r.Config.RootFS.DiffIDs))
			}
		}
		img, err := s.Put(ctx, target, store.PutOptions{Names: []reference.Named{name}})
		if err != nil {
			return
		}
		defer func() {
			if _, err := s.Remove(ctx, img.ID.String(), store.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
				t.Fatalf("remove: %v", err)
			}
		}()
		if len(img.LayerSizes) != len(img.DiffIDs) {
			t.Fatalf("record has %d layer sizes for %d diff ids", len(img.LayerSizes), len(img.DiffIDs))
		}
		s.Inspect(ctx, img.ID.String())
		s.History(ctx, img.ID.String())
		if _, err := s.ConfigBytes(ctx, img); err != nil && digest.FromBytes(config) == img.ID {
			t.Fatalf("config bytes: %v", err)
		}
	})
}
