package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// IPv6 rules live in a table of family ip6 with the same name as the
// ip table: present only while a bridge has an IPv6 subnet, so that a
// daemon without IPv6 networks keeps the single table it always had.

// IPv6Forwarding is the sysctl that lets the host route IPv6 between
// its bridges and the outside. Like dockerd, berthd turns it on when a
// bridge has an IPv6 subnet and never turns it off again: other users
// of the host (or another daemon's networks) may rely on it by then.
const IPv6Forwarding = "/proc/sys/net/ipv6/conf/all/forwarding"

// hasIPv6 says whether a bridge has an IPv6 subnet.
func hasIPv6(bridges []Bridge) bool {
	for _, b := range bridges {
		if b.Subnet6.IsValid() {
			return true
		}
	}
	return false
}

// apply6 makes the ip6 table hold exactly the IPv6 rules of bridges and
// mappings (those whose ContainerIP is IPv6), or removes it when no
// bridge has IPv6.
func apply6(table string, bridges []Bridge, mappings []Mapping) error {
	if !hasIPv6(bridges) {
		return remove6(table)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv6}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	// The forward rules are the ip table's, by device: isolation holds
	// for every bridge, whether it has IPv6 addresses or not.
	for _, b := range bridges {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), ifname(unix.NFT_META_OIFNAME, b.Device, true), verdict(expr.VerdictAccept))})
		if b.Internal {
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), verdict(expr.VerdictDrop))})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_OIFNAME, b.Device, true), verdict(expr.VerdictDrop))})
			continue
		}
		for _, o := range bridges {
			if o.Device != b.Device {
				c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), ifname(unix.NFT_META_OIFNAME, o.Device, true), verdict(expr.VerdictDrop))})
			}
		}
		if b.Masquerade && b.Subnet6.IsValid() {
			// As dockerd with ip6tables (its default since 27): ULA
			// addresses leave the host masqueraded.
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(saddr6(b.Subnet6), ifname(unix.NFT_META_OIFNAME, b.Device, false), []expr.Any{&expr.Masq{}})})
		}
	}
	var pre, out *nftables.Chain
	hasPorts := map[string]bool{}
	for _, mp := range mappings {
		if !mp.ContainerIP.Is6() || mp.ContainerIP.Is4In6() {
			continue
		}
		if pre == nil {
			pre = c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
			out = c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
		}
		dnat := concat(localDest6(mp.HostIP), l4(mp.Proto, mp.HostPort), dnatTo6(mp.ContainerIP, mp.ContainerPort))
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: dnat})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: dnat})
		hasPorts[mp.Bridge] = true
	}
	for _, b := range bridges {
		if hasPorts[b.Device] {
			// Hairpin, as in the ip table. [::1] is not DNATed (IPv6
			// has no route_localnet): berthd's proxy serves it.
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), ifname(unix.NFT_META_OIFNAME, b.Device, true), ctDNAT(), []expr.Any{&expr.Masq{}})})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables ip6 table %s: %w", table, err)
	}
	if err := os.WriteFile(IPv6Forwarding, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv6 forwarding: %w", err)
	}
	return nil
}

// remove6 deletes the ip6 table; a missing one is no error.
func remove6(table string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv6}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove nftables ip6 table %s: %w", table, err)
	}
	return nil
}

// Exists6 says whether the ip6 table is there (for tests).
func Exists6(table string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv6)
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		if t.Name == table {
			return true, nil
		}
	}
	return false, nil
}

// saddr6 matches an IPv6 source address inside p.
func saddr6(p netip.Prefix) []expr.Any {
	mask := make([]byte, 16)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	a := p.Masked().Addr().As16()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

// localDest6 matches packets to ip, or, when ip is unspecified, to any
// of the host's own addresses but ::1.
func localDest6(ip netip.Addr) []expr.Any {
	daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	if ip.IsValid() && !ip.IsUnspecified() {
		a := ip.As16()
		return []expr.Any{daddr, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]}}
	}
	lo := netip.IPv6Loopback().As16()
	return []expr.Any{
		daddr,
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: lo[:]},
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// dnatTo6 rewrites the destination to [ip]:port.
func dnatTo6(ip netip.Addr, port uint16) []expr.Any {
	a := ip.As16()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}
