package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/moby/moby/api/types/container"
	eventtypes "github.com/moby/moby/api/types/events"
	mnetwork "github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/api/server"
	cservice "github.com/berth-dev/berth/container/service"
	"github.com/berth-dev/berth/daemon/events"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/network/sockredirect"
)

// openNetworks opens the network manager: its state under the data root,
// namespace files under the exec root, the default bridge from --bridge
// and --bip.
func openNetworks(cfg Config, log *slog.Logger) (*network.Manager, error) {
	bridge := cfg.Bridge
	if bridge == "" {
		bridge = network.DefaultBridgeName(cfg.DataRoot, DefaultDataRoot)
	}
	redirect := openSocketRedirect(cfg, log)
	m, err := network.Open(network.Options{
		Root:     filepath.Join(cfg.DataRoot, "network"),
		ExecRoot: filepath.Join(cfg.ExecRoot, "netns"),
		Bridge:   bridge,
		BridgeIP: cfg.BridgeIP,
		Table:    network.TableName(cfg.DataRoot, DefaultDataRoot),

		FirewallBackend: cfg.FirewallBackend,
		BridgeIPv6:      cfg.IPv6,
		BridgeCIDRv6:    cfg.FixedCIDRv6,
		Logf:            func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
		Redirect:        redirect,
	})
	if err != nil {
		if redirect != nil {
			redirect.Close()
		}
		return nil, fmt.Errorf("open networks: %w", err)
	}
	return m, nil
}

// openSocketRedirect loads the published ports' fast path for the
// host's own connections unless --no-socket-redirect, and says once
// whether it runs: it is never needed for correctness (the DNAT rules
// carry every published port), so failing to load it is no error.
func openSocketRedirect(cfg Config, log *slog.Logger) *sockredirect.Redirector {
	if cfg.NoSocketRedirect {
		log.Info("socket redirect of published ports: off (--no-socket-redirect); they use the NAT rules only")
		return nil
	}
	r, err := sockredirect.Open()
	if err != nil {
		log.Info("socket redirect of published ports: inactive; they use the NAT rules only", "reason", err.Error())
		return nil
	}
	log.Info(fmt.Sprintf("socket redirect of published ports: active (cgroup %s, program ids %v)", r.Cgroup, r.ProgramIDs()))
	return r
}

// containerNetworks adapts the network manager to what container/service
// needs of it, and sends dockerd's network connect and disconnect events
// when a container's endpoints come and go.
type containerNetworks struct {
	m   *network.Manager
	bus *events.Bus
}

// publish sends action for each network container id is on now.
func (c containerNetworks) publish(action eventtypes.Action, id string, nets map[string]*mnetwork.EndpointSettings) {
	if c.bus == nil {
		return
	}
	for name, es := range nets {
		// The host and none networks have no endpoint of ours, but
		// dockerd reports joining and leaving them too.
		if es == nil || es.EndpointID == "" && name != mnetwork.NetworkHost && name != mnetwork.NetworkNone {
			continue
		}
		typ := network.DriverBridge
		if n, err := c.m.Inspect(es.NetworkID); err == nil {
			typ = n.Driver
		}
		c.bus.Publish(eventtypes.NetworkEventType, action, eventtypes.Actor{ID: es.NetworkID,
			Attributes: map[string]string{"container": id, "name": name, "type": typ}})
	}
}

var _ cservice.Networks = containerNetworks{}

func (c containerNetworks) Register(id, name string, ccfg *container.Config, hc *container.HostConfig, cfg *mnetwork.NetworkingConfig) error {
	return c.m.Register(id, name, ccfg, hc, cfg)
}

func (c containerNetworks) Setup(id string) (cservice.NetworkSetup, error) {
	s, err := c.m.Setup(id)
	if err == nil {
		c.publish(eventtypes.ActionConnect, id, c.m.Settings(id).Networks)
	}
	return cservice.NetworkSetup{NetNS: s.NetNS, Addresses: s.Addresses, EmbeddedDNS: s.EmbeddedDNS}, err
}

func (c containerNetworks) Teardown(id string) error {
	if !c.m.HasSandbox(id) {
		return nil // taken down already (--rm tears down twice)
	}
	before := c.m.Settings(id).Networks
	err := c.m.Teardown(id)
	c.publish(eventtypes.ActionDisconnect, id, before)
	return err
}

func (c containerNetworks) Forget(id string) error { return c.m.Forget(id) }

func (c containerNetworks) Registered(id string) bool { return c.m.Registered(id) }

func (c containerNetworks) HostGateway() netip.Addr { return c.m.HostGateway() }

func (c containerNetworks) Addresses(id string) []netip.Addr { return c.m.Addresses(id) }

func (c containerNetworks) BridgeAddresses(id string) (netip.Addr, netip.Addr) {
	es := c.m.Settings(id).Networks[mnetwork.NetworkBridge]
	if es == nil {
		return netip.Addr{}, netip.Addr{}
	}
	return es.IPAddress, es.GlobalIPv6Address
}
func (c containerNetworks) SandboxKey(id string) string { return c.m.SandboxKey(id) }

