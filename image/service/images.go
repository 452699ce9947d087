package service

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/image"

	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
)

// List is `docker images`: the images, newest first, filtered by opts.
func (s *Service) List(ctx context.Context, opts store.ListOptions) ([]store.Image, error) {
	return s.images.List(ctx, opts)
}

// Get finds the image refOrID (a name, an ID or an ID prefix).
func (s *Service) Get(ctx context.Context, refOrID string) (store.Image, error) {
	return s.images.Get(ctx, refOrID)
}

// Inspect is `docker image inspect`, in Docker's ImageInspect shape.
func (s *Service) Inspect(ctx context.Context, refOrID string) (image.InspectResponse, error) {
	return s.images.Inspect(ctx, refOrID)
}

// History is `docker history`, newest first.
func (s *Service) History(ctx context.Context, refOrID string) ([]image.HistoryResponseItem, error) {
	return s.images.History(ctx, refOrID)
}

// Tag is `docker tag`: it points target (a name) at the image source.
func (s *Service) Tag(ctx context.Context, source, target string) error {
	named, err := reference.Parse(target)
	if err != nil {
		return err
	}
	return s.images.Tag(ctx, source, named)
}

// Remove is `docker rmi`: it untags and deletes as Docker does (see
// store.Store.Remove), then collects the blobs and snapshots no image
// references any more. It returns Docker's Untagged/Deleted lines; when the
// records changed but the collection failed, the lines come with the error.
func (s *Service) Remove(ctx context.Context, refOrID string, force bool) ([]image.DeleteResponse, error) {
	lines, err := s.images.Remove(ctx, refOrID, store.RemoveOptions{Force: force})
	if err != nil {
		return nil, err
	}
	if _, err := s.gc.Collect(ctx); err != nil {
		return lines, fmt.Errorf("garbage collection after removing %s: %w", refOrID, err)
	}
	return lines, nil
}

// Prune is `docker image prune`: it deletes the dangling images no
// container uses, then collects their blobs and snapshots.
func (s *Service) Prune(ctx context.Context) (image.PruneReport, error) {
	rep, err := s.images.Prune(ctx)
	if err != nil {
		return rep, err
	}
	if _, err := s.gc.Collect(ctx); err != nil {
		return rep, fmt.Errorf("garbage collection after prune: %w", err)
	}
	return rep, nil
}

// Save is `docker save`: it writes the images refs name to w in format
// (archive.DockerArchive or archive.OCILayout).
func (s *Service) Save(ctx context.Context, w io.Writer, refs []string, format archive.Format) error {
	if len(refs) == 0 {
		return errors.New("save: no image given")
	}
	return s.archiver.Save(ctx, w, refs, format)
}

// Load is `docker load` of a docker-archive or OCI layout tar. It returns
// Docker's "Loaded image: ..." lines.
func (s *Service) Load(ctx context.Context, r io.Reader) ([]string, error) {
	return s.archiver.Load(ctx, r, archive.LoadOptions{})
}

// Import is `docker import`: the root filesystem tarball r becomes a
// one-layer image, named ref when ref is not "", with the Dockerfile
// instructions changes applied to its config.
func (s *Service) Import(ctx context.Context, r io.Reader, ref string, changes []string) (store.Image, error) {
	opts := archive.ImportOptions{Changes: changes}
	if ref != "" {
		named, err := reference.Parse(ref)
		if err != nil {
			return store.Image{}, err
		}
		opts.Name = named
	}
	return s.archiver.Import(ctx, r, opts)
}
