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
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Bridge is one bridge network as the firewall sees it.
type Bridge struct {
	// Device is the bridge's name.
	Device string
	Subnet netip.Prefix
	// Internal networks reach nothing but their own bridge.
	Internal bool
	// Masquerade rewrites the source of what leaves for other devices.
	Masquerade bool
}

// Apply makes table hold exactly the rules of bridges.
func Apply(table string, bridges []Bridge) error {
	c, err := nftables.New()
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
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", table, err)
	}
	// Containers reach beyond their bridge only with forwarding on, as
	// dockerd sets it.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
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
	return nil
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