// networksOf is the container service's view of e's networks (nil
// without a network manager).
func networksOf(e Engine) cservice.Networks {
	if e.Networks == nil {
		return nil
	}
	return containerNetworks{m: e.Networks, bus: e.Events}
}

// networkBackend serves the /networks routes from the network manager;
// containers are resolved by name or id through the container store.
type networkBackend struct {
	m   *network.Manager
	bus *events.Bus
	// lookup resolves a container reference to its id and name (nil:
	// no container side).
	lookup func(ref string) (id, name string, err error)
	// refreshHosts rewrites a running container's /etc/hosts after
	// connect and disconnect (nil: no container side).
	refreshHosts func(id string) error
}

// hostsChanged rewrites container id's /etc/hosts. Its failure fails
// the request: the network changed, but the container's names are
// stale, which the user must hear of.
func (b *networkBackend) hostsChanged(id string) error {
	if b.refreshHosts == nil {
		return nil
	}
	return b.refreshHosts(id)
}

var _ server.NetworkBackend = (*networkBackend)(nil)

func (b *networkBackend) publish(action eventtypes.Action, n mnetwork.Inspect, extra map[string]string) {
	attrs := map[string]string{"name": n.Name, "type": n.Driver}
	for k, v := range extra {
		attrs[k] = v
	}
	b.bus.Publish(eventtypes.NetworkEventType, action, eventtypes.Actor{ID: n.ID, Attributes: attrs})
}

func (b *networkBackend) NetworkList(ctx context.Context) ([]mnetwork.Inspect, error) {
	return b.m.List(), nil
}

func (b *networkBackend) NetworkInspect(ctx context.Context, ref string) (mnetwork.Inspect, error) {
	return b.m.Inspect(ref)
}

func (b *networkBackend) NetworkCreate(ctx context.Context, req mnetwork.CreateRequest) (mnetwork.CreateResponse, error) {
	resp, err := b.m.Create(req)
	if err == nil {
		if n, err := b.m.Inspect(resp.ID); err == nil {
			b.publish(eventtypes.ActionCreate, n, nil)
		}
	}
	return resp, err
}

func (b *networkBackend) NetworkRemove(ctx context.Context, ref string) error {
	n, err := b.m.Inspect(ref)
	if err != nil {
		return err
	}
	if err := b.m.Remove(n.ID); err != nil {
		return err
	}
	b.publish(eventtypes.ActionDestroy, n, nil)
	return nil
}

func (b *networkBackend) container(ref string) (string, error) {
	if b.lookup == nil {
		return "", fmt.Errorf("no container engine: %w", errdefs.ErrNotImplemented)
	}
	id, _, err := b.lookup(ref)
	return id, err
}

func (b *networkBackend) NetworkConnect(ctx context.Context, ref, ctr string, es *mnetwork.EndpointSettings) error {
	return b.changeEndpoint(ref, ctr, eventtypes.ActionConnect, func(id, netID string) error {
		return b.m.Connect(id, netID, es)
	})
}

func (b *networkBackend) NetworkDisconnect(ctx context.Context, ref, ctr string, force bool) error {
	return b.changeEndpoint(ref, ctr, eventtypes.ActionDisconnect, func(id, netID string) error {
		return b.m.Disconnect(id, netID, force)
	})
}

// changeEndpoint resolves the network and the container, applies change,
// rewrites the container's /etc/hosts and publishes the event.
func (b *networkBackend) changeEndpoint(ref, ctr string, action eventtypes.Action, change func(id, netID string) error) error {
	id, err := b.container(ctr)
	if err != nil {
		return err
	}
	n, err := b.m.Inspect(ref)
	if err != nil {
		return err
	}
	if err := change(id, n.ID); err != nil {
		return err
	}
	if err := b.hostsChanged(id); err != nil {
		return err
	}
	b.publish(action, n, map[string]string{"container": id})
	return nil
}

func (b *networkBackend) NetworkPrune(ctx context.Context, keep func(mnetwork.Inspect) bool) (mnetwork.PruneReport, error) {
	var removed []mnetwork.Inspect
	names, err := b.m.Prune(func(n mnetwork.Inspect) bool {
		if keep(n) {
			removed = append(removed, n)
			return true
		}
		return false
	})
	for _, n := range removed {
		if slices.Contains(names, n.Name) {
			b.publish(eventtypes.ActionDestroy, n, nil)
		}
	}
	return mnetwork.PruneReport{NetworksDeleted: names}, err
}

// newNetworkBackend serves m, resolving containers through containers
// when it is berth's container side.
func newNetworkBackend(m *network.Manager, bus *events.Bus, containers server.ContainerBackend) *networkBackend {
	b := &networkBackend{m: m, bus: bus}
	if cb, ok := containers.(*containerBackend); ok {
		b.lookup = func(ref string) (string, string, error) {
			rec, err := cb.svc.Store().Get(ref)
			if err != nil {
				return "", "", err
			}
			return rec.ID, rec.Name, nil
		}
		b.refreshHosts = cb.svc.RefreshHosts
	}
	return b
}
