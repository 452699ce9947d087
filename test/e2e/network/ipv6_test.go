package network_test

import (
	"crypto/rand"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/network/firewall"
)

// ula6 is a random ULA /64 (fd + 56 random bits): no host route can
// overlap it but by a 2^-56 chance, which the test checks anyway.
func ula6(t *testing.T) netip.Prefix {
	t.Helper()
	var a [16]byte
	a[0] = 0xfd
	rand.Read(a[1:8])
	p := netip.PrefixFrom(netip.AddrFrom16(a), 64)
	routes, _ := netlink.RouteList(nil, netlink.FAMILY_V6)
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			continue // the default route
		}
		ip, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if netip.PrefixFrom(ip, ones).Overlaps(p) {
			t.Fatalf("random ULA %s overlaps host route %s", p, r.Dst)
		}
	}
	return p
}

// hostAddr6 is one of the host's own global IPv6 addresses outside the
// test's bridges.
func hostAddr6(t *testing.T) string {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		l, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil || l.Type() == "bridge" || a.IP.IsLoopback() || a.IP.IsLinkLocalUnicast() {
			continue
		}
		return a.IP.String()
	}
	return ""
}

// keepIPv6Forwarding puts net.ipv6.conf.all.forwarding back as it was
// when the test ends: berthd turns it on for IPv6 networks and, like
// dockerd, leaves it on.
func keepIPv6Forwarding(t *testing.T) {
	t.Helper()
	testutil.KeepSysctl(t, firewall.IPv6Forwarding)
}

// add6 is p's address with host part i.
func add6(p netip.Prefix, i byte) netip.Addr {
	a := p.Addr().As16()
	a[15] = i
	return netip.AddrFrom16(a)
}

