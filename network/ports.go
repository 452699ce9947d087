package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network/firewall"
)

// PortRequest is one -p (or -P) wish: container port and protocol, the
// host address (unspecified: all) and a host port range (0-0: any free
// ephemeral port).
type PortRequest struct {
	Proto         string
	ContainerPort uint16
	HostIP        netip.Addr `json:",omitzero"`
	HostPortStart uint16
	HostPortEnd   uint16
}

// PortMapping is a published port of a running container.
type PortMapping struct {
	Proto         string
	ContainerPort uint16
	HostIP        netip.Addr `json:",omitzero"`
	HostPort      uint16
	// V6 says the port is also published on [::] (an unspecified
	// HostIP on a container with an IPv6 address, as dockerd does).
	V6 bool `json:",omitempty"`
}

// portRequests turns PortBindings and, with -P, the exposed ports into
// requests, with dockerd's messages for bad input.
func portRequests(hc *container.HostConfig, exposed network.PortSet) ([]PortRequest, error) {
	var out []PortRequest
	add := func(p network.Port, b network.PortBinding) error {
		r := PortRequest{Proto: string(p.Proto()), ContainerPort: p.Num(), HostIP: b.HostIP}
		if r.Proto == "" {
			r.Proto = "tcp"
		}
		r.HostIP = r.HostIP.Unmap()
		if hp := b.HostPort; hp != "" {
			lo, hi, isRange := strings.Cut(hp, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.ParseUint(lo, 10, 16)
			z, err2 := strconv.ParseUint(hi, 10, 16)
			if err1 != nil || err2 != nil || z < a {
				return fmt.Errorf("invalid port specification: %q: %w", hp, errdefs.ErrInvalidArgument)
			}
			r.HostPortStart, r.HostPortEnd = uint16(a), uint16(z)
		}
		out = append(out, r)
		return nil
	}
	for p, bs := range hc.PortBindings {
		if len(bs) == 0 {
			bs = []network.PortBinding{{}}
		}
		for _, b := range bs {
			if err := add(p, b); err != nil {
				return nil, err
			}
		}
	}
	if hc.PublishAllPorts {
		for p := range exposed {
			if _, bound := hc.PortBindings[p]; !bound {
				if err := add(p, network.PortBinding{}); err != nil {
					return nil, err
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerPort != out[j].ContainerPort {
			return out[i].ContainerPort < out[j].ContainerPort
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

// ephemeralRange is the host's ephemeral port range (Docker takes the
// published ports it picks from there).
func ephemeralRange() (uint16, uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.ParseUint(f[0], 10, 16)
			hi, err2 := strconv.ParseUint(f[1], 10, 16)
			if err1 == nil && err2 == nil && lo <= hi {
				return uint16(lo), uint16(hi)
			}
		}
	}
	return 32768, 60999
}

// reserve binds hostIP:port (proto) on the host, so that no host process
// takes a published port; the socket is never read (the DNAT rules take
// the traffic before it).
func reserve(proto string, ip netip.Addr, port uint16) (io.Closer, error) {
	host := "0.0.0.0"
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	switch proto {
	case "udp":
		return net.ListenPacket("udp4", addr)
	case "tcp":
		return net.Listen("tcp4", addr)
	case "sctp":
		return reserveSCTP(ip, port, false)
	}
	return nil, fmt.Errorf("publishing %s ports: %w", proto, errdefs.ErrNotImplemented)
}

// publishLocked reserves host ports for req's port requests on sb.
func (m *Manager) publishLocked(sb *Sandbox, req *Request) error {
	if len(req.Ports) == 0 {
		return nil
	}
	if len(sb.Endpoints) == 0 {
		return nil // --network none: nothing to publish to
	}
	lo, hi := ephemeralRange()
	for _, pr := range req.Ports {
		start, end := pr.HostPortStart, pr.HostPortEnd
		if start == 0 {
			start, end = lo, hi
		}
		pm := PortMapping{Proto: pr.Proto, ContainerPort: pr.ContainerPort, HostIP: pr.HostIP,
			V6: !pr.HostIP.IsValid() && sb.Endpoints[0].IP6.IsValid()}
		var cs []io.Closer
		var err error
		for p := uint32(start); p <= uint32(end); p++ {
			if m.portTakenLocked(pr.Proto, uint16(p)) {
				continue
			}
			pm.HostPort = uint16(p)
			if cs, err = m.reserveLocked(sb, pm); err == nil {
				break
			}
			if errdefs.IsNotImplemented(err) {
				return err
			}
		}
		if cs == nil {
			where := fmt.Sprintf("%d-%d", start, end)
			if start == end {
				where = strconv.Itoa(int(start))
			}
			return fmt.Errorf("driver failed programming external connectivity: Bind for %s:%s failed: port is already allocated: %w",
				hostIPString(pr.HostIP), where, errdefs.ErrConflict)
		}
		m.reservations[sb.ContainerID] = append(m.reservations[sb.ContainerID], cs...)
		sb.Ports = append(sb.Ports, pm)
	}
	return nil
}

// reserveLocked takes the host sockets of mapping p of sb: the IPv4
// one, and the IPv6 one (which relays [::1], see reserve6) for an
// IPv6 host address or a V6 mapping. The IPv6 socket relays to the
// container's IPv6 address, or to its IPv4 one when it has none.
func (m *Manager) reserveLocked(sb *Sandbox, p PortMapping) ([]io.Closer, error) {
	ep := sb.Endpoints[0]
	target := ep.IP6
	if !target.IsValid() {
		target = ep.IP
	}
	to := netip.AddrPortFrom(target, p.ContainerPort)
	if p.HostIP.Is6() {
		c, err := reserve6(p.Proto, p.HostIP, p.HostPort, to, m.opts.Logf)
		if err != nil {
			return nil, err
		}
		return []io.Closer{c}, nil
	}
	c, err := reserve(p.Proto, p.HostIP, p.HostPort)
	if err != nil {
		return nil, err
	}
	if !p.V6 {
		return []io.Closer{c}, nil
	}
	c6, err := reserve6(p.Proto, netip.Addr{}, p.HostPort, to, m.opts.Logf)
	if err != nil {
		c.Close()
		return nil, err
	}
	return []io.Closer{c, c6}, nil
}

// portTakenLocked says whether another of our containers publishes port.
func (m *Manager) portTakenLocked(proto string, port uint16) bool {
	for _, sb := range m.st.Sandboxes {
		for _, p := range sb.Ports {
			if p.Proto == proto && p.HostPort == port {
				return true
			}
		}
	}
	return false
}

// unpublishLocked releases container id's reserved ports.
func (m *Manager) unpublishLocked(id string) {
	for _, c := range m.reservations[id] {
		c.Close()
	}
	delete(m.reservations, id)
}

// rereserveLocked takes the ports of sandboxes that outlived a daemon
// restart again.
func (m *Manager) rereserveLocked(sb *Sandbox) error {
	var errs []error
	for _, p := range sb.Ports {
		if len(sb.Endpoints) == 0 {
			break
		}
		cs, err := m.reserveLocked(sb, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("container %s: port %d/%s: %w", sb.ContainerID, p.HostPort, p.Proto, err))
			continue
		}
		m.reservations[sb.ContainerID] = append(m.reservations[sb.ContainerID], cs...)
	}
	return errors.Join(errs...)
}

// mappingsLocked are the DNAT rules of all published ports.
func (m *Manager) mappingsLocked() []firewall.Mapping {
	var out []firewall.Mapping
	ids := make([]string, 0, len(m.st.Sandboxes))
	for id := range m.st.Sandboxes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		sb := m.st.Sandboxes[id]
		if len(sb.Ports) == 0 || len(sb.Endpoints) == 0 {
			continue
		}
		ep := sb.Endpoints[0]
		n, ok := m.st.Networks[ep.NetworkID]
		if !ok || n.Internal {
			continue
		}
		for _, p := range sb.Ports {
			if !p.HostIP.Is6() {
				out = append(out, firewall.Mapping{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort,
					ContainerIP: ep.IP, ContainerPort: p.ContainerPort, Bridge: n.Bridge})
			}
			if (p.V6 || (p.HostIP.Is6() && !p.HostIP.IsLoopback())) && ep.IP6.IsValid() {
				out = append(out, firewall.Mapping{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort,
					ContainerIP: ep.IP6, ContainerPort: p.ContainerPort, Bridge: n.Bridge})
			}
		}
	}
	return out
}

func hostIPString(a netip.Addr) string {
	if !a.IsValid() {
		return "0.0.0.0"
	}
	return a.String()
}

// portMap is NetworkSettings.Ports: every exposed or published port,
// with its bindings while the container runs (null otherwise).
func portMap(req *Request, sb *Sandbox) network.PortMap {
	out := network.PortMap{}
	for _, p := range req.Exposed {
		if np, err := network.ParsePort(p); err == nil {
			out[np] = nil
		}
	}
	for _, pr := range req.Ports {
		if np, ok := network.PortFrom(pr.ContainerPort, network.IPProtocol(pr.Proto)); ok {
			if _, seen := out[np]; !seen {
				out[np] = nil
			}
		}
	}
	if sb == nil {
		return out
	}
	for _, p := range sb.Ports {
		np, ok := network.PortFrom(p.ContainerPort, network.IPProtocol(p.Proto))
		if !ok {
			continue
		}
		ip := p.HostIP
		if !ip.IsValid() {
			ip = netip.IPv4Unspecified()
		}
		out[np] = append(out[np], network.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(p.HostPort))})
		if p.V6 {
			out[np] = append(out[np], network.PortBinding{HostIP: netip.IPv6Unspecified(), HostPort: strconv.Itoa(int(p.HostPort))})
		}
	}
	return out
}

// PortSummaries are container id's ports as GET /containers/json lists
// them.
func (m *Manager) PortSummaries(id string) []container.PortSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []container.PortSummary{}
	req := m.st.Requests[id]
	if req == nil {
		return out
	}
	for np, bs := range portMap(req, m.st.Sandboxes[id]) {
		if len(bs) == 0 {
			out = append(out, container.PortSummary{PrivatePort: np.Num(), Type: string(np.Proto())})
			continue
		}
		for _, b := range bs {
			hp, _ := strconv.ParseUint(b.HostPort, 10, 16)
			out = append(out, container.PortSummary{IP: b.HostIP, PrivatePort: np.Num(), PublicPort: uint16(hp), Type: string(np.Proto())})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PrivatePort != out[j].PrivatePort {
			return out[i].PrivatePort < out[j].PrivatePort
		}
		return out[i].Type < out[j].Type
	})
	return out
}
