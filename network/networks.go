package network

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network/ipam"
	"github.com/berth-dev/berth/network/link"
)

// validName is dockerd's rule for network names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Create makes a user-defined bridge network as `docker network create`
// asks: its pool (given or picked among the default pools), its bridge
// (br-<id> or com.docker.network.bridge.name) and firewall rules.
func (m *Manager) Create(req network.CreateRequest) (network.CreateResponse, error) {
	driver := req.Driver
	if driver == "" {
		driver = DriverBridge
	}
	if !validName.MatchString(req.Name) {
		return network.CreateResponse{}, fmt.Errorf("invalid network name %q, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", req.Name, errdefs.ErrInvalidArgument)
	}
	switch req.Name {
	case "bridge", "host", "none", "default":
		return network.CreateResponse{}, fmt.Errorf("%s is a pre-defined network and cannot be created: %w", req.Name, errdefs.ErrPermissionDenied)
	}
	if driver != DriverBridge {
		// dockerd's plugin store answers for an unknown driver.
		return network.CreateResponse{}, fmt.Errorf("plugin %q not found: %w", driver, errdefs.ErrNotFound)
	}
	enable6 := req.EnableIPv6 != nil && *req.EnableIPv6
	if req.EnableIPv4 != nil && !*req.EnableIPv4 {
		return network.CreateResponse{}, fmt.Errorf("network %s: --ipv4=false (IPv6-only networks): %w", req.Name, errdefs.ErrNotImplemented)
	}
	if req.ConfigOnly || req.ConfigFrom != nil || req.Ingress || req.Scope == "swarm" {
		return network.CreateResponse{}, fmt.Errorf("network %s: config-only, swarm and ingress networks: %w", req.Name, errdefs.ErrNotImplemented)
	}
	opts := maps.Clone(req.Options)
	if opts == nil {
		opts = map[string]string{}
	}
	for k := range opts {
		switch k {
		case OptBridgeName, OptEnableICC, OptMasquerade, OptMTU, OptHostBindingV4:
		default:
			if strings.HasPrefix(k, "com.docker.network.") {
				return network.CreateResponse{}, fmt.Errorf("network option %s is not supported by berth: %w", k, errdefs.ErrNotImplemented)
			}
		}
	}
	var subnet, ipRange, subnet6, ipRange6 netip.Prefix
	var gw, gw6 netip.Addr
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return network.CreateResponse{}, fmt.Errorf("IPAM driver %s: only the default one exists: %w", req.IPAM.Driver, errdefs.ErrNotFound)
		}
		var seen4, seen6 bool
		for _, c := range req.IPAM.Config {
			if !c.Subnet.IsValid() && (c.IPRange.IsValid() || c.Gateway.IsValid()) {
				return network.CreateResponse{}, fmt.Errorf("ip-range and gateway need a subnet: %w", errdefs.ErrInvalidArgument)
			}
			if len(c.AuxAddress) > 0 {
				return network.CreateResponse{}, fmt.Errorf("auxiliary addresses: %w", errdefs.ErrNotImplemented)
			}
			if !c.Subnet.IsValid() {
				continue
			}
			if c.Subnet.Addr().Is4() {
				if seen4 {
					return network.CreateResponse{}, fmt.Errorf("network %s: more than one IPv4 subnet: %w", req.Name, errdefs.ErrNotImplemented)
				}
				seen4, subnet, ipRange, gw = true, c.Subnet, c.IPRange, c.Gateway
				continue
			}
			if seen6 {
				return network.CreateResponse{}, fmt.Errorf("network %s: more than one IPv6 subnet: %w", req.Name, errdefs.ErrNotImplemented)
			}
			seen6, subnet6, ipRange6, gw6 = true, c.Subnet, c.IPRange, c.Gateway
		}
	}
	v4Given := subnet.IsValid()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byNameLocked(req.Name) != nil {
		return network.CreateResponse{}, fmt.Errorf("network with name %s already exists: %w", req.Name, errdefs.ErrConflict)
	}
	id := newID()
	bridge := opts[OptBridgeName]
	if bridge == "" {
		bridge = "br-" + id[:12]
	} else if len(bridge) > 15 {
		return network.CreateResponse{}, fmt.Errorf("bridge name %q is longer than 15 characters: %w", bridge, errdefs.ErrInvalidArgument)
	}
	for _, n := range m.st.Networks {
		if n.Bridge == bridge {
			return network.CreateResponse{}, fmt.Errorf("bridge name %s is in use by network %s: %w", bridge, n.Name, errdefs.ErrConflict)
		}
	}
	unlock, err := hostLock()
	if err != nil {
		return network.CreateResponse{}, err
	}
	defer unlock()
	if subnet.IsValid() {
		if err := m.checkFreeLocked(subnet); err != nil {
			return network.CreateResponse{}, err
		}
	} else if subnet, err = m.freeSubnetLocked(); err != nil {
		return network.CreateResponse{}, err
	}
	pool, err := ipam.NewPool(subnet, ipRange, gw)
	if err != nil {
		return network.CreateResponse{}, err
	}
	var pool6 *ipam.Pool
	var unused6 *network.IPAMConfig
	if enable6 {
		if pool6, err = m.pool6Locked(subnet6, ipRange6, gw6); err != nil {
			return network.CreateResponse{}, err
		}
	} else if subnet6.IsValid() {
		// As dockerd 28: an IPv6 subnet without --ipv6 is kept in the
		// config, and no container gets an address from it.
		unused6 = &network.IPAMConfig{Subnet: subnet6, IPRange: ipRange6, Gateway: gw6}
	}
	n := &Network{
		ID: id, Name: req.Name, Driver: DriverBridge, Created: time.Now().UTC(),
		Internal: req.Internal, Bridge: bridge, Options: opts, Labels: maps.Clone(req.Labels),
		Pool: pool, IPAMConfigured: v4Given,
		EnableIPv6: enable6, Pool6: pool6, IPAM6Configured: enable6 && subnet6.IsValid(), IPAM6Unused: unused6,
		NoGateway4: v4Given && !gw.IsValid(), NoGateway6: subnet6.IsValid() && !gw6.IsValid(),
	}
	if req.IPAM != nil {
		n.IPAMOptions = maps.Clone(req.IPAM.Options)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if err := link.EnsureBridge(bridge, pool.Gateway, pool.Subnet); err != nil {
		return network.CreateResponse{}, err
	}
	if pool6 != nil {
		if err := link.EnsureBridgeIPv6(bridge, pool6.Gateway, pool6.Subnet); err != nil {
			link.DeleteBridge(bridge)
			return network.CreateResponse{}, err
		}
	}
	m.st.Networks[id] = n
	if err := m.firewallLocked(); err != nil {
		delete(m.st.Networks, id)
		link.DeleteBridge(bridge)
		m.firewallLocked()
		return network.CreateResponse{}, err
	}
	if err := m.save(); err != nil {
		return network.CreateResponse{}, err
	}
	return network.CreateResponse{ID: id}, nil
}

