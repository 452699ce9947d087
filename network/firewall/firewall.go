// Package firewall keeps one nftables table per berthd (family ip): the
// isolation between its bridge networks, --internal networks cut off
// from everything but their own bridge, and masquerading of what leaves
// a bridge. The table is rebuilt whole at every change, in one netlink
// batch, so applying the same networks twice changes nothing and a
// daemon restart finds the same rules.
package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Bridge is one bridge network as the firewall sees it.
type Bridge struct {
	// Device is the bridge's name.
	Device string
	Subnet netip.Prefix
	// Subnet6 is the IPv6 subnet of a --ipv6 network (else invalid).
	Subnet6 netip.Prefix
	// Internal networks reach nothing but their own bridge.
	Internal bool
	// Masquerade rewrites the source of what leaves for other devices.
	Masquerade bool
}

// Mapping is one published port: traffic to the host's addresses (or
// HostIP only) on HostPort goes to the container's address and port.
type Mapping struct {
	Proto         string // "tcp", "udp" or "sctp"
	HostIP        netip.Addr
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
	Bridge        string
}

// family is what differs between the ip table and the ip6 table.
type family struct {
	nft  nftables.TableFamily
	name string // in errors
	// subnet is a bridge's subnet of this family (invalid: none).
	subnet func(Bridge) netip.Prefix
	// forwarding is the sysctl turned on with the table, as dockerd does.
	forwarding string
}

var (
	ipv4 = family{nftables.TableFamilyIPv4, "ip", func(b Bridge) netip.Prefix { return b.Subnet }, "/proc/sys/net/ipv4/ip_forward"}
	ipv6 = family{nftables.TableFamilyIPv6, "ip6", func(b Bridge) netip.Prefix { return b.Subnet6 }, IPv6Forwarding}
)

func (f family) is6() bool { return f.nft == nftables.TableFamilyIPv6 }

// owns says whether a container address is this family's.
func (f family) owns(a netip.Addr) bool {
	if f.is6() {
		return a.Is6() && !a.Is4In6()
	}
	return a.Is4()
}

// Apply makes table hold exactly the rules of bridges and mappings: the
// ip table always, the ip6 table while a bridge has an IPv6 subnet (so a
// daemon without IPv6 networks keeps the single table it always had).
func Apply(table string, bridges []Bridge, mappings []Mapping) error {
	if err := apply(ipv4, table, bridges, mappings); err != nil {
		return err
	}
	if !hasIPv6(bridges) {
		return remove(ipv6, table)
	}
	return apply(ipv6, table, bridges, mappings)
}

// apply rebuilds family f's table in one batch.
func apply(f family, table string, bridges []Bridge, mappings []Mapping) error {
	msgs := 16 + len(bridges)*(len(bridges)+4) + 2*len(mappings)
	c, err := nftables.New(nftables.WithSockOptions(batchBuffers(msgs)))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: f.nft}
	// Add-then-delete empties an existing table and cannot fail on a
	// missing one; the batch is atomic.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	// The forward rules go by device: isolation holds for every bridge
	// in both tables, whether it has addresses of the family or not.
	for _, b := range bridges {
		// Traffic within one network.
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), ifname(unix.NFT_META_OIFNAME, b.Device, true), verdict(expr.VerdictAccept))})
		if b.Internal {
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), verdict(expr.VerdictDrop))})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_OIFNAME, b.Device, true), verdict(expr.VerdictDrop))})
			continue
		}
		// Isolation: nothing passes from one of our networks to another.
		for _, o := range bridges {
			if o.Device != b.Device {
				c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), ifname(unix.NFT_META_OIFNAME, o.Device, true), verdict(expr.VerdictDrop))})
			}
		}
		// As dockerd (with ip6tables, its default since 27, for IPv6
		// too): what leaves the bridge is masqueraded.
		if sub := f.subnet(b); b.Masquerade && sub.IsValid() {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(saddr(sub), ifname(unix.NFT_META_OIFNAME, b.Device, false), []expr.Any{&expr.Masq{}})})
		}
	}
	var pre, out *nftables.Chain
	hasPorts := map[string]bool{}
	for _, mp := range mappings {
		if !f.owns(mp.ContainerIP) {
			continue // the other table's
		}
		if pre == nil {
			pre = c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
			out = c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
		}
		dnat := concat(localDest(f, mp.HostIP), l4(mp.Proto, mp.HostPort), dnatTo(mp.ContainerIP, mp.ContainerPort))
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: dnat})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: dnat})
		hasPorts[mp.Bridge] = true
	}
	for _, b := range bridges {
		if !hasPorts[b.Device] {
			continue
		}
		if !f.is6() {
			// Published ports reached on 127.0.0.1 leave for the bridge
			// with a loopback source (the bridge has route_localnet on,
			// see network/link): masqueraded so the replies return
			// through the NAT. IPv6 has no route_localnet: [::1] is not
			// DNATed, berthd's socket holding the port relays it.
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(saddr(netip.MustParsePrefix("127.0.0.0/8")), ifname(unix.NFT_META_OIFNAME, b.Device, true), []expr.Any{&expr.Masq{}})})
		}
		// Hairpin traffic comes back on its own bridge: masqueraded too.
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), ifname(unix.NFT_META_OIFNAME, b.Device, true), ctDNAT(), []expr.Any{&expr.Masq{}})})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables %s table %s: %w", f.name, table, err)
	}
	// Containers reach beyond their bridge only with forwarding on.
	if err := os.WriteFile(f.forwarding, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable %s forwarding: %w", f.name, err)
	}
	return nil
}

