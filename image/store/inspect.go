package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
)

// Inspect is `docker image inspect`: Docker's ImageInspect JSON shape for
// the image refOrID, from its record and config.
func (s *Store) Inspect(ctx context.Context, refOrID string) (image.InspectResponse, error) {
	img, err := s.Get(ctx, refOrID)
	if err != nil {
		return image.InspectResponse{}, err
	}
	var cfg dockerspec.DockerOCIImage
	if _, err := ReadJSON(ctx, s.cs, img.Config, &cfg); err != nil {
		return image.InspectResponse{}, fmt.Errorf("inspect %s: config: %w", refOrID, err)
	}
	resp := image.InspectResponse{
		ID:           img.ID.String(),
		RepoTags:     img.RepoTags(),
		RepoDigests:  img.RepoDigests(),
		Author:       cfg.Author,
		Config:       &cfg.Config,
		Architecture: cfg.Architecture,
		Variant:      cfg.Variant,
		Os:           cfg.OS,
		OsVersion:    cfg.OSVersion,
		Size:         img.Size,
		RootFS:       image.RootFS{Type: cfg.RootFS.Type, Layers: []string{}},
		Metadata:     image.Metadata{LastTagTime: img.LastTagTime},
	}
	if cfg.Created != nil {
		resp.Created = cfg.Created.Format(time.RFC3339Nano)
	}
	if len(cfg.History) > 0 {
		resp.Comment = cfg.History[len(cfg.History)-1].Comment
	}
	for _, d := range cfg.RootFS.DiffIDs {
		resp.RootFS.Layers = append(resp.RootFS.Layers, d.String())
	}
	return resp, nil
}

// History is `docker history`: one item per entry of the config's history,
// newest first. Entries that made a layer carry that layer's size; empty
// ones (ENV, CMD, ...) are 0. The newest item carries the image ID and its
// tags; older ones are "<missing>" (their intermediate images are not
// local), as Docker shows pulled images.
func (s *Store) History(ctx context.Context, refOrID string) ([]image.HistoryResponseItem, error) {
	img, err := s.Get(ctx, refOrID)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if _, err := ReadJSON(ctx, s.cs, img.Config, &cfg); err != nil {
		return nil, fmt.Errorf("history %s: config: %w", refOrID, err)
	}
	out := []image.HistoryResponseItem{}
	layer := 0
	for _, h := range cfg.History {
		var size int64
		if !h.EmptyLayer {
			if layer >= len(cfg.RootFS.DiffIDs) {
				return nil, fmt.Errorf("history %s: more non-empty history entries than the %d layers: %w", refOrID, len(cfg.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
			}
			if layer < len(img.LayerSizes) {
				size = img.LayerSizes[layer]
			}
			layer++
		}
		item := image.HistoryResponseItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, Size: size}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		out = append([]image.HistoryResponseItem{item}, out...)
	}
	if len(out) > 0 {
		out[0].ID = img.ID.String()
		out[0].Tags = img.RepoTags()
	}
	return out, nil
}

// ConfigBytes returns the raw config blob of the image refOrID.
func (s *Store) ConfigBytes(ctx context.Context, img Image) ([]byte, error) {
	var v json.RawMessage
	b, err := ReadJSON(ctx, s.cs, img.Config, &v)
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(b) != img.ID {
		return nil, fmt.Errorf("config of %s does not match its digest: %w", img.ID, errdefs.ErrFailedPrecondition)
	}
	return b, nil
}