// checkFreeLocked refuses a subnet another network or a host route uses.
func (m *Manager) checkFreeLocked(p netip.Prefix) error {
	for _, n := range m.st.Networks {
		if n.Pool != nil && n.Pool.Subnet.Overlaps(p) {
			return fmt.Errorf("invalid pool request: Pool overlaps with other one on this address space: %w", errdefs.ErrConflict)
		}
	}
	routes, err := link.HostPrefixes()
	if err != nil {
		return err
	}
	for _, r := range routes {
		if r.Overlaps(p) {
			return fmt.Errorf("invalid pool request: Pool overlaps with other one on this address space (host route %s): %w", r, errdefs.ErrConflict)
		}
	}
	return nil
}

// Remove deletes a user-defined network no container uses.
func (m *Manager) Remove(ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findLocked(ref)
	if err != nil {
		return err
	}
	return m.removeLocked(n)
}

func (m *Manager) removeLocked(n *Network) error {
	if n.Name == "bridge" || n.Name == "host" || n.Name == "none" {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed: %w", n.Name, errdefs.ErrPermissionDenied)
	}
	if m.inUseLocked(n.ID) {
		return fmt.Errorf("error while removing network: network %s has active endpoints: %w", n.Name, errdefs.ErrPermissionDenied)
	}
	// Stopped containers that would join it keep their wish, as in
	// dockerd they fail to start; drop it so they start without it.
	for _, r := range m.st.Requests {
		delete(r.Networks, n.ID)
	}
	delete(m.st.Networks, n.ID)
	err := link.DeleteBridge(n.Bridge)
	return joinErrs([]error{err, m.firewallLocked(), m.save()})
}

