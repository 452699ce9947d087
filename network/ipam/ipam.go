// Package ipam hands out the addresses of one network (IPv4, or IPv6
// for the second pool of a --ipv6 network): a Pool is a
// subnet, an optional narrower range addresses come from, the gateway,
// and the addresses in use. A Pool is a plain value the network manager
// persists with its network, so that an address is never handed out
// twice, also across daemon restarts.
package ipam

import (
	"fmt"
	"net/netip"

	"github.com/berth-dev/berth/errdefs"
)

// Pool is the address space of one network. Its zero value is unusable:
// make one with NewPool.
type Pool struct {
	Subnet  netip.Prefix `json:"Subnet"`
	Range   netip.Prefix `json:"Range"`
	Gateway netip.Addr   `json:"Gateway"`
	// Used maps each address in use to its owner (an endpoint id, or
	// "gateway").
	Used map[netip.Addr]string `json:"Used"`
	// Next is where the search for a free address resumes: addresses
	// are handed out round the range, as libnetwork does, so a freed
	// address is not reused at once.
	Next netip.Addr `json:"Next"`
}

// NewPool makes the pool of subnet, with addresses from ipRange (the
// whole subnet when invalid) and gateway (the subnet's first host
// address when invalid), with dockerd's messages for bad input.
func NewPool(subnet, ipRange netip.Prefix, gateway netip.Addr) (*Pool, error) {
	if !subnet.IsValid() || subnet.Addr().Is4In6() {
		return nil, fmt.Errorf("invalid subnet %s: %w", subnet, errdefs.ErrInvalidArgument)
	}
	if subnet.Bits() > subnet.Addr().BitLen()-2 {
		return nil, fmt.Errorf("invalid subnet %s: too small for a gateway and a container: %w", subnet, errdefs.ErrInvalidArgument)
	}
	if subnet != subnet.Masked() {
		return nil, fmt.Errorf("invalid subnet %s : it should be %s: %w", subnet, subnet.Masked(), errdefs.ErrInvalidArgument)
	}
	if !ipRange.IsValid() {
		ipRange = subnet
	}
	if ipRange != ipRange.Masked() || !subnet.Contains(ipRange.Addr()) || ipRange.Bits() < subnet.Bits() {
		return nil, fmt.Errorf("invalid ip-range %s: it must be a network inside subnet %s: %w", ipRange, subnet, errdefs.ErrInvalidArgument)
	}
	if !gateway.IsValid() {
		gateway = subnet.Addr().Next()
	}
	if gateway.Is4() != subnet.Addr().Is4() || !subnet.Contains(gateway) || gateway == subnet.Addr() || gateway == broadcast(subnet) {
		return nil, fmt.Errorf("invalid gateway %s: it must be a host address of subnet %s: %w", gateway, subnet, errdefs.ErrInvalidArgument)
	}
	p := &Pool{Subnet: subnet, Range: ipRange, Gateway: gateway, Used: map[netip.Addr]string{gateway: "gateway"}}
	return p, nil
}

// broadcast is the last address of p (IPv6 has no broadcast, but
// libnetwork does not hand out the last address there either).
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// usable says whether a can be handed out at all: inside the subnet,
// neither its network nor its broadcast address.
func (p *Pool) usable(a netip.Addr) bool {
	return p.Subnet.Contains(a) && a != p.Subnet.Masked().Addr() && a != broadcast(p.Subnet)
}

// Allocate hands out an address to owner: want when it is valid (it
// must lie in the subnet and be free), else the next free one of the
// range.
func (p *Pool) Allocate(owner string, want netip.Addr) (netip.Addr, error) {
	if p.Used == nil {
		p.Used = map[netip.Addr]string{}
	}
	if want.IsValid() {
		if !p.usable(want) || want.Is4() != p.Subnet.Addr().Is4() {
			return netip.Addr{}, fmt.Errorf("requested address %s is not a host address of subnet %s: %w", want, p.Subnet, errdefs.ErrInvalidArgument)
		}
		if _, used := p.Used[want]; used {
			// libnetwork's ErrIPAlreadyAllocated, a 403.
			return netip.Addr{}, fmt.Errorf("Address already in use: %w", errdefs.ErrPermissionDenied)
		}
		p.Used[want] = owner
		return want, nil
	}
	first, last := p.Range.Masked().Addr(), broadcast(p.Range)
	start := p.Next
	if !start.IsValid() || !p.Range.Contains(start) {
		start = first
	}
	a := start
	for {
		if p.usable(a) {
			if _, used := p.Used[a]; !used {
				p.Used[a] = owner
				p.Next = a.Next()
				return a, nil
			}
		}
		if a == last {
			a = first
		} else {
			a = a.Next()
		}
		if a == start {
			fam := "IPv4"
			if !p.Subnet.Addr().Is4() {
				fam = "IPv6"
			}
			return netip.Addr{}, fmt.Errorf("no available %s addresses on this network's address pools (%s): %w", fam, p.Range, errdefs.ErrUnavailable)
		}
	}
}

// Release frees a; freeing an address not in use is no error (a
// teardown repeated after a crash).
func (p *Pool) Release(a netip.Addr) {
	if p.Used[a] != "gateway" {
		delete(p.Used, a)
	}
}

// InUse is the number of addresses handed out, the gateway excluded.
func (p *Pool) InUse() int {
	n := 0
	for _, o := range p.Used {
		if o != "gateway" {
			n++
		}
	}
	return n
}
