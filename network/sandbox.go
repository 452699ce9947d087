package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network/link"
	"github.com/berth-dev/berth/network/netns"
)

// modeNetwork is the network a NetworkMode names: "default" and "" are
// the bridge network (none when there is no default bridge).
func (m *Manager) modeNetworkLocked(mode string) (*Network, error) {
	switch mode {
	case "", network.NetworkDefault:
		if n := m.byNameLocked(network.NetworkBridge); n != nil {
			return n, nil
		}
		return m.byNameLocked(network.NetworkNone), nil
	}
	return m.findLocked(mode)
}

// Register records what container id asks for at create: the network of
// its mode and the settings of NetworkingConfig's endpoints. It checks
// that the networks exist and that the settings fit them, with dockerd's
// messages.
func (m *Manager) Register(id, name string, ccfg *container.Config, hc *container.HostConfig, cfg *network.NetworkingConfig) error {
	ports, err := portRequests(hc, ccfg.ExposedPorts)
	if err != nil {
		return err
	}
	mode := string(hc.NetworkMode)
	if strings.HasPrefix(mode, "container:") {
		if cfg != nil && len(cfg.EndpointsConfig) > 0 {
			return fmt.Errorf("conflicting options: container type network can't be used with multiple networks: %w", errdefs.ErrInvalidArgument)
		}
		// Its other conflicts (ports, names, resolvers) are refused
		// before, with the request (spec.ValidateNetworkMode).
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	req := &Request{ContainerID: id, Name: strings.TrimPrefix(name, "/"), Hostname: ccfg.Hostname, Mode: mode, Networks: map[string]*EndpointRequest{}}
	for _, a := range hc.DNS {
		req.DNS = append(req.DNS, a.String())
	}
	if mode != network.NetworkHost {
		// As dockerd, host networking discards published ports.
		req.Ports = ports
		for p := range ccfg.ExposedPorts {
			req.Exposed = append(req.Exposed, p.String())
		}
		slices.Sort(req.Exposed)
	}
	// As dockerd, a network that does not exist fails the start, not
	// the create (a 404 at create would make clients pull the image).
	primary, err := m.modeNetworkLocked(mode)
	if errdefs.IsNotFound(err) {
		req.Missing = append(req.Missing, mode)
		m.st.Requests[id] = req
		return m.saveRequest(hc)
	}
	if err != nil {
		return err
	}
	req.Networks[primary.ID] = &EndpointRequest{}
	if cfg != nil {
		for ref, es := range cfg.EndpointsConfig {
			n, err := m.modeNetworkLocked(ref)
			if errdefs.IsNotFound(err) {
				req.Missing = append(req.Missing, ref)
				continue
			}
			if err != nil {
				return err
			}
			if n.ID != primary.ID && (primary.Driver != DriverBridge || n.Driver != DriverBridge) {
				return fmt.Errorf("container cannot be connected to network endpoints: %s, %s: %w", primary.Name, n.Name, errdefs.ErrInvalidArgument)
			}
			er, err := endpointRequest(n, es)
			if err != nil {
				return err
			}
			req.Networks[n.ID] = er
		}
	}
	m.st.Requests[id] = req
	return m.saveRequest(hc)
}

// saveRequest saves the state after a container's request was added:
// durably, unless the container goes with its run (--rm), whose request a
// reboot needs no more than the container (its record and rootfs are
// not synced either).
func (m *Manager) saveRequest(hc *container.HostConfig) error {
	if hc.AutoRemove {
		return m.saveUnsynced()
	}
	return m.save()
}

// endpointRequest checks an endpoint's settings against network n.
func endpointRequest(n *Network, es *network.EndpointSettings) (*EndpointRequest, error) {
	er := &EndpointRequest{}
	if es == nil {
		return er, nil
	}
	er.Aliases = slices.Clone(es.Aliases)
	if len(es.Links) > 0 && n.Name == network.NetworkBridge {
		// The default bridge's links are HostConfig.Links (legacy
		// links, the container side's), set at create only.
		return nil, fmt.Errorf("links are only supported for user-defined networks: %w", errdefs.ErrInvalidArgument)
	}
	if len(es.Links) > 0 {
		// A private alias of the linking container.
		for _, l := range es.Links {
			name, alias, _ := strings.Cut(l, ":")
			name = strings.TrimPrefix(name, "/")
			if alias == "" {
				alias = name
			}
			if name == "" {
				return nil, fmt.Errorf("invalid link %q: %w", l, errdefs.ErrInvalidArgument)
			}
			er.Links = append(er.Links, name+":"+alias[strings.LastIndex(alias, "/")+1:])
		}
	}
	if len(es.MacAddress) > 0 {
		er.MAC = net.HardwareAddr(es.MacAddress).String()
	}
	if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
		ip := es.IPAMConfig.IPv4Address
		if n.Driver != DriverBridge {
			return nil, fmt.Errorf("user specified IP address is supported only when connecting to networks with user configured subnets: %w", errdefs.ErrInvalidArgument)
		}
		if n.Name == network.NetworkBridge || !n.IPAMConfigured {
			return nil, fmt.Errorf("user specified IP address is supported only when connecting to networks with user configured subnets: %w", errdefs.ErrInvalidArgument)
		}
		if !n.Pool.Subnet.Contains(ip) {
			return nil, fmt.Errorf("no configured subnet or ip-range contain the IP address %s: %w", ip, errdefs.ErrInvalidArgument)
		}
		er.IPv4 = ip
	}
	if es.IPAMConfig != nil && es.IPAMConfig.IPv6Address.IsValid() {
		ip := es.IPAMConfig.IPv6Address
		if n.Driver != DriverBridge || n.Name == network.NetworkBridge || !n.IPAM6Configured {
			return nil, fmt.Errorf("user specified IP address is supported only when connecting to networks with user configured subnets: %w", errdefs.ErrInvalidArgument)
		}
		if !n.Pool6.Subnet.Contains(ip) {
			return nil, fmt.Errorf("no configured subnet or ip-range contain the IP address %s: %w", ip, errdefs.ErrInvalidArgument)
		}
		er.IPv6 = ip
	}
	if len(er.Aliases) > 0 && n.Name == network.NetworkBridge {
		return nil, fmt.Errorf("network-scoped aliases are only supported for user-defined networks: %w", errdefs.ErrInvalidArgument)
	}
	return er, nil
}

