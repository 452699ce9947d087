// Package link makes the kernel devices of a bridge network: the Linux
// bridge with its gateway address, and the veth pair that joins a
// container's network namespace to it.
package link

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	bnetns "github.com/berth-dev/berth/network/netns"
)

// EnsureBridge makes the bridge name (or takes the one there), gives it
// gw/bits (gateway and subnet), and sets it up. It is idempotent.
func EnsureBridge(name string, gw netip.Addr, subnet netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	}
	if l.Type() != "bridge" {
		return fmt.Errorf("device %s exists and is a %s, not a bridge", name, l.Type())
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	if err := netlink.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("give bridge %s address %s: %w", name, addr.IPNet, err)
	}
	// Published ports answer on 127.0.0.1 by DNAT, without a userland
	// proxy: those packets leave for the bridge with a loopback source,
	// which the kernel drops unless the bridge routes 127/8.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/route_localnet", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("route_localnet on bridge %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set bridge %s up: %w", name, err)
	}
	return nil
}

// EnsureBridgeIPv6 gives the bridge name (made by EnsureBridge) its IPv6
// gateway address gw/bits, without duplicate address detection (the
// address is ours alone, and DAD would delay its use by seconds, as
// libnetwork also avoids). It is idempotent.
func EnsureBridgeIPv6(name string, gw netip.Addr, subnet netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("0\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv6 on bridge %s: %w", name, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("give bridge %s address %s: %w", name, addr.IPNet, err)
	}
	return nil
}

// DeleteBridge removes the bridge name; a missing one is no error.
func DeleteBridge(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// Exists says whether a device called name exists in the host namespace.
func Exists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// Endpoint is one container interface to make.
type Endpoint struct {
	// Bridge is the host bridge the host end joins.
	Bridge string
	// NetNS is the container's network namespace file.
	NetNS string
	// Name is the interface's name inside the container ("eth0").
	Name string
	// Addr is the container's address in Subnet; Gateway its default
	// route (none when invalid, as on --internal networks).
	Addr    netip.Addr
	Subnet  netip.Prefix
	Gateway netip.Addr
	MAC     net.HardwareAddr
	MTU     int
	// Addr6 is the IPv6 address in Subnet6 (none when invalid);
	// Gateway6 the IPv6 default route (none when invalid).
	Addr6    netip.Addr
	Subnet6  netip.Prefix
	Gateway6 netip.Addr
}

// HostVethName makes a name for the host end of a veth ("veth" and 7
// random hex digits, as dockerd's).
func HostVethName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "veth" + hex.EncodeToString(b)[:7]
}

// AddVeth makes the veth pair of ep: the host end hostName on the bridge,
// the other end in the container's namespace named ep.Name, addressed
// and up, with the default route via the gateway.
func AddVeth(hostName string, ep Endpoint) (err error) {
	br, err := netlink.LinkByName(ep.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", ep.Bridge, err)
	}
	mtu := ep.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	peer := "vp" + hostName[4:]
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName, MTU: mtu, TxQLen: -1}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", hostName, err)
	}
	defer func() {
		if err != nil {
			DeleteLink(hostName)
		}
	}()
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("veth %s: %w", hostName, err)
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("attach veth %s to bridge %s: %w", hostName, ep.Bridge, err)
	}
	// Hairpin: a container reaches itself through a published port.
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin mode on %s: %w", hostName, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set veth %s up: %w", hostName, err)
	}
	pl, err := netlink.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("veth peer %s: %w", peer, err)
	}
	f, err := os.Open(ep.NetNS)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", ep.NetNS, err)
	}
	defer f.Close()
	if err := netlink.LinkSetNsFd(pl, int(f.Fd())); err != nil {
		return fmt.Errorf("move veth %s into %s: %w", peer, ep.NetNS, err)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(f.Fd()))
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ep.NetNS, err)
	}
	defer h.Close()
	if pl, err = h.LinkByName(peer); err != nil {
		return fmt.Errorf("veth peer %s in %s: %w", peer, ep.NetNS, err)
	}
	if err := h.LinkSetName(pl, ep.Name); err != nil {
		return fmt.Errorf("rename %s to %s: %w", peer, ep.Name, err)
	}
	if len(ep.MAC) > 0 {
		if err := h.LinkSetHardwareAddr(pl, ep.MAC); err != nil {
			return fmt.Errorf("set MAC address %s on %s: %w", ep.MAC, ep.Name, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ep.Addr.AsSlice(), Mask: net.CIDRMask(ep.Subnet.Bits(), 32)}}
	if err := h.AddrAdd(pl, addr); err != nil {
		return fmt.Errorf("give %s address %s: %w", ep.Name, addr.IPNet, err)
	}
	if !ep.Addr6.IsValid() {
		// As dockerd (26.1 on), an interface on a network without IPv6
		// has IPv6 off: no link-local address, no router solicitations.
		err := bnetns.Do(ep.NetNS, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/"+ep.Name+"/disable_ipv6", []byte("1\n"), 0o644)
		})
		if err != nil {
			return fmt.Errorf("disable IPv6 on %s (its network has none): %w", ep.Name, err)
		}
	}
	if ep.Addr6.IsValid() {
		// No DAD: the address comes from our IPAM, unique on the bridge.
		a6 := &netlink.Addr{IPNet: &net.IPNet{IP: ep.Addr6.AsSlice(), Mask: net.CIDRMask(ep.Subnet6.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(pl, a6); err != nil {
			return fmt.Errorf("give %s address %s: %w", ep.Name, a6.IPNet, err)
		}
	}
	if err := h.LinkSetUp(pl); err != nil {
		return fmt.Errorf("set %s up: %w", ep.Name, err)
	}
	for _, gw := range []netip.Addr{ep.Gateway, ep.Gateway6} {
		if !gw.IsValid() {
			continue
		}
		r := &netlink.Route{LinkIndex: pl.Attrs().Index, Gw: gw.AsSlice()}
		if err := h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("default route via %s on %s: %w", gw, ep.Name, err)
		}
	}
	return nil
}

// DeleteLink removes the host device name (a veth takes its peer along);
// a missing one is no error.
func DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// HostPrefixes are the IPv4 destinations of the host's routes: a new
// network's subnet must overlap none of them.
func HostPrefixes() ([]netip.Prefix, error) { return hostPrefixes(netlink.FAMILY_V4) }

// HostPrefixes6 are the IPv6 destinations of the host's routes, link
// local and multicast ones excepted.
func HostPrefixes6() ([]netip.Prefix, error) {
	all, err := hostPrefixes(netlink.FAMILY_V6)
	var out []netip.Prefix
	for _, p := range all {
		if !p.Addr().IsLinkLocalUnicast() && !p.Addr().IsMulticast() {
			out = append(out, p)
		}
	}
	return out, err
}

func hostPrefixes(family int) ([]netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, family)
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			continue // the default route overlaps everything
		}
		ip, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}
