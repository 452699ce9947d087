// Package archive owns image archives: `docker save` (the docker-archive
// tar Docker 20.10 writes, or an OCI image layout as a tar), `docker load`
// of either (also what skopeo writes), and `docker import` of a plain root
// filesystem tarball. Loading and importing put blobs into the content
// store (verified by digest), unpack the layers into committed snapshots
// named by chain id, and create image records; all of it under a gc.Lease,
// so what a failed load wrote is unreferenced and goes at the next
// collection.
package archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/apply"
)

// LabelLayerSize is the snapshot label holding the uncompressed size of the
// layer a committed snapshot was unpacked from.
const LabelLayerSize = snapshot.LabelLayerSize

// Archiver saves, loads and imports images.
type Archiver struct {
	Content   content.Store
	Snapshots snapshot.Snapshotter
	Images    *store.Store
	GC        *gc.Collector
	// Platform picks the manifest of an index to record (default
	// store.DefaultPlatform).
	Platform *ocispec.Platform
}

func (a *Archiver) platform() ocispec.Platform {
	if a.Platform != nil {
		return *a.Platform
	}
	return store.DefaultPlatform()
}

// unpack applies layers (blobs in the content store, bottom first) into
// committed snapshots named by their chain ids, reusing the ones that
// exist, and returns the layers' uncompressed sizes. Snapshots and blobs
// are added to lease.
func (a *Archiver) unpack(ctx context.Context, lease *gc.Lease, layers []ocispec.Descriptor, diffIDs []digest.Digest) ([]int64, error) {
	chains := store.ChainIDs(diffIDs)
	sizes := make([]int64, len(layers))
	parent := ""
	for i, l := range layers {
		chain := chains[i].String()
		lease.AddSnapshot(chain)
		if info, err := a.Snapshots.Stat(ctx, chain); err == nil && info.Kind == snapshot.KindCommitted {
			sizes[i], _ = strconv.ParseInt(info.Labels[LabelLayerSize], 10, 64)
			parent = chain
			continue
		}
		n, err := a.unpackLayer(ctx, lease, l, diffIDs[i], parent, chain)
		if err != nil {
			return nil, fmt.Errorf("unpack layer %d (%s): %w", i+1, l.Digest, err)
		}
		sizes[i] = n
		parent = chain
	}
	return sizes, nil
}

func (a *Archiver) unpackLayer(ctx context.Context, lease *gc.Lease, l ocispec.Descriptor, diffID digest.Digest, parent, chain string) (int64, error) {
	key := "extract-" + randomHex(6) + "-" + chain
	lease.AddSnapshot(key)
	mounts, err := a.Snapshots.Prepare(ctx, key, parent, snapshot.WithLabels(map[string]string{gc.LabelTemporary: "true"}))
	if err != nil {
		return 0, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = a.Snapshots.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	upper := ""
	if len(mounts) == 1 {
		if mounts[0].Type == "bind" {
			upper = mounts[0].Source
		} else {
			upper, _ = mounts[0].Option("upperdir")
		}
	}
	if upper == "" {
		return 0, fmt.Errorf("snapshot %s: cannot find its upper directory in %+v: %w", key, mounts, errdefs.ErrNotImplemented)
	}
	ra, err := a.Content.ReaderAt(ctx, l)
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	dr, _, err := compression.DecompressStream(content.NewReader(ra))
	if err != nil {
		return 0, err
	}
	defer dr.Close()
	dg := digest.SHA256.Digester()
	cr := &countReader{r: io.TeeReader(dr, dg.Hash())}
	if _, err := apply.Apply(ctx, upper, cr, apply.Options{Overlay: true}); err != nil {
		return 0, err
	}
	if dg.Digest() != diffID {
		return 0, fmt.Errorf("layer content has diff id %s, the config says %s: %w", dg.Digest(), diffID, errdefs.ErrFailedPrecondition)
	}
	err = a.Snapshots.Commit(ctx, chain, key, snapshot.WithLabels(map[string]string{LabelLayerSize: strconv.FormatInt(cr.n, 10)}), withoutLabel(gc.LabelTemporary))
	if errdefs.IsAlreadyExists(err) {
		return cr.n, nil // unpacked concurrently; ours is removed
	}
	if err != nil {
		return 0, err
	}
	committed = true
	return cr.n, nil
}

func withoutLabel(name string) snapshot.Opt {
	return func(info *snapshot.Info) error {
		delete(info.Labels, name)
		return nil
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