// Forget drops what container id asked for (at its removal), taking its
// sandbox down first if one is left.
func (m *Manager) Forget(id string) error {
	err := m.Teardown(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.st.Requests[id]; !ok {
		return err
	}
	delete(m.st.Requests, id)
	// Not synced: a removal is marked durably in the container's record
	// first, and restore repeats it, Forget included, after a power loss.
	return joinErr(err, m.saveUnsynced())
}

// Rename changes the name container id is known by (its DNS name).
func (m *Manager) Rename(id, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.st.Requests[id]; ok {
		r.Name = strings.TrimPrefix(name, "/")
		return m.save()
	}
	return nil
}

// Setup is a container's network at start.
type Setup struct {
	// NetNS is the namespace file for the OCI spec ("" for the host's).
	NetNS string
	// Addresses are the container's addresses, for its /etc/hosts.
	Addresses []netip.Addr
	// EmbeddedDNS says the container's resolver is the embedded DNS
	// (on user-defined networks).
	EmbeddedDNS bool
}

// Setup makes container id's sandbox: a network namespace and one veth
// per bridge network it joins, each with an address from its network's
// pool. What a failed Setup made is taken down again.
func (m *Manager) Setup(id string) (Setup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	req, ok := m.st.Requests[id]
	if !ok {
		// A container made before berthd had networks: the default.
		n, err := m.modeNetworkLocked(network.NetworkDefault)
		if err != nil {
			return Setup{}, err
		}
		req = &Request{ContainerID: id, Mode: network.NetworkDefault, Networks: map[string]*EndpointRequest{n.ID: {}}}
		m.st.Requests[id] = req
	}
	for _, ref := range req.Missing {
		if _, err := m.findLocked(ref); err != nil {
			return Setup{}, fmt.Errorf("failed to set up container networking: %w", err)
		}
		// Created since: it is joined with default settings.
	}
	if len(req.Missing) > 0 {
		for _, ref := range req.Missing {
			n, _ := m.findLocked(ref)
			if _, ok := req.Networks[n.ID]; !ok {
				req.Networks[n.ID] = &EndpointRequest{}
			}
		}
		req.Missing = nil
	}
	if old := m.st.Sandboxes[id]; old != nil {
		// A previous run's, not taken down (a crash): start afresh.
		m.teardownLocked(old)
	}
	var nets []*Network
	for nid := range req.Networks {
		n, ok := m.st.Networks[nid]
		if !ok {
			return Setup{}, fmt.Errorf("container %s: network %s not found: %w", id, nid, errdefs.ErrNotFound)
		}
		nets = append(nets, n)
	}
	primary, err := m.modeNetworkLocked(req.Mode)
	if err != nil {
		return Setup{}, err
	}
	if primary.Driver == DriverHost {
		// No namespace to make: the record says the container is on
		// the host network (Teardown and its disconnect follow it).
		m.st.Sandboxes[id] = &Sandbox{ContainerID: id}
		return Setup{}, m.saveUnsynced()
	}
	// The mode's network is eth0; the others follow by name.
	sort.Slice(nets, func(i, j int) bool {
		if (nets[i].ID == primary.ID) != (nets[j].ID == primary.ID) {
			return nets[i].ID == primary.ID
		}
		return nets[i].Name < nets[j].Name
	})
	sb := &Sandbox{ContainerID: id, Key: filepath.Join(m.opts.ExecRoot, id[:12])}
	// Recorded before it is made: a crash part way leaves a record that
	// the next teardown follows.
	m.st.Sandboxes[id] = sb
	if err := m.saveUnsynced(); err != nil {
		delete(m.st.Sandboxes, id)
		return Setup{}, err
	}
	if err := m.netns.Create(sb.Key); err != nil {
		m.teardownLocked(sb)
		m.saveUnsynced()
		return Setup{}, fmt.Errorf("container %s: %w", id, err)
	}
	var out Setup
	out.NetNS = sb.Key
	for _, n := range nets {
		if n.Driver != DriverBridge {
			continue
		}
		ep, err := m.joinLocked(sb, n, req, fmt.Sprintf("eth%d", len(sb.Endpoints)))
		if err != nil {
			m.teardownLocked(sb)
			m.saveUnsynced()
			return Setup{}, fmt.Errorf("container %s: network %s: %w", id, n.Name, err)
		}
		out.Addresses = append(out.Addresses, ep.IP)
		if ep.IP6.IsValid() {
			out.Addresses = append(out.Addresses, ep.IP6)
		}
	}
	if err := m.saveUnsynced(); err != nil {
		m.teardownLocked(sb)
		return Setup{}, err
	}
	m.refreshDNSLocked()
	if err := m.startDNSLocked(sb, req); err != nil {
		m.teardownLocked(sb)
		m.saveUnsynced()
		return Setup{}, err
	}
	if len(req.Ports) > 0 {
		err := m.publishLocked(sb, req)
		if err == nil {
			err = m.firewallLocked()
		}
		if err == nil {
			err = m.saveUnsynced()
		}
		if err != nil {
			m.teardownLocked(sb)
			m.saveUnsynced()
			return Setup{}, err
		}
	}
	out.EmbeddedDNS = m.usesDNSLocked(sb)
	return out, nil
}

// joinLocked adds an endpoint on bridge network n to sb: address, veth.
func (m *Manager) joinLocked(sb *Sandbox, n *Network, req *Request, ifName string) (*Endpoint, error) {
	er := req.Networks[n.ID]
	if er == nil {
		er = &EndpointRequest{}
	}
	ep := &Endpoint{ID: newID(), NetworkID: n.ID, IfName: ifName, HostVeth: link.HostVethName(), Aliases: slices.Clone(er.Aliases)}
	ip, err := n.Pool.Allocate(ep.ID, er.IPv4)
	if err != nil {
		return nil, err
	}
	ep.IP = ip
	if n.Pool6 != nil {
		ip6, err := n.Pool6.Allocate(ep.ID, er.IPv6)
		if err != nil {
			n.Pool.Release(ip)
			return nil, err
		}
		ep.IP6 = ip6
	}
	if er.IPv4.IsValid() || er.IPv6.IsValid() {
		ep.IPAMConfig = &IPAMRequest{IPv4: er.IPv4, IPv6: er.IPv6}
	}
	mac := er.MAC
	if mac == "" {
		mac = macFromIP(ip)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		n.Pool.Release(ip)
		if ep.IP6.IsValid() {
			n.Pool6.Release(ep.IP6)
		}
		return nil, fmt.Errorf("invalid MAC address %q: %w", mac, errdefs.ErrInvalidArgument)
	}
	ep.MAC = hw.String()
	if n.Name != network.NetworkBridge {
		// User networks' DNS names, as dockerd: name, aliases, short
		// id, hostname (which is the short id unless --hostname).
		ep.DNSNames = append(ep.DNSNames, req.Name)
		ep.DNSNames = append(ep.DNSNames, er.Aliases...)
		ep.DNSNames = append(ep.DNSNames, sb.ContainerID[:12])
		if req.Hostname != "" && !slices.Contains(ep.DNSNames, req.Hostname) {
			ep.DNSNames = append(ep.DNSNames, req.Hostname)
		}
	}
	gw := n.Pool.Gateway
	var gw6 netip.Addr
	if n.Pool6 != nil {
		gw6 = n.Pool6.Gateway
	}
	if n.Internal || len(sb.Endpoints) > 0 {
		// An internal network has no way out; only the first network
		// gives the default route.
		gw, gw6 = netip.Addr{}, netip.Addr{}
	}
	sb.Endpoints = append(sb.Endpoints, ep)
	if err := m.saveUnsynced(); err != nil {
		return nil, err
	}
	if err := link.AddVeth(ep.HostVeth, link.Endpoint{
		Bridge: n.Bridge, NetNS: sb.Key, Name: ifName,
		Addr: ip, Subnet: n.Pool.Subnet, Gateway: gw, MAC: hw,
		Addr6: ep.IP6, Subnet6: subnet6(n), Gateway6: gw6,
	}); err != nil {
		return nil, err
	}
	return ep, nil
}

// subnet6 is n's IPv6 subnet (invalid without IPv6).
func subnet6(n *Network) netip.Prefix {
	if n.Pool6 == nil {
		return netip.Prefix{}
	}
	return n.Pool6.Subnet
}

// macFromIP is dockerd's classic MAC of an address: 02:42 then the
// address's four bytes.
func macFromIP(ip netip.Addr) string {
	a := ip.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3])
}

