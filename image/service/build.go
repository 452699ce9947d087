package service

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/diff"
)

// LabelBuild marks the snapshots a build prepared (RUN and COPY steps,
// COPY --from views): they are only ever temporary.
const LabelBuild = "berth.dev/build"

// BuildImageConfig returns the image refOrID and its runtime config (what
// a Dockerfile's FROM starts from).
func (s *Service) BuildImageConfig(ctx context.Context, refOrID string) (store.Image, *container.Config, error) {
	img, err := s.images.Get(ctx, refOrID)
	if err != nil {
		return store.Image{}, nil, err
	}
	var cfg struct {
		Config *container.Config `json:"config"`
	}
	if _, err := store.ReadJSON(ctx, s.content, img.Config, &cfg); err != nil {
		return store.Image{}, nil, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	if cfg.Config == nil {
		cfg.Config = &container.Config{}
	}
	return img, cfg.Config, nil
}

// PrepareBuild prepares the writable snapshot key on the layers of image
// parentID ("" for an empty base) and returns its mounts and a release
// function. Until release, a lease keeps the snapshot from the garbage
// collector; after it (or after a crash) the snapshot is litter the next
// collection removes, unless BuildCommit made it a layer. The caller
// removes it with RemoveBuild once committed or abandoned, then releases.
func (s *Service) PrepareBuild(ctx context.Context, parentID, key string) ([]snapshot.Mount, func(), error) {
	lease := s.gc.NewLease()
	parent := ""
	if parentID != "" {
		img, err := s.images.Get(ctx, parentID)
		if err != nil {
			lease.Release()
			return nil, nil, err
		}
		if img.ChainID != "" {
			parent = img.ChainID.String()
			lease.AddSnapshot(parent)
		}
	}
	lease.AddSnapshot(key)
	mounts, err := s.snaps.Prepare(ctx, key, parent, snapshot.WithLabels(map[string]string{LabelBuild: "true", gc.LabelTemporary: "true"}))
	if err != nil {
		lease.Release()
		return nil, nil, fmt.Errorf("prepare build snapshot %q: %w", key, err)
	}
	return mounts, lease.Release, nil
}

// RemoveBuild removes the build snapshot key (unmounted).
func (s *Service) RemoveBuild(ctx context.Context, key string) error {
	return s.RemoveContainerSnapshot(ctx, key)
}

// BuildCommitOptions describe one image a build step produces.
type BuildCommitOptions struct {
	// Parent is the image the step started from; "" for scratch.
	Parent string
	// Key is the step's snapshot (prepared with PrepareBuild on Parent);
	// "" when the step changed only metadata.
	Key string
	// Config is the new image's runtime config.
	Config *container.Config
	// History are the entries appended to the parent's: the metadata
	// steps since the parent, then the step itself. When Key is set, the
	// last entry describes the layer (marked empty when the snapshot
	// changed nothing).
	History []ocispec.History
	// Now is the creation time (default time.Now).
	Now time.Time
	// Platform is the image's platform when Parent is "" (a scratch
	// stage; default the host's).
	Platform *ocispec.Platform
}

// BuildCommit records the image of a build step: the diff of o.Key (if
// any) as a new layer on o.Parent, the config and history. The image is
// untagged; the builder names the final one with Tag.
func (s *Service) BuildCommit(ctx context.Context, o BuildCommitOptions) (store.Image, error) {
	if o.Config == nil {
		return store.Image{}, fmt.Errorf("build commit: no config given: %w", errdefs.ErrInvalidArgument)
	}
	lease := s.gc.NewLease()
	defer lease.Release()
	base, err := s.commitBase(ctx, lease, o.Parent)
	if err != nil {
		return store.Image{}, err
	}
	if o.Parent == "" && o.Platform != nil {
		base.config.OS, base.config.Architecture, base.config.Variant = o.Platform.OS, o.Platform.Architecture, o.Platform.Variant
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	hist := make([]ocispec.History, len(o.History))
	copy(hist, o.History)
	for i := range hist {
		hist[i].Created = &now
		if o.Key == "" || i < len(hist)-1 {
			hist[i].EmptyLayer = true
		}
	}
	sizes := base.layerSizes
	if o.Key != "" {
		info, err := s.snaps.Stat(ctx, o.Key)
		if err != nil {
			return store.Image{}, fmt.Errorf("build commit: snapshot %q: %w", o.Key, err)
		}
		if info.Parent != base.parentChain {
			return store.Image{}, fmt.Errorf("build commit: snapshot %q does not sit on image %s's layers: %w", o.Key, o.Parent, errdefs.ErrFailedPrecondition)
		}
		layer, diffID, size, err := s.buildLayer(ctx, lease, o.Key, base.parentChain, base.dockerTypes)
		if err != nil {
			return store.Image{}, fmt.Errorf("build commit of snapshot %q: %w", o.Key, err)
		}
		if layer == nil {
			if len(hist) > 0 {
				hist[len(hist)-1].EmptyLayer = true
			}
		} else {
			base.config.RootFS.DiffIDs = append(base.config.RootFS.DiffIDs, diffID)
			base.manifest.Layers = append(base.manifest.Layers, *layer)
			sizes = append(sizes, size)
		}
	}
	cfg := base.config
	cfg.Config, cfg.Created = o.Config, now
	cfg.History = append(cfg.History, hist...)
	return s.putImage(ctx, lease, base, cfg, sizes, nil, "build commit")
}

// buildLayer writes the diff of the build snapshot key as a layer blob
// and commits the snapshot itself as the layer's chain: unlike a
// container commit, nothing uses the build snapshot afterwards, so its
// files need not be copied. The blob is gzip at the fastest level (a
// build's intermediate layers are many and small). It returns nil when
// the snapshot changed nothing; the caller then removes it.
func (s *Service) buildLayer(ctx context.Context, lease *gc.Lease, key, parentChain string, dockerTypes bool) (*ocispec.Descriptor, digest.Digest, int64, error) {
	mounts, err := s.snaps.Mounts(ctx, key)
	if err != nil {
		return nil, "", 0, err
	}
	w, err := s.content.Writer(ctx, "build-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return nil, "", 0, err
	}
	defer w.Close()
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, "", 0, err
	}
	res, err := diff.Write(ctx, zw, mounts)
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, "", 0, err
	}
	if res.DiffID == emptyTarDiffID {
		return nil, res.DiffID, 0, nil
	}
	layer, err := commitLayerBlob(ctx, lease, w, dockerTypes)
	if err != nil {
		return nil, "", 0, err
	}
	name := layerKey(parentChain, res.DiffID)
	lease.AddSnapshot(name)
	err = s.snaps.Commit(ctx, name, key,
		snapshot.WithLabels(map[string]string{snapshot.LabelLayerSize: strconv.FormatInt(res.Size, 10)}),
		func(info *snapshot.Info) error {
			delete(info.Labels, LabelBuild)
			delete(info.Labels, gc.LabelTemporary)
			return nil
		})
	if err != nil && !errdefs.IsAlreadyExists(err) {
		// The same layer on the same parent exists already (an identical
		// step built in parallel): the caller removes key.
		return nil, "", 0, fmt.Errorf("commit the layer's snapshot: %w", err)
	}
	return layer, res.DiffID, res.Size, nil
}