// TestIPv6: --ipv6 networks with a given ULA subnet and one from the
// daemon's ULA pool; --ip6; a container's IPv6 address, default route
// and /etc/hosts line; AAAA answers of the embedded DNS (round robin
// on a shared alias); inspect's IPv6 fields; published ports reached on
// [::1], on the bridge's gateway and on the host's own IPv6 address;
// isolation between IPv6 networks; --internal without an IPv6 route;
// the ip6 table gone with the last IPv6 network.
func TestIPv6(t *testing.T) {
	keepIPv6Forwarding(t)
	d, _ := startDaemon(t)
	table := network.TableName(d.DataRoot, "/var/lib/berth")
	netechoImage(t, d)
	tnA, tnB, tnI := newTestNet(t, "b6"), newTestNet(t, "b6"), newTestNet(t, "b6")
	a6, i6 := ula6(t), ula6(t)
	t.Cleanup(func() {
		d.Docker("rm", "-f", "srv", "srv2", "far", "in6")
		d.Docker("network", "rm", "v6a", "v6b", "v6i", "nov6")
	})
	d.Must(t, "network", "create", "--ipv6", "--subnet", tnA.Subnet.String(), "--subnet", a6.String(),
		"-o", "com.docker.network.bridge.name="+tnA.Bridge, "v6a")
	d.Must(t, "network", "create", "--ipv6", "--subnet", tnB.Subnet.String(), "-o", "com.docker.network.bridge.name="+tnB.Bridge, "v6b")
	if out, err := berth(t, d, "network", "create", "--ipv6", "--internal", "--subnet", tnI.Subnet.String(), "--subnet", i6.String(),
		"-o", "com.docker.network.bridge.name="+tnI.Bridge, "v6i"); err != nil {
		t.Fatalf("berth network create --ipv6 --internal: %v %s", err, out)
	}
	if ok, err := firewall.Exists6(table); err != nil || !ok {
		t.Errorf("ip6 table %s with IPv6 networks: %v %v", table, ok, err)
	}
	if v, _ := os.ReadFile(firewall.IPv6Forwarding); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("IPv6 forwarding with IPv6 networks: %q", v)
	}

	var nets []struct {
		Name       string
		EnableIPv6 bool
		IPAM       struct {
			Config []struct{ Subnet, Gateway string }
		}
	}
	if err := json.Unmarshal([]byte(d.Must(t, "network", "inspect", "v6a", "v6b")), &nets); err != nil || len(nets) != 2 {
		t.Fatalf("network inspect: %v", err)
	}
	// As dockerd 28: the configs the user gave as given (no gateway when
	// none was given), then the pools the daemon picked.
	if n := nets[0]; !n.EnableIPv6 || len(n.IPAM.Config) != 2 || n.IPAM.Config[1].Subnet != a6.String() || n.IPAM.Config[0].Gateway != "" || n.IPAM.Config[1].Gateway != "" {
		t.Errorf("v6a: %+v", n)
	}
	var b6 netip.Prefix
	if n := nets[1]; !n.EnableIPv6 || len(n.IPAM.Config) != 2 || n.IPAM.Config[0].Gateway != "" || n.IPAM.Config[1].Gateway == "" {
		t.Errorf("v6b: %+v", n)
	} else if b6 = netip.MustParsePrefix(n.IPAM.Config[1].Subnet); b6.Bits() != 64 || b6.Addr().As16()[0] != 0xfd {
		t.Errorf("v6b's subnet from the default pool is %s, want a ULA /64", b6)
	}
	if ls := d.Must(t, "network", "ls", "--format", "{{.Name}} {{.IPv6}}", "--filter", "name=v6"); !strings.Contains(ls, "v6a true") {
		t.Errorf("network ls IPv6 column: %q", ls)
	}

	pT, pU := freePort(t), freePort(t)
	srv6 := add6(a6, 0x10)
	d.Must(t, "run", "-d", "--name", "srv", "--network", "v6a", "--ip6", srv6.String(), "--network-alias", "shared",
		"-p", strconv.Itoa(pT)+":8080", "-p", strconv.Itoa(pU)+":9000/udp", "berth-netecho", "-tcp", ":8080", "-udp", ":9000", "-reply", "v6")
	d.Must(t, "run", "-d", "--name", "srv2", "--network", "v6a", "--network-alias", "shared", "berth-netecho", "-tcp", ":8080", "-reply", "two")
	var ins []struct {
		NetworkSettings struct {
			Networks map[string]struct {
				GlobalIPv6Address   string
				GlobalIPv6PrefixLen int
				IPv6Gateway         string
				IPAMConfig          struct{ IPv6Address string }
			}
		}
	}
	if err := json.Unmarshal([]byte(d.Must(t, "inspect", "srv", "srv2")), &ins); err != nil || len(ins) != 2 {
		t.Fatalf("inspect: %v", err)
	}
	if e := ins[0].NetworkSettings.Networks["v6a"]; e.GlobalIPv6Address != srv6.String() || e.GlobalIPv6PrefixLen != 64 ||
		e.IPv6Gateway != add6(a6, 1).String() || e.IPAMConfig.IPv6Address != srv6.String() {
		t.Errorf("srv's IPv6 settings: %+v", e)
	}
	srv2 := ins[1].NetworkSettings.Networks["v6a"].GlobalIPv6Address
	if a, err := netip.ParseAddr(srv2); err != nil || !a6.Contains(a) {
		t.Errorf("srv2's IPv6 address %q is not in %s", srv2, a6)
	}

	// From a container on the network: its own address, route and
	// hosts line; srv over IPv6 by address and by name; AAAA answers.
	out := d.Must(t, "run", "--rm", "--network", "v6a", "--hostname", "probe", "busybox", "sh", "-c",
		"ip -6 addr show eth0; ip -6 route; cat /etc/hosts; echo ---; nc -w 3 "+srv6.String()+" 8080 </dev/null; nc -w 3 srv 8080 </dev/null; nslookup -type=aaaa shared 127.0.0.11")
	if !strings.Contains(out, "default via "+add6(a6, 1).String()) {
		t.Errorf("no IPv6 default route via the gateway:\n%s", out)
	}
	hosts := out[:strings.Index(out, "---")]
	inet6 := ""
	for _, l := range strings.Split(hosts, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "inet6" && strings.HasPrefix(f[1], strings.TrimSuffix(a6.Addr().String(), "::")) {
			inet6 = strings.Split(f[1], "/")[0]
		}
	}
	if inet6 == "" || !strings.Contains(hosts, inet6+"\tprobe") {
		t.Errorf("container's IPv6 address %q not in its /etc/hosts:\n%s", inet6, hosts)
	}
	if strings.Count(out, "v6") < 2 {
		t.Errorf("srv over IPv6 by address and by name:\n%s", out)
	}
	if !strings.Contains(out, srv6.String()) || !strings.Contains(out, srv2) {
		t.Errorf("AAAA of the shared alias lacks %s or %s:\n%s", srv6, srv2, out)
	}

	// As dockerd, IPv6 is off on an interface whose network has none
	// (the default bridge here), on where it has.
	if out := d.Must(t, "run", "--rm", "busybox", "sh", "-c", "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -6 addr show eth0"); strings.TrimSpace(out) != "1" {
		t.Errorf("IPv6 on the default bridge's interface: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--network", "v6a", "busybox", "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"); strings.TrimSpace(out) != "0" {
		t.Errorf("IPv6 off on an IPv6 network's interface: %q", out)
	}

	// Published ports over IPv6 from the host.
	v6addrs := []string{"::1", add6(a6, 1).String()}
	if h := hostAddr6(t); h != "" {
		v6addrs = append(v6addrs, h)
	}
	for _, a := range v6addrs {
		if got := readFrom(t, net.JoinHostPort(a, strconv.Itoa(pT))); got != "v6" {
			t.Errorf("tcp [%s]:%d: %q", a, pT, got)
		}
		if got := udpAsk6(t, net.JoinHostPort(a, strconv.Itoa(pU))); got != "v6" {
			t.Errorf("udp [%s]:%d: %q", a, pU, got)
		}
	}
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(pT)); got != "v6" {
		t.Errorf("tcp 127.0.0.1:%d: %q", pT, got)
	}
	wantPort := "8080/tcp -> 0.0.0.0:" + strconv.Itoa(pT) + "\n8080/tcp -> [::]:" + strconv.Itoa(pT) + "\n"
	// docker 28.2's CLI prints "[::]" as ":::"; later ones (and berth) as "[::]".
	if out := strings.ReplaceAll(d.Must(t, "port", "srv", "8080/tcp"), ":::", "[::]:"); out != "0.0.0.0:"+strconv.Itoa(pT)+"\n[::]:"+strconv.Itoa(pT)+"\n" {
		t.Errorf("docker port srv 8080: %q", out)
	}
	if out, err := berth(t, d, "port", "srv"); err != nil || !strings.Contains(out, wantPort) {
		t.Errorf("berth port srv: %v %q, want it to hold %q", err, out, wantPort)
	}

	// Isolation: v6b's container does not reach v6a over IPv6.
	d.Must(t, "run", "-d", "--name", "far", "--network", "v6b", "busybox", "sleep", "600")
	if out, _ := d.Docker("exec", "far", "sh", "-c", "nc -w 2 "+srv6.String()+" 8080 </dev/null; true"); strings.Contains(out, "v6") {
		t.Errorf("v6b reached v6a over IPv6: isolation broken")
	}
	// --internal: no IPv6 default route, no gateway shown, nothing
	// outside reached.
	d.Must(t, "run", "-d", "--name", "in6", "--network", "v6i", "busybox", "sleep", "600")
	if out := d.Must(t, "exec", "in6", "ip", "-6", "route"); strings.Contains(out, "default") || !strings.Contains(out, i6.String()) {
		t.Errorf("internal IPv6 network routes: %q", out)
	}
	if out, _ := d.Docker("exec", "in6", "sh", "-c", "nc -w 2 "+srv6.String()+" 8080 </dev/null; true"); strings.Contains(out, "v6") {
		t.Errorf("internal network reached v6a")
	}
	if g := inspectField(t, d, "in6", `{{(index .NetworkSettings.Networks "v6i").IPv6Gateway}}`); g != "" && g != "invalid IP" && g != "<nil>" {
		t.Errorf("internal network's IPv6Gateway %q", g)
	}

	// An IPv6 subnet without --ipv6: kept in the config, unused, and
	// listed as given before the IPv4 pool the daemon picked (as dockerd
	// 28's buildIPAMResources).
	n6 := ula6(t)
	d.Must(t, "network", "create", "--subnet", n6.String(), "nov6")
	var nv []struct {
		EnableIPv6 bool
		IPAM       struct {
			Config []struct{ Subnet, Gateway string }
		}
	}
	if err := json.Unmarshal([]byte(d.Must(t, "network", "inspect", "nov6")), &nv); err != nil || len(nv) != 1 {
		t.Fatalf("network inspect nov6: %v", err)
	}
	if n := nv[0]; n.EnableIPv6 || len(n.IPAM.Config) != 2 || n.IPAM.Config[0].Subnet != n6.String() || n.IPAM.Config[0].Gateway != "" || n.IPAM.Config[1].Gateway == "" {
		t.Errorf("IPv6 subnet without --ipv6: %+v", n)
	}
	if out := d.Must(t, "run", "--rm", "--network", "nov6", "busybox", "ip", "-6", "addr", "show", "eth0"); strings.Contains(out, "inet6") {
		t.Errorf("IPv6 address on a network without --ipv6: %s", out)
	}
	d.Must(t, "network", "rm", "nov6")

	d.Must(t, "rm", "-f", "srv", "srv2", "far", "in6")
	d.Must(t, "network", "rm", "v6a", "v6b", "v6i")
	if ok, err := firewall.Exists6(table); err != nil || ok {
		t.Errorf("ip6 table %s after the IPv6 networks went: %v %v", table, ok, err)
	}
	for _, p := range []int{pT, pU} {
		if l, err := net.Listen("tcp6", "[::]:"+strconv.Itoa(p)); err != nil {
			t.Errorf("IPv6 port %d not freed: %v", p, err)
		} else {
			l.Close()
		}
	}
}