// Teardown takes container id's sandbox down: veths, namespace, and the
// addresses go back to their pools. Without a sandbox it does nothing.
func (m *Manager) Teardown(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	sb, ok := m.st.Sandboxes[id]
	if !ok {
		return nil
	}
	err := m.teardownLocked(sb)
	return joinErr(err, m.saveUnsynced())
}

func (m *Manager) teardownLocked(sb *Sandbox) error {
	m.dns.Stop(sb.ContainerID)
	defer m.refreshDNSLocked()
	var errs []error
	if len(sb.Ports) > 0 {
		m.unpublishLocked(sb.ContainerID)
		delete(m.st.Sandboxes, sb.ContainerID)
		if err := m.firewallLocked(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ep := range sb.Endpoints {
		if err := link.DeleteLink(ep.HostVeth); err != nil {
			errs = append(errs, err)
		}
		if n, ok := m.st.Networks[ep.NetworkID]; ok && n.Pool != nil {
			n.Pool.Release(ep.IP)
			if n.Pool6 != nil && ep.IP6.IsValid() {
				n.Pool6.Release(ep.IP6)
			}
		}
	}
	if sb.Key != "" {
		if err := netns.Remove(sb.Key); err != nil {
			errs = append(errs, err)
		}
	}
	delete(m.st.Sandboxes, sb.ContainerID)
	return joinErrs(errs)
}

// Settings is container id's NetworkSettings as inspect shows it: its
// networks, with the operational data while it runs.
func (m *Manager) Settings(id string) *container.NetworkSettings {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &container.NetworkSettings{Ports: network.PortMap{}, Networks: map[string]*network.EndpointSettings{}}
	req, ok := m.st.Requests[id]
	if !ok {
		return out
	}
	sb := m.st.Sandboxes[id]
	out.Ports = portMap(req, sb)
	if sb != nil {
		out.SandboxKey = sb.Key
		out.SandboxID = sandboxID(id)
	}
	for nid, er := range req.Networks {
		n, ok := m.st.Networks[nid]
		if !ok {
			continue
		}
		es := &network.EndpointSettings{NetworkID: n.ID, Aliases: slices.Clone(er.Aliases), DNSNames: nil, Links: slices.Clone(er.Links)}
		if er.IPv4.IsValid() || er.IPv6.IsValid() {
			es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: er.IPv4, IPv6Address: er.IPv6}
		}
		if er.MAC != "" {
			hw, _ := net.ParseMAC(er.MAC)
			es.MacAddress = network.HardwareAddr(hw)
		}
		if sb != nil {
			for _, ep := range sb.Endpoints {
				if ep.NetworkID != nid {
					continue
				}
				es.EndpointID = ep.ID
				es.IPAddress = ep.IP
				es.IPPrefixLen = n.Pool.Subnet.Bits()
				if !n.Internal {
					es.Gateway = n.Pool.Gateway
				}
				if ep.IP6.IsValid() && n.Pool6 != nil {
					es.GlobalIPv6Address = ep.IP6
					es.GlobalIPv6PrefixLen = n.Pool6.Subnet.Bits()
					if !n.Internal {
						es.IPv6Gateway = n.Pool6.Gateway
					}
				}
				hw, _ := net.ParseMAC(ep.MAC)
				es.MacAddress = network.HardwareAddr(hw)
				es.DNSNames = slices.Clone(ep.DNSNames)
			}
		}
		out.Networks[n.Name] = es
	}
	return out
}

// Addresses are container id's addresses while it runs, by interface
// (IPv4 then IPv6 of each).
func (m *Manager) Addresses(id string) []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	sb := m.st.Sandboxes[id]
	if sb == nil {
		return nil
	}
	eps := slices.Clone(sb.Endpoints)
	sort.Slice(eps, func(i, j int) bool { return ifIndex(eps[i].IfName) < ifIndex(eps[j].IfName) })
	var out []netip.Addr
	for _, ep := range eps {
		out = append(out, ep.IP)
		if ep.IP6.IsValid() {
			out = append(out, ep.IP6)
		}
	}
	return out
}