// BuildImageRecord is what the builder's --cache-from compares: an
// image's history, layers and runtime config.
type BuildImageRecord struct {
	ID      string
	History []ocispec.History
	DiffIDs []digest.Digest
	Config  *container.Config
}

// BuildImageRecordOf reads refOrID's history, diff ids and config.
func (s *Service) BuildImageRecordOf(ctx context.Context, refOrID string) (BuildImageRecord, error) {
	img, err := s.images.Get(ctx, refOrID)
	if err != nil {
		return BuildImageRecord{}, err
	}
	var cfg struct {
		Config  *container.Config `json:"config"`
		History []ocispec.History `json:"history"`
		RootFS  ocispec.RootFS    `json:"rootfs"`
	}
	if _, err := store.ReadJSON(ctx, s.content, img.Config, &cfg); err != nil {
		return BuildImageRecord{}, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	if cfg.Config == nil {
		cfg.Config = &container.Config{}
	}
	return BuildImageRecord{ID: img.ID.String(), History: cfg.History, DiffIDs: cfg.RootFS.DiffIDs, Config: cfg.Config}, nil
}

// BuildReuseOptions describe a step taken from a --cache-from image: the
// layer Layer of image Source goes on top of Parent, whose layers are
// Source's first ones.
type BuildReuseOptions struct {
	Parent  string
	Source  string
	Layer   int
	Config  *container.Config
	History []ocispec.History
	Now     time.Time
}

// BuildReuse records the image of a step whose layer comes from another
// image (the builder's --cache-from): no file is touched, the layer's
// blob and snapshot are Source's.
func (s *Service) BuildReuse(ctx context.Context, o BuildReuseOptions) (store.Image, error) {
	lease := s.gc.NewLease()
	defer lease.Release()
	base, err := s.commitBase(ctx, lease, o.Parent)
	if err != nil {
		return store.Image{}, err
	}
	src, err := s.images.Get(ctx, o.Source)
	if err != nil {
		return store.Image{}, err
	}
	lease.AddBlob(src.Manifest.Digest)
	var sm ocispec.Manifest
	if _, err := store.ReadJSON(ctx, s.content, src.Manifest, &sm); err != nil {
		return store.Image{}, err
	}
	if o.Layer != len(base.config.RootFS.DiffIDs) || o.Layer >= len(sm.Layers) || o.Layer >= len(src.DiffIDs) {
		return store.Image{}, fmt.Errorf("build: layer %d of %s does not follow %s's layers: %w", o.Layer, o.Source, o.Parent, errdefs.ErrFailedPrecondition)
	}
	for i, d := range base.config.RootFS.DiffIDs {
		if src.DiffIDs[i] != d {
			return store.Image{}, fmt.Errorf("build: %s does not start with %s's layers: %w", o.Source, o.Parent, errdefs.ErrFailedPrecondition)
		}
	}
	layer := sm.Layers[o.Layer]
	switch {
	case base.dockerTypes && layer.MediaType == ocispec.MediaTypeImageLayerGzip:
		layer.MediaType = dockerLayer
	case !base.dockerTypes && layer.MediaType == dockerLayer:
		layer.MediaType = ocispec.MediaTypeImageLayerGzip
	}
	lease.AddBlob(layer.Digest)
	base.config.RootFS.DiffIDs = append(base.config.RootFS.DiffIDs, src.DiffIDs[o.Layer])
	base.manifest.Layers = append(base.manifest.Layers, layer)
	sizes := base.layerSizes
	if sizes != nil && o.Layer < len(src.LayerSizes) {
		sizes = append(sizes, src.LayerSizes[o.Layer])
	} else {
		sizes = nil
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	hist := make([]ocispec.History, len(o.History))
	copy(hist, o.History)
	for i := range hist {
		hist[i].Created = &now
		hist[i].EmptyLayer = i < len(hist)-1
	}
	cfg := base.config
	cfg.Config, cfg.Created = o.Config, now
	cfg.History = append(cfg.History, hist...)
	return s.putImage(ctx, lease, base, cfg, sizes, nil, "build commit")
}

// BuildBaseImage is the image ref for platform, as a FROM --platform
// reads it: the image itself when it is for that platform, else that
// platform's manifest of the index it came from (a multi-platform pull
// or load), recorded as an untagged image when its layers are all
// unpacked here. It fails with errdefs.ErrNotFound when neither is
// available locally: the builder then pulls.
func (s *Service) BuildBaseImage(ctx context.Context, ref string, platform ocispec.Platform) (store.Image, error) {
	img, err := s.images.Get(ctx, ref)
	if err != nil {
		return store.Image{}, err
	}
	if store.PlatformMatches(platform, img.Platform) {
		return img, nil
	}
	notHere := fmt.Errorf("image %s is for %s, and no %s variant of it is here: %w", ref, platformString(img.Platform), platformString(platform), errdefs.ErrNotFound)
	if !store.IsIndex(img.Target.MediaType) {
		return store.Image{}, notHere
	}
	lease := s.gc.NewLease()
	defer lease.Release()
	lease.AddBlob(img.Target.Digest)
	r, err := store.Resolve(ctx, s.content, img.Target, platform)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return store.Image{}, notHere
		}
		return store.Image{}, err
	}
	// Only layers unpacked already: unpacking is the pull's job.
	var sizes []int64
	for _, chain := range store.ChainIDs(r.Config.RootFS.DiffIDs) {
		info, err := s.snaps.Stat(ctx, chain.String())
		if err != nil || info.Kind != snapshot.KindCommitted {
			return store.Image{}, notHere
		}
		lease.AddSnapshot(chain.String())
		n, err := strconv.ParseInt(info.Labels[snapshot.LabelLayerSize], 10, 64)
		if err != nil {
			sizes = nil
			break
		}
		sizes = append(sizes, n)
	}
	if len(sizes) != len(r.Config.RootFS.DiffIDs) {
		sizes = nil
	}
	return s.images.Put(ctx, img.Target, store.PutOptions{LayerSizes: sizes, Platform: &platform})
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