// batchBuffers sizes the netlink socket's buffers for a batch of about
// msgs messages: the batch goes in one sendmsg, and the kernel queues an
// ack for every message before the first is read. With the default
// buffers 300 published ports (one -p range) failed with "sendmsg:
// message too long" and 200 with "recvmsg: no buffer space available".
// The *FORCE options (root) may exceed net.core.[rw]mem_max; the size is
// a limit, not an allocation.
func batchBuffers(msgs int) nftables.SockOption {
	size := max(msgs*2048, 1<<20)
	return func(conn *netlink.Conn) error {
		raw, err := conn.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("netlink buffers of %d bytes: %w", size, serr)
		}
		return nil
	}
}

// Remove deletes both tables; missing ones are no error.
func Remove(table string) error {
	return errors.Join(remove(ipv4, table), remove(ipv6, table))
}

func remove(f family, table string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: f.nft}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove nftables %s table %s: %w", f.name, table, err)
	}
	return nil
}

// Exists says whether the ip table is there (for tests).
func Exists(table string) (bool, error) { return exists(ipv4, table) }

// Exists6 says whether the ip6 table is there (for tests).
func Exists6(table string) (bool, error) { return exists(ipv6, table) }

func exists(f family, table string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	ts, err := c.ListTablesOfFamily(f.nft)
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

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ifname matches the input or output interface name (key) being, or
// with eq false not being, name.
func ifname(key uint32, name string, eq bool) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	op := expr.CmpOpEq
	if !eq {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKey(key), Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// saddr matches a source address inside p (IPv4 or IPv6).
func saddr(p netip.Prefix) []expr.Any {
	n := p.Addr().BitLen() / 8
	off := uint32(12) // IPv4 header's source address
	if n == 16 {
		off = 8
	}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(n)},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(n), Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: k}}
}

// localDest matches packets to ip, or, when ip is unspecified, to any
// of the host's own addresses (but ::1 in IPv6, which is relayed).
func localDest(f family, ip netip.Addr) []expr.Any {
	daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	if f.is6() {
		daddr = &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		a := ip.As16()
		data := a[:]
		if !f.is6() {
			a4 := ip.As4()
			data = a4[:]
		}
		return []expr.Any{daddr, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
	}
	var m []expr.Any
	if f.is6() {
		lo := netip.IPv6Loopback().As16()
		m = []expr.Any{daddr, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: lo[:]}}
	}
	return append(m,
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
}

// l4 matches the protocol and destination port.
func l4(proto string, port uint16) []expr.Any {
	p := byte(unix.IPPROTO_TCP)
	switch proto {
	case "udp":
		p = unix.IPPROTO_UDP
	case "sctp":
		p = unix.IPPROTO_SCTP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// dnatTo rewrites the destination to ip:port.
func dnatTo(ip netip.Addr, port uint16) []expr.Any {
	fam := uint32(unix.NFPROTO_IPV6)
	if ip.Is4() {
		fam = unix.NFPROTO_IPV4
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: ip.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// ctDNAT matches connections whose destination was rewritten.
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(0x20), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}
