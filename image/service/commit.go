package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/internal/idmap"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/apply"
	"github.com/berth-dev/berth/snapshot/diff"
)

// CommitOptions describe `docker commit`.
type CommitOptions struct {
	// ContainerKey is the container's snapshot (the key RootfsMounts
	// prepared: the container id). It is only read.
	ContainerKey string
	// Owner, when set, translates the owners of the container's files
	// back to the image's (a remapped container's host ids to its own).
	Owner func(uid, gid int) (int, int)
	// Parent is the ID of the image the container was created from; ""
	// for none (an empty base).
	Parent string
	// Config is the new image's config: the container's, with the
	// engine's --change instructions (package image/change) applied.
	Config *container.Config
	// ContainerConfig is the container's own config, recorded as the
	// image's container_config; the history's created_by is its Cmd.
	// nil means Config.
	ContainerConfig *container.Config
	// ContainerID is recorded as the image's "container" (default
	// ContainerKey).
	ContainerID string
	// Comment and Author go into the config and its new history entry.
	Comment, Author string
	// Ref names the image ("repo[:tag]"); "" leaves it untagged.
	Ref string
	// Now is the creation time (default time.Now).
	Now time.Time
}

// emptyTarDiffID is the diff id of a tar with no entries: a commit of a
// container that changed nothing adds no layer, only a history entry
// marked empty_layer, as dockerd does.
const emptyTarDiffID = digest.Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")

