package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/change"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// Name, when not zero, tags the image.
	Name reference.Named
	// Changes are Dockerfile instructions applied to the config, as with
	// `docker import --change`: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
	// LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL.
	Changes []string
	// Message is the history comment (default "Imported from -").
	Message string
	// Now is the creation time (default time.Now).
	Now time.Time
}

// importConfig is the OCI image config with Docker's Healthcheck, which
// `import --change HEALTHCHECK` sets (as dockerd writes it).
type importConfig struct {
	ocispec.Image
	Config importImageConfig `json:"config"`
}

type importImageConfig struct {
	ocispec.ImageConfig
	Healthcheck *container.HealthConfig `json:"Healthcheck,omitempty"`
}

// Import is `docker import`: the root filesystem tarball r (plain, gzip or
// zstd) becomes a one-layer image. The layer is stored gzip-compressed; the
// config gets the diff id, the host platform, and a history entry
// "Imported from -". The layer is unpacked and the image recorded.
func (a *Archiver) Import(ctx context.Context, r io.Reader, opts ImportOptions) (store.Image, error) {
	cfg := importConfig{Image: ocispec.Image{Platform: a.platform(), RootFS: ocispec.RootFS{Type: "layers"}}}
	cfg.Platform.Variant = ""
	var err error
	if cfg.Config.Healthcheck, err = change.ApplyImageConfig(&cfg.Config.ImageConfig, opts.Changes); err != nil {
		return store.Image{}, fmt.Errorf("import: %w", err)
	}
	lease := a.GC.NewLease()
	defer lease.Release()

	dr, _, err := compression.DecompressStream(r)
	if err != nil {
		return store.Image{}, fmt.Errorf("import: %w", err)
	}
	defer dr.Close()
	w, err := a.Content.Writer(ctx, "import-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return store.Image{}, err
	}
	defer w.Close()
	zw, err := compression.Compress(w, compression.Gzip)
	if err != nil {
		return store.Image{}, err
	}
	dg := digest.SHA256.Digester()
	if _, err := io.Copy(io.MultiWriter(zw, dg.Hash()), dr); err != nil {
		return store.Image{}, fmt.Errorf("import: read rootfs tarball: %w", err)
	}
	if err := zw.Close(); err != nil {
		return store.Image{}, err
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: w.Digest(), Size: w.Offset()}
	lease.AddBlob(layer.Digest)
	if err := w.Commit(ctx, layer.Size, layer.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return store.Image{}, err
	}

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	msg := opts.Message
	if msg == "" {
		msg = "Imported from -"
	}
	cfg.Created = &now
	cfg.RootFS.DiffIDs = []digest.Digest{dg.Digest()}
	cfg.History = []ocispec.History{{Created: &now, Comment: msg}}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return store.Image{}, err
	}
	cd := content.Descriptor(ocispec.MediaTypeImageConfig, cb)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{layer}}
	mb, err := json.Marshal(m)
	if err != nil {
		return store.Image{}, err
	}
	md := content.Descriptor(ocispec.MediaTypeImageManifest, mb)
	for _, b := range []struct {
		d ocispec.Descriptor
		b []byte
	}{{cd, cb}, {md, mb}} {
		lease.AddBlob(b.d.Digest)
		if err := content.WriteBlob(ctx, a.Content, "import-"+b.d.Digest.Encoded(), bytes.NewReader(b.b), b.d); err != nil {
			return store.Image{}, err
		}
	}
	sizes, err := a.unpack(ctx, lease, m.Layers, cfg.RootFS.DiffIDs)
	if err != nil {
		return store.Image{}, fmt.Errorf("import: %w", err)
	}
	var names []reference.Named
	if !opts.Name.IsZero() {
		names = append(names, opts.Name)
	}
	plat := cfg.Platform
	return a.Images.Put(ctx, md, store.PutOptions{Names: names, LayerSizes: sizes, Platform: &plat})
}
