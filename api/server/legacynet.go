package server

import (
	"net/netip"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// legacyInspect is a container's inspect document for clients older than
// API 1.52, whose NetworkSettings also carried the default bridge
// endpoint's addresses at the top (`docker inspect -f
// '{{.NetworkSettings.IPAddress}}'` reads them) and a few fields long
// deprecated (Bridge, HairpinMode, the link-local and secondary
// addresses), all removed in 1.52. dockerd fills the addresses from the
// "bridge" network and leaves them empty elsewhere.
type legacyInspect struct {
	container.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

// legacyAddress is an entry of the secondary address lists, which
// dockerd leaves null.
type legacyAddress struct {
	Addr      string
	PrefixLen int
}

type legacyNetworkSettings struct {
	container.NetworkSettings
	Bridge                 string
	HairpinMode            bool
	LinkLocalIPv6Address   string
	LinkLocalIPv6PrefixLen int
	SecondaryIPAddresses   []legacyAddress
	SecondaryIPv6Addresses []legacyAddress
	EndpointID             string
	Gateway                string
	GlobalIPv6Address      string
	GlobalIPv6PrefixLen    int
	IPAddress              string
	IPPrefixLen            int
	IPv6Gateway            string
	MacAddress             string
}

func withLegacyNetworkSettings(resp container.InspectResponse) any {
	if resp.NetworkSettings == nil {
		return resp
	}
	ns := &legacyNetworkSettings{NetworkSettings: *resp.NetworkSettings}
	if ep := resp.NetworkSettings.Networks[network.NetworkBridge]; ep != nil {
		str := func(a netip.Addr) string {
			if !a.IsValid() {
				return ""
			}
			return a.String()
		}
		ns.EndpointID, ns.Gateway, ns.IPAddress, ns.IPPrefixLen = ep.EndpointID, str(ep.Gateway), str(ep.IPAddress), ep.IPPrefixLen
		ns.GlobalIPv6Address, ns.GlobalIPv6PrefixLen, ns.IPv6Gateway = str(ep.GlobalIPv6Address), ep.GlobalIPv6PrefixLen, str(ep.IPv6Gateway)
		ns.MacAddress = ep.MacAddress.String()
	}
	return legacyInspect{InspectResponse: resp, NetworkSettings: ns}
}
