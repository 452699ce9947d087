package service

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// Networks is what the service needs of the network side: it records a
// container's network wishes at create, builds its network namespace at
// every start and takes it down at every exit, and forgets the
// container at removal.
type Networks interface {
	// Register checks and records the networks container id joins.
	// ccfg gives the exposed ports (for -P) and the hostname (a DNS
	// name on user networks).
	Register(id, name string, ccfg *container.Config, hc *container.HostConfig, cfg *network.NetworkingConfig) error
	// Setup builds the container's namespace and endpoints and returns
	// the namespace file ("" for the host's) and its addresses.
	Setup(id string) (NetworkSetup, error)
	// Teardown undoes Setup (a no-op when there is nothing to undo).
	Teardown(id string) error
	// Forget drops the container's records (at removal).
	Forget(id string) error
	// HostGateway is the default bridge's gateway address (invalid
	// without a default bridge): what --add-host NAME:host-gateway names.
	HostGateway() netip.Addr
	// Registered reports whether Register recorded the container (never
	// for --network container:<id>, which has nothing to record).
	Registered(id string) bool
	// SandboxKey is the namespace file of a running container ("" if
	// none): what --network container:<id> joins.
	SandboxKey(id string) string
	// BridgeAddresses are a running container's IPv4 and IPv6 addresses
	// on the default bridge (invalid when it has none): what a legacy
	// link to it names.
	BridgeAddresses(id string) (netip.Addr, netip.Addr)
	// Addresses are a running container's addresses on all its
	// networks, in interface order (what its /etc/hosts names).
	Addresses(id string) []netip.Addr
}

// NetworkSetup is a container's network at start.
type NetworkSetup struct {
	NetNS     string
	Addresses []netip.Addr
	// EmbeddedDNS: the container's resolv.conf names the embedded DNS.
	EmbeddedDNS bool
	// Peer is the container whose network --network container:<id>
	// joins.
	Peer *spec.NetworkPeer
}

// networkSetup prepares rec's network before its spec is generated: its
// own sandbox, or, with --network container:<id>, the namespace of that
// running container.
func (s *Service) networkSetup(ctx context.Context, rec *store.Container) (NetworkSetup, error) {
	if s.opts.Networks == nil {
		return NetworkSetup{}, nil
	}
	if ref, ok := strings.CutPrefix(string(rec.HostConfig.NetworkMode), "container:"); ok {
		other, err := s.store.Get(ref)
		if err != nil {
			return NetworkSetup{}, err
		}
		if other.ID == rec.ID {
			return NetworkSetup{}, fmt.Errorf("cannot join own network namespace: %w", errdefs.ErrInvalidArgument)
		}
		key := ""
		if other.State.Running && !other.State.Restarting {
			key = s.opts.Networks.SandboxKey(other.ID)
		}
		if key == "" {
			return NetworkSetup{}, fmt.Errorf("cannot join network namespace of a non running container: %s: %w", other.ID, errdefs.ErrConflict)
		}
		peer := &spec.NetworkPeer{Dir: s.store.Dir(other.ID), Hostname: other.Config.Hostname, Domainname: other.Config.Domainname}
		return NetworkSetup{NetNS: key, Peer: peer}, nil
	}
	return s.opts.Networks.Setup(rec.ID)
}

// networkTeardown undoes networkSetup.
func (s *Service) networkTeardown(id string) {
	if s.opts.Networks == nil {
		return
	}
	if err := s.opts.Networks.Teardown(id); err != nil {
		s.opts.Logf("container %s: network teardown: %v", id, err)
	}
}

// hostGateway is what --add-host NAME:host-gateway names.
func (s *Service) hostGateway() netip.Addr {
	if s.opts.Networks == nil {
		return netip.Addr{}
	}
	return s.opts.Networks.HostGateway()
}

// networkRegister records rec's network wishes at create.
func (s *Service) networkRegister(rec *store.Container, cfg *network.NetworkingConfig) error {
	if s.opts.Networks == nil {
		return nil
	}
	cfg, err := s.resolveLinks(rec, cfg)
	if err != nil {
		return err
	}
	return s.opts.Networks.Register(rec.ID, rec.Name, rec.Config, rec.HostConfig, cfg)
}

// networkForget drops rec's network records at removal.
func (s *Service) networkForget(id string) {
	if s.opts.Networks == nil {
		return
	}
	if err := s.opts.Networks.Forget(id); err != nil {
		s.opts.Logf("container %s: network: %v", id, err)
	}
}
