package service

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/container/spec"
)

// applyResources gives a running container the limits of hc: the spec's
// resources for hc, through berth-runtime update.
func (s *Service) applyResources(ctx context.Context, id string, cfg *container.Config, hc *container.HostConfig) error {
	rec, err := s.store.Get(id)
	if err != nil {
		return err
	}
	imgCfg, err := s.imageConfig(ctx, rec.Image)
	if err != nil {
		return err
	}
	sp, err := spec.Generate(spec.Input{
		ID: id, Config: cfg, HostConfig: hc, Image: imgCfg,
		Rootfs: filepath.Join(s.bundleDir(id), "rootfs"), Dir: s.store.Dir(id),
		InitBinary: s.opts.Init, CgroupParent: s.opts.CgroupParent,
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(sp.Linux.Resources)
	if err != nil {
		return err
	}
	f := filepath.Join(s.bundleDir(id), "resources.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		return err
	}
	defer os.Remove(f)
	return s.runtime("update", "--resources", f, id)
}