// Docker media types: a commit on an image pulled as a Docker schema 2
// manifest stays one, so it can be pushed where the parent came from.
const (
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerConfig   = "application/vnd.docker.container.image.v1+json"
	dockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// commitImageConfig is the image config dockerd writes for a commit: the
// OCI fields plus the container it came from.
type commitImageConfig struct {
	Architecture    string            `json:"architecture"`
	Author          string            `json:"author,omitempty"`
	Comment         string            `json:"comment,omitempty"`
	Config          *container.Config `json:"config,omitempty"`
	Container       string            `json:"container,omitempty"`
	ContainerConfig *container.Config `json:"container_config,omitempty"`
	Created         time.Time         `json:"created"`
	History         []ocispec.History `json:"history,omitempty"`
	OS              string            `json:"os"`
	OSVersion       string            `json:"os.version,omitempty"`
	OSFeatures      []string          `json:"os.features,omitempty"`
	Variant         string            `json:"variant,omitempty"`
	RootFS          ocispec.RootFS    `json:"rootfs"`
}

// Commit is `docker commit`: the changes of the container snapshot
// o.ContainerKey become a new gzip layer on top of the image o.Parent,
// with a config recording o.Config, the parent's history plus one entry,
// and a manifest; the layer is also committed as a snapshot on the
// parent's chain, so the new image runs at once. The image is named o.Ref
// if given. The container's snapshot is left as it was; the container
// should not change files meanwhile (the engine pauses it).
func (s *Service) Commit(ctx context.Context, o CommitOptions) (store.Image, error) {
	if o.Config == nil {
		return store.Image{}, fmt.Errorf("commit: no config given: %w", errdefs.ErrInvalidArgument)
	}
	var names []reference.Named
	if o.Ref != "" {
		n, err := reference.Parse(o.Ref)
		if err != nil {
			return store.Image{}, err
		}
		if n.Digest() != "" {
			return store.Image{}, fmt.Errorf("commit: %q: cannot name an image by digest: %w", o.Ref, errdefs.ErrInvalidArgument)
		}
		names = append(names, n)
	}
	info, err := s.snaps.Stat(ctx, o.ContainerKey)
	if err != nil {
		return store.Image{}, fmt.Errorf("commit: container snapshot %q: %w", o.ContainerKey, err)
	}
	if info.Kind != snapshot.KindActive {
		return store.Image{}, fmt.Errorf("commit: snapshot %q is %s, not a container's: %w", o.ContainerKey, info.Kind, errdefs.ErrInvalidArgument)
	}
	lease := s.gc.NewLease()
	defer lease.Release()

	base, err := s.commitBase(ctx, lease, o.Parent)
	if err != nil {
		return store.Image{}, err
	}
	if base.parentChain != info.Parent {
		return store.Image{}, fmt.Errorf("commit: snapshot %q does not sit on image %s's layers: %w", o.ContainerKey, o.Parent, errdefs.ErrFailedPrecondition)
	}
	layer, diffID, size, err := s.commitLayer(ctx, lease, o.ContainerKey, base.parentChain, base.dockerTypes, o.Owner)
	if err != nil {
		return store.Image{}, fmt.Errorf("commit of container snapshot %q: %w", o.ContainerKey, err)
	}

	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	cconf := o.ContainerConfig
	if cconf == nil {
		cconf = o.Config
	}
	id := o.ContainerID
	if id == "" {
		id = o.ContainerKey
	}
	cfg := base.config
	cfg.Author, cfg.Comment, cfg.Config = o.Author, o.Comment, o.Config
	cfg.Container, cfg.ContainerConfig, cfg.Created = id, cconf, now
	empty := layer == nil
	cfg.History = append(cfg.History, ocispec.History{
		Created: &now, Author: o.Author, CreatedBy: strings.Join(cconf.Cmd, " "),
		Comment: o.Comment, EmptyLayer: empty,
	})
	sizes := base.layerSizes
	if !empty {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		base.manifest.Layers = append(base.manifest.Layers, *layer)
		sizes = append(sizes, size)
	}
	return s.putImage(ctx, lease, base, cfg, sizes, names, "commit")
}

// putImage writes the config and the manifest of an image made here (a
// commit, a build step) on base, kept by lease, and records it under
// names (none: untagged) with its parent. op names the operation in
// errors.
func (s *Service) putImage(ctx context.Context, lease *gc.Lease, base commitParent, cfg commitImageConfig, sizes []int64, names []reference.Named, op string) (store.Image, error) {
	cb, err := json.Marshal(cfg)
	if err != nil {
		return store.Image{}, err
	}
	cd := content.Descriptor(ocispec.MediaTypeImageConfig, cb)
	if base.dockerTypes {
		cd.MediaType = dockerConfig
	}
	base.manifest.Config = cd
	mb, err := json.Marshal(base.manifest)
	if err != nil {
		return store.Image{}, err
	}
	md := content.Descriptor(base.manifest.MediaType, mb)
	for _, b := range []struct {
		d ocispec.Descriptor
		b []byte
	}{{cd, cb}, {md, mb}} {
		lease.AddBlob(b.d.Digest)
		if err := content.WriteBlob(ctx, s.content, "image-"+b.d.Digest.Encoded(), bytes.NewReader(b.b), b.d); err != nil && !errdefs.IsAlreadyExists(err) {
			return store.Image{}, fmt.Errorf("%s: store %s: %w", op, b.d.MediaType, err)
		}
	}
	plat := ocispec.Platform{Architecture: cfg.Architecture, OS: cfg.OS, OSVersion: cfg.OSVersion, Variant: cfg.Variant}
	img, err := s.images.Put(ctx, md, store.PutOptions{Names: names, LayerSizes: sizes, Platform: &plat, Parent: base.id})
	if err != nil {
		return store.Image{}, fmt.Errorf("%s: record image: %w", op, err)
	}
	return img, nil
}

// commitParent is what a commit inherits from its parent image.
type commitParent struct {
	config      commitImageConfig
	manifest    ocispec.Manifest
	parentChain string        // the parent's top snapshot, "" for none
	id          digest.Digest // the parent image, "" for none
	layerSizes  []int64
	dockerTypes bool
}

func (s *Service) commitBase(ctx context.Context, lease *gc.Lease, parentID string) (commitParent, error) {
	base := commitParent{
		manifest: ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{}},
	}
	base.config.RootFS.Type = "layers"
	if parentID == "" {
		p := store.DefaultPlatform()
		base.config.Architecture, base.config.OS, base.config.Variant = p.Architecture, p.OS, p.Variant
		return base, nil
	}
	parent, err := s.images.Get(ctx, parentID)
	if err != nil {
		return base, fmt.Errorf("commit: parent image: %w", err)
	}
	base.id = parent.ID
	lease.AddBlob(parent.Manifest.Digest)
	var pc ocispec.Image
	if _, err := store.ReadJSON(ctx, s.content, parent.Config, &pc); err != nil {
		return base, fmt.Errorf("commit: parent image %s config: %w", parent.ID, err)
	}
	if _, err := store.ReadJSON(ctx, s.content, parent.Manifest, &base.manifest); err != nil {
		return base, fmt.Errorf("commit: parent image %s manifest: %w", parent.ID, err)
	}
	if len(base.manifest.Layers) != len(pc.RootFS.DiffIDs) {
		return base, fmt.Errorf("commit: parent image %s has %d layers and %d diff ids: %w", parent.ID, len(base.manifest.Layers), len(pc.RootFS.DiffIDs), errdefs.ErrFailedPrecondition)
	}
	if base.manifest.MediaType == "" {
		base.manifest.MediaType = parent.Manifest.MediaType
	}
	base.dockerTypes = base.manifest.MediaType == dockerManifest
	base.manifest.Annotations = nil
	c := &base.config
	c.Architecture, c.OS, c.OSVersion, c.OSFeatures, c.Variant = pc.Architecture, pc.OS, pc.OSVersion, pc.OSFeatures, pc.Variant
	c.History = pc.History
	c.RootFS.DiffIDs = pc.RootFS.DiffIDs
	if parent.ChainID != "" {
		base.parentChain = parent.ChainID.String()
		lease.AddSnapshot(base.parentChain)
	}
	base.layerSizes = append([]int64(nil), parent.LayerSizes...)
	if len(base.layerSizes) != len(c.RootFS.DiffIDs) {
		base.layerSizes = nil // Put then falls back to the blob sizes
	}
	return base, nil
}

