package network

import (
	"crypto/sha256"
	"fmt"
	"net/netip"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network/ipam"
	"github.com/berth-dev/berth/network/link"
)

// ulaBase is the daemon's default IPv6 pool: a ULA /48 (RFC 4193: fd
// and a 40-bit global ID) derived from the daemon's state file path,
// so that it is stable across restarts and differs between daemons, as
// dockerd derives its default ULA pool from its host ID. --ipv6 networks
// without an IPv6 subnet get one of its /64s.
func (m *Manager) ulaBase() netip.Prefix {
	h := sha256.Sum256([]byte("berth-ula:" + m.path))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], h[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48)
}

// pool6Locked is the IPv6 pool of a new --ipv6 network: subnet when
// the user gave one (it must overlap no other network or host route),
// else the first free /64 of the daemon's ULA /48.
func (m *Manager) pool6Locked(subnet, ipRange netip.Prefix, gw netip.Addr) (*ipam.Pool, error) {
	taken, err := link.HostPrefixes6()
	if err != nil {
		return nil, err
	}
	for _, n := range m.st.Networks {
		if n.Pool6 != nil {
			taken = append(taken, n.Pool6.Subnet)
		}
	}
	if subnet.IsValid() {
		for _, t := range taken {
			if t.Overlaps(subnet) {
				return nil, fmt.Errorf("invalid pool request: Pool overlaps with other one on this address space (%s): %w", t, errdefs.ErrConflict)
			}
		}
		return ipam.NewPool(subnet, ipRange, gw)
	}
	base := m.ulaBase().Addr().As16()
	for i := 0; i < 1<<16; i++ {
		a := base
		a[6], a[7] = byte(i>>8), byte(i)
		c := netip.PrefixFrom(netip.AddrFrom16(a), 64)
		free := true
		for _, t := range taken {
			if t.Overlaps(c) {
				free = false
				break
			}
		}
		if free {
			return ipam.NewPool(c, netip.Prefix{}, netip.Addr{})
		}
	}
	return nil, fmt.Errorf("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network: %w", errdefs.ErrUnavailable)
}