// ifIndex is N of "ethN".
func ifIndex(name string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(name, "eth"))
	return n
}

// HasSandbox reports whether container id is set up (Setup ran, Teardown
// not yet).
func (m *Manager) HasSandbox(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.st.Sandboxes[id]
	return ok
}

// HostGateway is the default bridge's gateway address, which containers
// reach the host by (dockerd's default for --add-host NAME:host-gateway);
// invalid without a default bridge.
func (m *Manager) HostGateway() netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.byNameLocked(network.NetworkBridge); n != nil && n.Pool != nil {
		return n.Pool.Gateway
	}
	return netip.Addr{}
}

// Registered reports whether Register recorded container id's networks.
// A container:<id> container never has a record (it joins another's
// namespace).
func (m *Manager) Registered(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.st.Requests[id]
	return ok
}

// sandboxID is a stable id for a container's sandbox: 64 hex digits,
// as dockerd's, derived from the container's id.
func sandboxID(containerID string) string {
	sum := sha256.Sum256([]byte("sandbox " + containerID))
	return hex.EncodeToString(sum[:])
}

// SandboxKey is container id's namespace file while it runs ("" else):
// what a container:<id> container joins.
func (m *Manager) SandboxKey(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sb, ok := m.st.Sandboxes[id]; ok {
		if _, err := os.Stat(sb.Key); err == nil {
			return sb.Key
		}
	}
	return ""
}

func joinErr(a, b error) error { return joinErrs([]error{a, b}) }

func joinErrs(errs []error) error {
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return fmt.Errorf("%v (and %d more errors)", out[0], len(out)-1)
}

func parseMAC(s string) (network.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	return network.HardwareAddr(hw), err
}