// commitLayer writes the diff of the snapshot key as a gzip blob and, at
// the same time, applies it to a new snapshot on parentChain, committed
// under the new chain id. It returns the layer's descriptor (nil when the
// container changed nothing), its diff id and uncompressed size.
func (s *Service) commitLayer(ctx context.Context, lease *gc.Lease, key, parentChain string, dockerTypes bool, owner func(uid, gid int) (int, int)) (*ocispec.Descriptor, digest.Digest, int64, error) {
	mounts, err := s.snaps.Mounts(ctx, key)
	if err != nil {
		return nil, "", 0, err
	}
	tmp := "commit-" + randomHex(6) + "-" + key
	lease.AddSnapshot(tmp)
	tmpMounts, err := s.snaps.Prepare(ctx, tmp, parentChain, snapshot.WithLabels(map[string]string{gc.LabelTemporary: "true"}))
	if err != nil {
		return nil, "", 0, fmt.Errorf("prepare the new layer's snapshot: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = s.snaps.Remove(context.WithoutCancel(ctx), tmp)
		}
	}()
	upper, err := upperDir(tmpMounts)
	if err != nil {
		return nil, "", 0, err
	}

	w, err := s.content.Writer(ctx, "commit-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return nil, "", 0, err
	}
	defer w.Close()
	zw, err := compression.Compress(w, compression.Gzip)
	if err != nil {
		return nil, "", 0, err
	}
	pr, pw := io.Pipe()
	applied := make(chan error, 1)
	go func() {
		_, err := apply.Apply(ctx, upper, pr, apply.Options{Overlay: true})
		pr.CloseWithError(err)
		applied <- err
	}()
	// A failing applier closes the pipe with its error, which the diff
	// then returns.
	res, err := writeDiff(ctx, io.MultiWriter(zw, pw), mounts, owner)
	pw.CloseWithError(err)
	if applyErr := <-applied; err == nil {
		err = applyErr
	}
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
	err = s.snaps.Commit(ctx, name, tmp,
		snapshot.WithLabels(map[string]string{snapshot.LabelLayerSize: strconv.FormatInt(res.Size, 10)}),
		func(info *snapshot.Info) error { delete(info.Labels, gc.LabelTemporary); return nil })
	switch {
	case err == nil:
		committed = true
	case errdefs.IsAlreadyExists(err):
		// The same layer on the same parent exists (an identical commit):
		// ours is removed by the deferred cleanup.
	default:
		return nil, "", 0, fmt.Errorf("commit the new layer's snapshot: %w", err)
	}
	return layer, res.DiffID, res.Size, nil
}

// upperDir is the writable directory of an active snapshot's mounts.
func upperDir(mounts []snapshot.Mount) (string, error) {
	if len(mounts) == 1 {
		if mounts[0].Type == "bind" {
			return mounts[0].Source, nil
		}
		if upper, ok := mounts[0].Option("upperdir"); ok {
			return upper, nil
		}
	}
	return "", fmt.Errorf("cannot find the upper directory of mounts %+v: %w", mounts, errdefs.ErrNotImplemented)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// commitLayerBlob makes the gzip layer written to w a blob, kept by lease,
// and returns its descriptor (Docker's media type when dockerTypes).
func commitLayerBlob(ctx context.Context, lease *gc.Lease, w content.Writer, dockerTypes bool) (*ocispec.Descriptor, error) {
	layer := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: w.Digest(), Size: w.Offset()}
	if dockerTypes {
		layer.MediaType = dockerLayer
	}
	lease.AddBlob(layer.Digest)
	if err := w.Commit(ctx, layer.Size, layer.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("store layer: %w", err)
	}
	return layer, nil
}

// layerKey names the snapshot of layer diffID on parentChain as pulls do:
// its chain id, which for a first layer is its diff id.
func layerKey(parentChain string, diffID digest.Digest) string {
	if parentChain == "" {
		return diffID.String()
	}
	chain := store.ChainIDs([]digest.Digest{digest.Digest(parentChain), diffID})
	return chain[len(chain)-1].String()
}

// writeDiff writes the diff of mounts to w, its owners translated by
// owner when set.
func writeDiff(ctx context.Context, w io.Writer, mounts []snapshot.Mount, owner func(uid, gid int) (int, int)) (diff.Result, error) {
	if owner == nil {
		return diff.Write(ctx, w, mounts)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := diff.Write(ctx, pw, mounts)
		pw.CloseWithError(err)
	}()
	d, n, err := idmap.ShiftTar(w, pr, owner)
	pr.CloseWithError(err)
	if err != nil {
		return diff.Result{}, err
	}
	return diff.Result{DiffID: d, Size: n}, nil
}
