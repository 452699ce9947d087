package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/container/logs"
	"github.com/berth-dev/berth/container/names"
	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// CreateOptions are a create request.
type CreateOptions struct {
	// Name is "" for a generated one.
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
}

// Create makes a container: its record, with the image's config merged
// in as dockerd does, and its writable snapshot on the image. It returns
// the container's id and dockerd's warnings.
func (s *Service) Create(ctx context.Context, o CreateOptions) (string, []string, error) {
	cfg, hc := o.Config, o.HostConfig
	if cfg == nil {
		return "", nil, fmt.Errorf("config cannot be empty in order to create a container: %w", errdefs.ErrInvalidArgument)
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if cfg.Image == "" {
		return "", nil, fmt.Errorf("No command specified: %w", errdefs.ErrInvalidArgument)
	}
	img, err := s.opts.Images.Get(ctx, cfg.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", nil, fmt.Errorf("No such image: %s: %w", cfg.Image, errdefs.ErrNotFound)
		}
		return "", nil, err
	}
	imgCfg, err := s.imageConfig(ctx, img.ID.String())
	if err != nil {
		return "", nil, err
	}
	name := ""
	if o.Name != "" {
		if name, err = names.Validate(o.Name); err != nil {
			return "", nil, err
		}
	} else {
		name = "/" + names.Generate(func(n string) bool { return s.store.NameInUse("/" + n) })
	}
	if hc.LogConfig.Type != "" && hc.LogConfig.Type != "json-file" && hc.LogConfig.Type != "none" {
		return "", nil, fmt.Errorf("logger: no log driver named '%s' is registered: %w", hc.LogConfig.Type, errdefs.ErrInvalidArgument)
	}
	if _, err := logs.ParseOptions(hc.LogConfig.Config); err != nil {
		return "", nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}

	id := newID()
	spec.MergeImageConfig(cfg, imgCfg)
	spec.SetDefaults(id, cfg, hc)
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = "json-file"
	}
	if err := spec.Validate(cfg, hc); err != nil {
		return "", nil, err
	}
	args := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	rec := &store.Container{
		ID: id, Name: name, Created: now(),
		Path: args[0], Args: args[1:],
		Config: cfg, HostConfig: hc,
		Image:    img.ID.String(),
		Driver:   "overlay2",
		Platform: "linux",
	}
	if hc.LogConfig.Type == "json-file" {
		rec.LogPath = filepath.Join(s.store.Dir(id), id+"-json.log")
	}
	rec.HostsPath = filepath.Join(s.store.Dir(id), "hosts")
	rec.HostnamePath = filepath.Join(s.store.Dir(id), "hostname")
	rec.ResolvConfPath = filepath.Join(s.store.Dir(id), "resolv.conf")
	if _, err := s.opts.Images.RootfsMounts(ctx, img.ID.String(), id); err != nil {
		return "", nil, err
	}
	if err := s.store.Create(rec); err != nil {
		s.opts.Images.RemoveContainerSnapshot(context.WithoutCancel(ctx), id)
		return "", nil, err
	}
	s.publish(rec, events.ActionCreate, nil)
	return id, nil, nil
}

// imageConfig is the runtime part of image id's config.
func (s *Service) imageConfig(ctx context.Context, id string) (ocispec.ImageConfig, error) {
	insp, err := s.opts.Images.Inspect(ctx, id)
	if err != nil {
		return ocispec.ImageConfig{}, err
	}
	if insp.Config == nil {
		return ocispec.ImageConfig{}, nil
	}
	return insp.Config.ImageConfig, nil
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