// inspectField is docker inspect --format of one container.
func inspectField(t *testing.T, d *berthd.Daemon, name, format string) string {
	t.Helper()
	return strings.TrimSpace(d.Must(t, "inspect", "--format", format, name))
}

// udpAsk6 is udpAsk for any address family.
func udpAsk6(t *testing.T, addr string) string {
	t.Helper()
	return udpAskNet(t, "udp", addr)
}

// TestIPv6DaemonKill: a berthd killed with SIGKILL and restarted keeps
// an IPv6 container's address, its DNAT and the [::1] relay of its
// published port; removing it frees the address and the port.
func TestIPv6DaemonKill(t *testing.T) {
	keepIPv6Forwarding(t)
	d, _ := startDaemon(t)
	netechoImage(t, d)
	tn, v6 := newTestNet(t, "bk"), ula6(t)
	t.Cleanup(func() { d.Docker("rm", "-f", "k6", "k6b"); d.Docker("network", "rm", "k6net") })
	d.Must(t, "network", "create", "--ipv6", "--subnet", tn.Subnet.String(), "--subnet", v6.String(), "-o", "com.docker.network.bridge.name="+tn.Bridge, "k6net")
	p := strconv.Itoa(freePort(t))
	d.Must(t, "run", "-d", "--name", "k6", "--network", "k6net", "-p", p+":8080", "berth-netecho", "-tcp", ":8080", "-reply", "k6")
	addr := inspectField(t, d, "k6", `{{(index .NetworkSettings.Networks "k6net").GlobalIPv6Address}}`)
	d.Crash()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"::1", add6(v6, 1).String(), "127.0.0.1"} {
		if got := readFrom(t, net.JoinHostPort(a, p)); got != "k6" {
			t.Errorf("after the restart: [%s]:%s: %q", a, p, got)
		}
	}
	if got := inspectField(t, d, "k6", `{{(index .NetworkSettings.Networks "k6net").GlobalIPv6Address}}`); got != addr {
		t.Errorf("IPv6 address across the restart: %s -> %s", addr, got)
	}
	d.Must(t, "rm", "-f", "k6")
	if l, err := net.Listen("tcp6", "[::]:"+p); err != nil {
		t.Errorf("IPv6 port %s not freed: %v", p, err)
	} else {
		l.Close()
	}
	// The next container may take the freed address only after the
	// pool went round: it must not be handed out twice meanwhile.
	d.Must(t, "run", "-d", "--name", "k6b", "--network", "k6net", "busybox", "sleep", "600")
	if got := inspectField(t, d, "k6b", `{{(index .NetworkSettings.Networks "k6net").GlobalIPv6Address}}`); got == "" || got == addr {
		t.Errorf("next container's IPv6 address %q (freed one %s)", got, addr)
	}
}

