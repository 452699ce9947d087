package service

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/progress"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/snapshot"
)

// PullOptions tune Pull.
type PullOptions struct {
	// Platform is "os/arch[/variant]" as for --platform; "" is the host's.
	Platform string
	// Progress receives Docker's pull messages and per-layer events
	// (dropped when nil).
	Progress progress.Reporter
}

// pullAttempts bounds how often a pull is repeated because a garbage
// collection running beside it deleted what it had just written.
const pullAttempts = 3

// Pull is `docker pull`: it fetches ref (a name as Docker parses it) into the
// content store, unpacks its layers into snapshots and records the image
// under ref and under its repository digest reference, with the layers'
// uncompressed sizes. It returns the record.
func (s *Service) Pull(ctx context.Context, ref string, opts PullOptions) (store.Image, error) {
	named, err := reference.Parse(ref)
	if err != nil {
		return store.Image{}, err
	}
	rep := opts.Progress
	if rep == nil {
		rep = progress.Discard
	}
	before, _ := s.images.Get(ctx, named.String())

	tagOrDigest := named.Tag()
	if named.Digest() != "" {
		tagOrDigest = named.Digest().String()
	}
	rep.Report(progress.Event{ID: tagOrDigest, Status: "Pulling from " + familiarPath(named)})

	lease := s.gc.NewLease()
	defer lease.Release()
	var res pull.Result
	for attempt := 1; ; attempt++ {
		res, err = s.pullOnce(ctx, named, opts.Platform, lease, rep)
		if err != nil {
			rep.Report(progress.Event{Err: err})
			return store.Image{}, err
		}
		missing := s.protect(ctx, lease, res)
		if missing == nil {
			break
		}
		if attempt == pullAttempts {
			return store.Image{}, fmt.Errorf("pull %s: %w", named, missing)
		}
	}

	sizes, err := s.layerSizes(ctx, res)
	if err != nil {
		return store.Image{}, err
	}
	target := res.Manifest
	if res.Index != nil {
		target = *res.Index
	}
	names := []reference.Named{named}
	if named.Digest() == "" {
		byDigest, err := reference.Parse(named.Name() + "@" + target.Digest.String())
		if err != nil {
			return store.Image{}, err
		}
		names = append(names, byDigest)
	} else if named.Tag() != "" {
		// "name:tag@digest": Docker records the digest reference only.
		byDigest, err := reference.Parse(named.Name() + "@" + named.Digest().String())
		if err != nil {
			return store.Image{}, err
		}
		names = []reference.Named{byDigest}
	}
	platform := res.Platform
	img, err := s.images.Put(ctx, target, store.PutOptions{Names: names, LayerSizes: sizes, Platform: &platform})
	if err != nil {
		return store.Image{}, fmt.Errorf("record image %s: %w", named, err)
	}

	rep.Report(progress.Event{Status: "Digest: " + target.Digest.String()})
	if before.ID == img.ID && res.Existing == len(res.Layers) {
		rep.Report(progress.Event{Status: "Status: Image is up to date for " + reference.FamiliarString(named)})
	} else {
		rep.Report(progress.Event{Status: "Status: Downloaded newer image for " + reference.FamiliarString(named)})
	}
	return img, nil
}

// pullOnce runs pull.Pull, adding every layer blob to lease as soon as the
// pull names it.
func (s *Service) pullOnce(ctx context.Context, named reference.Named, platform string, lease *gc.Lease, rep progress.Reporter) (pull.Result, error) {
	seen := map[digest.Digest]bool{}
	return pull.Pull(ctx, named, pull.Options{
		Registry:  s.client.Load(),
		Content:   s.content,
		Snapshots: s.snaps,
		Platform:  platform,
		Progress: func(ev pull.Event) { // never called concurrently
			if !seen[ev.Digest] {
				seen[ev.Digest] = true
				lease.AddBlob(ev.Digest)
			}
			rep.Report(progress.Event{ID: ev.ID, Status: string(ev.Status), Current: ev.Current, Total: ev.Total, Err: ev.Err})
		},
	})
}

// protect adds everything res consists of to lease and checks that it is
// all there: a collection that ran before the lease held an item has
// deleted it, and the pull must be repeated. It returns what is missing.
func (s *Service) protect(ctx context.Context, lease *gc.Lease, res pull.Result) error {
	blobs := []ocispec.Descriptor{res.Manifest, res.Config}
	if res.Index != nil {
		blobs = append(blobs, *res.Index)
	}
	blobs = append(blobs, res.Layers...)
	for _, b := range blobs {
		lease.AddBlob(b.Digest)
	}
	if res.ChainID != "" {
		lease.AddSnapshot(res.ChainID.String())
	}
	// Layer blobs of chains that existed before are not fetched again, so
	// only the metadata blobs must be present.
	for _, b := range blobs[:len(blobs)-len(res.Layers)] {
		if _, err := s.content.Info(ctx, b.Digest); err != nil {
			return fmt.Errorf("blob %s: %w", b.Digest, err)
		}
	}
	if res.ChainID != "" {
		if _, err := s.snaps.Stat(ctx, res.ChainID.String()); err != nil {
			return fmt.Errorf("snapshot %s: %w", res.ChainID, err)
		}
	}
	return nil
}

// layerSizes returns the uncompressed size of every layer of res, as Docker
// shows them: from the label on the layer's committed snapshot
// (snapshot.LabelLayerSize, which pull, load and import set), or else (a
// layer unpacked without it) by decompressing the layer blob once and
// labelling the snapshot with the result.
func (s *Service) layerSizes(ctx context.Context, res pull.Result) ([]int64, error) {
	chains := pull.ChainIDs(res.DiffIDs)
	sizes := make([]int64, len(chains))
	errs := make([]error, len(chains))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, chain := range chains {
		info, err := s.snaps.Stat(ctx, chain.String())
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if n, err := strconv.ParseInt(info.Labels[archive.LabelLayerSize], 10, 64); err == nil {
			sizes[i] = n
			continue
		}
		if i >= len(res.Layers) {
			continue
		}
		desc := res.Layers[i]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			n, err := s.uncompressedSize(ctx, desc)
			if errdefs.IsNotFound(err) {
				return // blob not kept (its chain was unpacked before): size unknown
			}
			if err != nil {
				errs[i] = fmt.Errorf("layer %d (%s): size: %w", i, desc.Digest, err)
				return
			}
			sizes[i] = n
			_, errs[i] = s.snaps.Update(ctx, snapshot.Info{Name: chain.String(), Labels: map[string]string{archive.LabelLayerSize: strconv.FormatInt(n, 10)}}, "labels."+archive.LabelLayerSize)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return sizes, nil
}

// uncompressedSize decompresses the layer blob desc and counts its bytes.
func (s *Service) uncompressedSize(ctx context.Context, desc ocispec.Descriptor) (int64, error) {
	ra, err := s.content.ReaderAt(ctx, desc)
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	dr, _, err := compression.DecompressStream(content.NewReader(ra))
	if err != nil {
		return 0, err
	}
	defer dr.Close()
	return io.Copy(io.Discard, compression.NewLimitReader(dr, pull.DefaultMaxLayerSize))
}

// familiarPath is the repository as Docker's pull message names it:
// "library/busybox" for Docker Hub, the path otherwise.
func familiarPath(n reference.Named) string { return n.Path() }