// Prune removes the user-defined networks no container uses and that
// pass keep; it returns their names.
func (m *Manager) Prune(keep func(network.Inspect) bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, n := range m.sortedLocked() {
		if n.Name == "bridge" || n.Name == "host" || n.Name == "none" || m.usedLocked(n.ID) {
			continue
		}
		if !keep(m.inspectLocked(n)) {
			continue
		}
		if err := m.removeLocked(n); err != nil {
			return out, err
		}
		out = append(out, n.Name)
	}
	return out, nil
}

// usedLocked says whether any container (running or not) asks for n.
func (m *Manager) usedLocked(id string) bool {
	for _, r := range m.st.Requests {
		if _, ok := r.Networks[id]; ok {
			return true
		}
	}
	return m.inUseLocked(id)
}

// List is every network as GET /networks shows it.
func (m *Manager) List() []network.Inspect {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []network.Inspect
	for _, n := range m.sortedLocked() {
		out = append(out, m.inspectLocked(n))
	}
	return out
}

// Inspect is network ref as GET /networks/{id} shows it.
func (m *Manager) Inspect(ref string) (network.Inspect, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findLocked(ref)
	if err != nil {
		return network.Inspect{}, err
	}
	return m.inspectLocked(n), nil
}

func (m *Manager) inspectLocked(n *Network) network.Inspect {
	out := network.Inspect{
		Network: network.Network{
			Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
			EnableIPv4: n.Driver == DriverBridge, Internal: n.Internal,
			IPAM:    network.IPAM{Driver: "default", Options: maps.Clone(n.IPAMOptions), Config: []network.IPAMConfig{}},
			Options: maps.Clone(n.Options), Labels: maps.Clone(n.Labels),
		},
		Containers: map[string]network.EndpointResource{},
	}
	// As dockerd's buildIPAMResources: the configs the user gave, as
	// given, then the pools the daemon picked for the other families.
	config := func(p *ipam.Pool, noGateway bool) network.IPAMConfig {
		c := network.IPAMConfig{Subnet: p.Subnet, Gateway: p.Gateway}
		if noGateway {
			c.Gateway = netip.Addr{}
		}
		if p.Range != p.Subnet {
			c.IPRange = p.Range
		}
		return c
	}
	if n.Pool != nil && n.IPAMConfigured {
		out.IPAM.Config = append(out.IPAM.Config, config(n.Pool, n.NoGateway4))
	}
	if n.Pool6 != nil && n.IPAM6Configured {
		out.IPAM.Config = append(out.IPAM.Config, config(n.Pool6, n.NoGateway6))
	}
	if n.IPAM6Unused != nil {
		out.IPAM.Config = append(out.IPAM.Config, *n.IPAM6Unused)
	}
	if n.Pool != nil && !n.IPAMConfigured {
		out.IPAM.Config = append(out.IPAM.Config, config(n.Pool, false))
	}
	if n.Pool6 != nil && !n.IPAM6Configured {
		out.IPAM.Config = append(out.IPAM.Config, config(n.Pool6, false))
	}
	out.EnableIPv6 = n.EnableIPv6
	for cid, sb := range m.st.Sandboxes {
		for _, ep := range sb.Endpoints {
			if ep.NetworkID != n.ID {
				continue
			}
			name := ""
			if r, ok := m.st.Requests[cid]; ok {
				name = r.Name
			}
			hw, _ := parseMAC(ep.MAC)
			er := network.EndpointResource{
				Name: name, EndpointID: ep.ID, MacAddress: hw,
				IPv4Address: netip.PrefixFrom(ep.IP, n.Pool.Subnet.Bits()),
			}
			if ep.IP6.IsValid() && n.Pool6 != nil {
				er.IPv6Address = netip.PrefixFrom(ep.IP6, n.Pool6.Subnet.Bits())
			}
			out.Containers[cid] = er
		}
	}
	return out
}

