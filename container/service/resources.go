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
	// Only the resources: the rest of the spec (namespaces to join, files)
	// belongs to the start and must not be redone.
	res, err := spec.Resources(hc)
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
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
