package network

import (
	"net/netip"
	"os"
	"strings"

	"github.com/moby/moby/api/types/network"

	dnsr "github.com/berth-dev/berth/network/dns"
)

// dnsView is what the embedded DNS answers from: a snapshot of the
// running containers' names on user-defined networks, rebuilt under
// m.mu at every change and read under its own lock, so that a query
// never waits for a network operation.
type dnsView struct {
	// nets are the user networks each container is on.
	nets map[string][]string
	// names maps network id, then lower-case name, to addresses; each
	// name is there also as "name.network" (dockerd answers both).
	names map[string]map[string][]netip.Addr
	// links maps a container, then network id, then lower-case alias,
	// to the lower-case name the alias stands for (--link on a user
	// network: that container's private alias).
	links map[string]map[string]map[string]string
}

// refreshDNSLocked rebuilds the snapshot.
func (m *Manager) refreshDNSLocked() {
	v := dnsView{nets: map[string][]string{}, names: map[string]map[string][]netip.Addr{}, links: map[string]map[string]map[string]string{}}
	for cid, sb := range m.st.Sandboxes {
		for _, ep := range sb.Endpoints {
			n, ok := m.st.Networks[ep.NetworkID]
			if !ok || n.Name == network.NetworkBridge {
				continue
			}
			v.nets[cid] = append(v.nets[cid], n.ID)
			if r := m.st.Requests[cid]; r != nil && r.Networks[n.ID] != nil && len(r.Networks[n.ID].Links) > 0 {
				if v.links[cid] == nil {
					v.links[cid] = map[string]map[string]string{}
				}
				byAlias := map[string]string{}
				for _, l := range r.Networks[n.ID].Links {
					name, alias, _ := strings.Cut(l, ":")
					byAlias[strings.ToLower(alias)] = strings.ToLower(name)
				}
				v.links[cid][n.ID] = byAlias
			}
			byName := v.names[n.ID]
			if byName == nil {
				byName = map[string][]netip.Addr{}
				v.names[n.ID] = byName
			}
			for _, name := range ep.DNSNames {
				if name == "" {
					continue
				}
				k := strings.ToLower(name)
				for _, k := range []string{k, k + "." + strings.ToLower(n.Name)} {
					byName[k] = append(byName[k], ep.IP)
					if ep.IP6.IsValid() {
						byName[k] = append(byName[k], ep.IP6)
					}
				}
			}
		}
	}
	m.nmu.Lock()
	m.view = v
	m.nmu.Unlock()
}

// lookupName answers the embedded DNS: name on container id's networks.
func (m *Manager) lookupName(id, name string) []netip.Addr {
	m.nmu.RLock()
	defer m.nmu.RUnlock()
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, nid := range m.view.nets[id] {
		q := name
		if target, ok := m.view.links[id][nid][name]; ok {
			q = target
		}
		for _, a := range m.view.names[nid][q] {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// usesDNSLocked says whether sb has an endpoint on a user network (the
// embedded DNS serves those containers only, as dockerd's).
func (m *Manager) usesDNSLocked(sb *Sandbox) bool {
	for _, ep := range sb.Endpoints {
		if n, ok := m.st.Networks[ep.NetworkID]; ok && n.Name != network.NetworkBridge {
			return true
		}
	}
	return false
}

// startDNSLocked opens the embedded DNS in sb's namespace when sb is on
// a user network.
func (m *Manager) startDNSLocked(sb *Sandbox, req *Request) error {
	if m.dns == nil || !m.usesDNSLocked(sb) {
		return nil
	}
	up := req.DNS
	if len(up) == 0 {
		up = hostNameservers(m.opts.HostResolvConf)
	}
	return m.dns.Listen(sb.ContainerID, sb.Key, up)
}

// hostNameservers are the nameservers of the host's resolv.conf.
func hostNameservers(path string) []string {
	if path == "" {
		path = "/etc/resolv.conf"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

var _ dnsr.Lookup = (*Manager)(nil).lookupName