// TestDefaultBridgeIPv6: berthd --ipv6 --fixed-cidr-v6 gives the
// default bridge IPv6 as dockerd's flags do: containers get an address
// from it, a route, their hosts line, a link's IPv6 line, and published
// ports answer on [::1] and the bridge's IPv6 gateway.
func TestDefaultBridgeIPv6(t *testing.T) {
	keepIPv6Forwarding(t)
	v6 := ula6(t)
	d, _ := startDaemon(t, "--ipv6", "--fixed-cidr-v6", v6.String())
	netechoImage(t, d)
	t.Cleanup(func() { d.Docker("rm", "-f", "b6") })
	var nets []struct {
		EnableIPv6 bool
		IPAM       struct {
			Config []struct{ Subnet, Gateway string }
		}
	}
	if err := json.Unmarshal([]byte(d.Must(t, "network", "inspect", "bridge")), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("network inspect bridge: %v", err)
	}
	if n := nets[0]; !n.EnableIPv6 || len(n.IPAM.Config) != 2 || n.IPAM.Config[1].Subnet != v6.String() || n.IPAM.Config[1].Gateway != add6(v6, 1).String() {
		t.Errorf("default bridge with --ipv6: %+v", n)
	}
	p := strconv.Itoa(freePort(t))
	d.Must(t, "run", "-d", "--name", "b6", "--expose", "8080", "-p", p+":8080", "berth-netecho", "-tcp", ":8080", "-reply", "b6")
	ip6 := inspectField(t, d, "b6", `{{.NetworkSettings.Networks.bridge.GlobalIPv6Address}}`)
	if a, err := netip.ParseAddr(ip6); err != nil || !v6.Contains(a) {
		t.Fatalf("container's IPv6 address %q not in %s", ip6, v6)
	}
	out := d.Must(t, "run", "--rm", "--hostname", "me", "--link", "b6:peer", "busybox", "sh", "-c", "cat /etc/hosts; ip -6 route")
	if !strings.Contains(out, ip6+"\tpeer ") || !strings.Contains(out, "default via "+add6(v6, 1).String()) || !strings.Contains(out, "\tme\n") {
		t.Errorf("default bridge with IPv6, from a linked container:\n%s", out)
	}
	for _, a := range []string{"::1", add6(v6, 1).String(), "127.0.0.1"} {
		if got := readFrom(t, net.JoinHostPort(a, p)); got != "b6" {
			t.Errorf("[%s]:%s: %q", a, p, got)
		}
	}
}