// Connect joins container id to network ref: recorded for its next
// starts, and at once when it runs.
func (m *Manager) Connect(id, ref string, es *network.EndpointSettings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findLocked(ref)
	if err != nil {
		return err
	}
	req, ok := m.st.Requests[id]
	if !ok {
		return fmt.Errorf("container %s has no network configuration: %w", id, errdefs.ErrNotFound)
	}
	if err := m.checkConnectLocked(req, n); err != nil {
		return err
	}
	if _, ok := req.Networks[n.ID]; ok {
		return fmt.Errorf("endpoint with name %s already exists in network %s: %w", req.Name, n.Name, errdefs.ErrPermissionDenied)
	}
	er, err := endpointRequest(n, es)
	if err != nil {
		return err
	}
	req.Networks[n.ID] = er
	if sb, ok := m.st.Sandboxes[id]; ok && sb.Key != "" {
		if _, err := m.joinLocked(sb, n, req, fmt.Sprintf("eth%d", nextIf(sb))); err != nil {
			delete(req.Networks, n.ID)
			m.leaveLocked(sb, n.ID)
			m.save()
			return fmt.Errorf("connect to network %s: %w", n.Name, err)
		}
		m.refreshDNSLocked()
		if !m.dns.Serving(id) {
			if err := m.startDNSLocked(sb, req); err != nil {
				m.opts.Logf("%v", err)
			}
		}
	}
	return m.save()
}

// checkConnectLocked refuses joining n where dockerd's
// updateNetworkSettings does, with runconfig's messages: host networking
// mixes with nothing, and none with nothing else.
func (m *Manager) checkConnectLocked(req *Request, n *Network) error {
	if req.Mode != network.NetworkHost && n.Driver == DriverHost {
		return fmt.Errorf("container cannot be disconnected from host network or connected to host network: %w", errdefs.ErrInvalidArgument)
	}
	for id := range req.Networks {
		on, ok := m.st.Networks[id]
		if !ok || on.ID == n.ID {
			continue
		}
		if on.Driver == DriverHost || n.Driver == DriverHost {
			return fmt.Errorf("container sharing network namespace with another container or host cannot be connected to any other network: %w", errdefs.ErrInvalidArgument)
		}
		if on.Name == network.NetworkNone || n.Name == network.NetworkNone {
			return fmt.Errorf("container cannot be connected to multiple networks with one of the networks in private (none) mode: %w", errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// nextIf is the lowest free ethN index of sb.
func nextIf(sb *Sandbox) int {
	for i := 0; ; i++ {
		if !slices.ContainsFunc(sb.Endpoints, func(ep *Endpoint) bool { return ep.IfName == fmt.Sprintf("eth%d", i) }) {
			return i
		}
	}
}

// Disconnect takes container id off network ref.
func (m *Manager) Disconnect(id, ref string, force bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findLocked(ref)
	if err != nil {
		return err
	}
	req, ok := m.st.Requests[id]
	if !ok || req.Networks[n.ID] == nil {
		if force {
			return nil
		}
		return fmt.Errorf("container %s is not connected to network %s: %w", id, n.Name, errdefs.ErrPermissionDenied)
	}
	if n.Driver != DriverBridge {
		return fmt.Errorf("container cannot be disconnected from host network or connected to host network: %w", errdefs.ErrPermissionDenied)
	}
	delete(req.Networks, n.ID)
	var lerr error
	if sb, ok := m.st.Sandboxes[id]; ok {
		lerr = m.leaveLocked(sb, n.ID)
		m.refreshDNSLocked()
	}
	return joinErr(lerr, m.save())
}

// leaveLocked removes sb's endpoint on network nid.
func (m *Manager) leaveLocked(sb *Sandbox, nid string) error {
	var err error
	sb.Endpoints = slices.DeleteFunc(sb.Endpoints, func(ep *Endpoint) bool {
		if ep.NetworkID != nid {
			return false
		}
		err = link.DeleteLink(ep.HostVeth)
		if n, ok := m.st.Networks[nid]; ok && n.Pool != nil {
			n.Pool.Release(ep.IP)
			if n.Pool6 != nil && ep.IP6.IsValid() {
				n.Pool6.Release(ep.IP6)
			}
		}
		return true
	})
	return err
}

// OnNetwork says whether container id is on one of the networks refs
// (names, ids or id prefixes), as `ps --filter network=` asks.
func (m *Manager) OnNetwork(id string, refs []string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.st.Requests[id]
	if !ok {
		return false
	}
	for nid := range r.Networks {
		n, ok := m.st.Networks[nid]
		if !ok {
			continue
		}
		for _, ref := range refs {
			if ref == n.Name || (ref != "" && strings.HasPrefix(n.ID, ref)) {
				return true
			}
		}
	}
	return false
}
