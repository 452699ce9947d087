package service

import (
	"fmt"
	"path"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// parseLink splits a --link value: "name:alias", "name" (the alias is
// the name), or the recorded "/name:/container/alias".
func parseLink(l string) (name, alias string, err error) {
	name, alias, _ = strings.Cut(l, ":")
	name = strings.TrimPrefix(name, "/")
	if alias == "" {
		alias = name
	}
	alias = path.Base(alias)
	if name == "" || alias == "" || alias == "." || alias == "/" {
		return "", "", fmt.Errorf("invalid link %q: %w", l, errdefs.ErrInvalidArgument)
	}
	return name, alias, nil
}

// defaultBridgeMode says whether mode is the default bridge network.
func defaultBridgeMode(mode container.NetworkMode) bool {
	return mode == "" || mode == network.NetworkDefault || mode == network.NetworkBridge
}

// resolveLinks checks and records rec's --link values at create, as
// dockerd: on the default bridge each must name an existing container
// not on the host's network, recorded as "/name:/container/alias"; on a
// user-defined network a link is an alias of the named container that
// only rec resolves (the endpoint's Links, as the docker CLI also
// sends them), and HostConfig.Links stays empty.
func (s *Service) resolveLinks(rec *store.Container, cfg *network.NetworkingConfig) (*network.NetworkingConfig, error) {
	hc := rec.HostConfig
	if len(hc.Links) == 0 {
		return cfg, nil
	}
	mode := hc.NetworkMode
	switch {
	case mode.IsHost():
		return nil, fmt.Errorf("conflicting options: host type networking can't be used with links. This would result in undefined behavior: %w", errdefs.ErrInvalidArgument)
	case mode.IsContainer():
		return nil, fmt.Errorf("conflicting options: container type network can't be used with links. This would result in undefined behavior: %w", errdefs.ErrInvalidArgument)
	case mode.IsNone():
		return nil, fmt.Errorf("conflicting options: none type network can't be used with links: %w", errdefs.ErrInvalidArgument)
	}
	var links []string
	for _, l := range hc.Links {
		name, alias, err := parseLink(l)
		if err != nil {
			return nil, err
		}
		if !defaultBridgeMode(mode) {
			links = append(links, name+":"+alias)
			continue
		}
		child, err := s.store.Get(name)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("could not get container for %s: No such container: %s: %w", name, name, errdefs.ErrInvalidArgument)
			}
			return nil, err
		}
		if child.HostConfig.NetworkMode.IsHost() {
			return nil, fmt.Errorf("conflicting options: host type networking can't be used with links. This would result in undefined behavior: %w", errdefs.ErrInvalidArgument)
		}
		links = append(links, child.Name+":"+rec.Name+"/"+alias)
	}
	if defaultBridgeMode(mode) {
		hc.Links = links
	} else {
		if cfg == nil {
			cfg = &network.NetworkingConfig{}
		}
		if cfg.EndpointsConfig == nil {
			cfg.EndpointsConfig = map[string]*network.EndpointSettings{}
		}
		es := cfg.EndpointsConfig[string(mode)]
		if es == nil {
			es = &network.EndpointSettings{}
			cfg.EndpointsConfig[string(mode)] = es
		}
		for _, l := range links {
			if !containsString(es.Links, l) {
				es.Links = append(es.Links, l)
			}
		}
		hc.Links = nil
	}
	_, err := s.store.Update(rec.ID, func(c *store.Container) error {
		c.HostConfig.Links = hc.Links
		return nil
	})
	return cfg, err
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// linkInputs are rec's legacy links at start: each linked container must
// run; its addresses on the default bridge, hostname, exposed ports and
// environment go into rec's /etc/hosts and environment.
func (s *Service) linkInputs(rec *store.Container) ([]spec.Link, error) {
	if len(rec.HostConfig.Links) == 0 || !defaultBridgeMode(rec.HostConfig.NetworkMode) || s.opts.Networks == nil {
		return nil, nil
	}
	var out []spec.Link
	for _, l := range rec.HostConfig.Links {
		name, _, err := parseLink(l)
		if err != nil {
			return nil, err
		}
		_, linkName, _ := strings.Cut(l, ":")
		child, err := s.store.Get(name)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("could not get container for %s: No such container: %s: %w", name, name, errdefs.ErrInvalidArgument)
			}
			return nil, err
		}
		if !child.State.Running {
			return nil, fmt.Errorf("Cannot link to a non running container: %s AS %s: %w", child.Name, linkName, errdefs.ErrConflict)
		}
		ip, ip6 := s.opts.Networks.BridgeAddresses(child.ID)
		out = append(out, spec.Link{
			Name: linkName, ContainerName: strings.TrimPrefix(child.Name, "/"), Hostname: child.Config.Hostname,
			IP: ip, IP6: ip6, ExposedPorts: child.Config.ExposedPorts, Env: child.Config.Env,
		})
	}
	return out, nil
}
