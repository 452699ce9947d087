package service

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
)

// LabelImage is the label a container snapshot carries: the ID of the image
// it was prepared from.
const LabelImage = "berth.dev/image"

// RootfsMounts prepares the writable snapshot containerKey on top of the
// layers of the image imageRef and returns its mounts: what a runtime
// bundle mounts as its rootfs (MountAll, first at the bottom). The
// snapshot lives until RemoveContainerSnapshot; while it does, the image's
// layers are never collected. opts go to the snapshotter's Prepare.
func (s *Service) RootfsMounts(ctx context.Context, imageRef, containerKey string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	img, err := s.images.Get(ctx, imageRef)
	if err != nil {
		return nil, err
	}
	// The lease keeps the chain from a collection between Get and Prepare
	// (an rmi racing with the create); once prepared, the active snapshot
	// keeps its parents itself.
	lease := s.gc.NewLease()
	defer lease.Release()
	parent := ""
	if img.ChainID != "" {
		parent = img.ChainID.String()
		lease.AddSnapshot(parent)
	}
	opts = append(opts, snapshot.WithLabels(map[string]string{LabelImage: img.ID.String()}))
	mounts, err := s.snaps.Prepare(ctx, containerKey, parent, opts...)
	if err != nil {
		return nil, fmt.Errorf("prepare container snapshot %q on image %s: %w", containerKey, img.ID, err)
	}
	return mounts, nil
}

// ContainerMounts returns the mounts of the existing container snapshot
// key (after a daemon restart).
func (s *Service) ContainerMounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	return s.snaps.Mounts(ctx, key)
}

// RemoveContainerSnapshot deletes the container snapshot key (which must be
// unmounted). The image layers below it stay while an image references
// them.
func (s *Service) RemoveContainerSnapshot(ctx context.Context, key string) error {
	info, err := s.snaps.Stat(ctx, key)
	if err != nil {
		return err
	}
	if info.Kind == snapshot.KindCommitted {
		return fmt.Errorf("snapshot %q is an image layer, not a container snapshot: %w", key, errdefs.ErrInvalidArgument)
	}
	return s.snaps.Remove(ctx, key)
}

// ContainerSnapshots lists the keys of the container snapshots (those
// RootfsMounts prepared).
func (s *Service) ContainerSnapshots(ctx context.Context) ([]string, error) {
	var keys []string
	err := s.snaps.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
		if info.Kind == snapshot.KindActive && info.Labels[LabelImage] != "" {
			keys = append(keys, info.Name)
		}
		return nil
	})
	return keys, err
}
