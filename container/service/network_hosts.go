package service

import (
	"fmt"
	"os"

	"github.com/berth-dev/berth/container/spec"
)

// RefreshHosts writes a running container's /etc/hosts again after its
// networks changed (network connect and disconnect), as dockerd adds and
// removes the lines of an endpoint's addresses. The file is bind-mounted
// into the container, so it is rewritten in place: a rename would leave
// the container the old file.
func (s *Service) RefreshHosts(id string) error {
	if s.opts.Networks == nil {
		return nil
	}
	rec, err := s.store.Get(id)
	if err != nil {
		return err
	}
	mode := rec.HostConfig.NetworkMode
	if !rec.State.Running || mode.IsHost() || mode.IsContainer() || rec.HostsPath == "" {
		return nil
	}
	// A link whose target has stopped since keeps no line, as the
	// address it named is gone.
	links, _ := s.linkInputs(rec)
	h := spec.Hosts{Hostname: rec.Config.Hostname, Domainname: rec.Config.Domainname, Addresses: s.opts.Networks.Addresses(rec.ID),
		ExtraHosts: rec.HostConfig.ExtraHosts, HostGateway: s.opts.Networks.HostGateway(), Links: links}
	b, err := h.Content()
	if err != nil {
		return err
	}
	if err := os.WriteFile(rec.HostsPath, b, 0o644); err != nil {
		return fmt.Errorf("container %s: update /etc/hosts: %w", rec.ID, err)
	}
	return nil
}
