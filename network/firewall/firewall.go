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

// Apply makes table hold exactly the rules of bridges and mappings.
func Apply(table string, bridges []Bridge, mappings []Mapping) error {
	msgs := 16 + len(bridges)*(len(bridges)+4) + 2*len(mappings)
	c, err := nftables.New(nftables.WithSockOptions(batchBuffers(msgs)))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}
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
		if b.Masquerade {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(saddr(b.Subnet), ifname(unix.NFT_META_OIFNAME, b.Device, false), []expr.Any{&expr.Masq{}})})
		}
	}
	if len(mappings) > 0 {
		pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
		out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
		hasPorts := map[string]bool{}
		for _, mp := range mappings {
			if !mp.ContainerIP.Is4() {
				continue // the ip6 table's
			}
			dnat := concat(localDest(mp.HostIP), l4(mp.Proto, mp.HostPort), dnatTo(mp.ContainerIP, mp.ContainerPort))
			c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: dnat})
			c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: dnat})
			hasPorts[mp.Bridge] = true
		}
		for _, b := range bridges {
			if !hasPorts[b.Device] {
				continue
			}
			// Published ports reached on 127.0.0.1 leave for the bridge
			// with a loopback source (the bridge has route_localnet on,
			// see network/link), and hairpin
			// traffic comes back on its own bridge: both are
			// masqueraded so the replies return through the NAT.
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(saddr(netip.MustParsePrefix("127.0.0.0/8")), ifname(unix.NFT_META_OIFNAME, b.Device, true), []expr.Any{&expr.Masq{}})})
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(ifname(unix.NFT_META_IIFNAME, b.Device, true), ifname(unix.NFT_META_OIFNAME, b.Device, true), ctDNAT(), []expr.Any{&expr.Masq{}})})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", table, err)
	}
	// Containers reach beyond their bridge only with forwarding on, as
	// dockerd sets it.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return apply6(table, bridges, mappings)
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

// Remove deletes table; a missing one is no error.
func Remove(table string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove nftables table %s: %w", table, err)
	}
	return remove6(table)
}

// Exists says whether table is there (for tests).
func Exists(table string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
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

// saddr matches an IPv4 source address inside p.
func saddr(p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: k}}
}

// localDest matches packets to ip, or, when ip is unspecified, to any
// of the host's own addresses.
func localDest(ip netip.Addr) []expr.Any {
	if ip.IsValid() && !ip.IsUnspecified() {
		a := ip.As4()
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
		}
	}
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
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
	a := ip.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
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
