package network

import (
	"net/netip"

	"github.com/berth-dev/berth/network/firewall"
	"github.com/berth-dev/berth/network/sockredirect"
)

// redirectLocked makes the socket redirect's map hold the published
// ports of mappings, the same set the DNAT rules were just made from.
// A failure only costs the fast path: the DNAT rules carry the port.
func (m *Manager) redirectLocked(mappings []firewall.Mapping) {
	if m.opts.Redirect == nil {
		return
	}
	svcs := make([]sockredirect.Service, 0, len(mappings))
	for _, mp := range mappings {
		svcs = append(svcs, sockredirect.Service{Proto: mp.Proto, HostIP: mp.HostIP, HostPort: mp.HostPort,
			Backend: netip.AddrPortFrom(mp.ContainerIP, mp.ContainerPort)})
	}
	if err := m.opts.Redirect.Sync(svcs); err != nil {
		m.opts.Logf("%v", err)
	}
}
