package network_test

import (
	"net"
	"net/netip"
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/network/firewall"
)

// TestIPTablesFirewall: berthd --firewall-backend=iptables keeps its
// rules in iptables chains of its own (no nftables table): published
// TCP and UDP ports on 127.0.0.1, the host's address and IPv6, isolation
// between networks and --internal hold; a restart with containers
// running rebuilds the chains without doubling a rule; the chains go
// with the last container and network at daemon stop (startDaemon's
// cleanup checks).
func TestIPTablesFirewall(t *testing.T) {
	keepIPv6Forwarding(t)
	testutil.KeepXtablesTables(t) // before startDaemon: runs after the daemon stopped
	d, _ := startDaemon(t, "--firewall-backend=iptables")
	chain := strings.ToUpper(network.TableName(d.DataRoot, "/var/lib/berth"))
	self := hostAddr(t)
	netechoImage(t, d)
	n1, n2, n3 := newTestNet(t, "bp"), newTestNet(t, "bp"), newTestNet(t, "bp")
	v6 := ula6(t)
	t.Cleanup(func() {
		d.Docker("rm", "-f", "ipub", "s1", "s2", "s3")
		d.Docker("network", "rm", "one", "two", "inside")
	})
	d.Must(t, "network", "create", "--ipv6", "--subnet", n1.Subnet.String(), "--subnet", v6.String(), "-o", "com.docker.network.bridge.name="+n1.Bridge, "one")
	d.Must(t, "network", "create", "--subnet", n2.Subnet.String(), "-o", "com.docker.network.bridge.name="+n2.Bridge, "two")
	d.Must(t, "network", "create", "--internal", "--subnet", n3.Subnet.String(), "-o", "com.docker.network.bridge.name="+n3.Bridge, "inside")
	pT, pU := freePort(t), freePort(t)
	d.Must(t, "run", "-d", "--name", "ipub", "--network", "one", "-p", strconv.Itoa(pT)+":8080", "-p", "127.0.0.1:"+strconv.Itoa(pU)+":9000/udp",
		"berth-netecho", "-tcp", ":8080", "-udp", ":9000", "-reply", "ipt")
	serve := "echo reached > /tmp/i; exec nc -ll -p 9000 -e cat /tmp/i"
	d.Must(t, "run", "-d", "--name", "s2", "--network", "two", "busybox", "sh", "-c", serve)
	d.Must(t, "run", "-d", "--name", "s3", "--network", "inside", "busybox", "sh", "-c", serve)
	ip2 := inspect(t, d, "s2").NetworkSettings.Networks["two"].IPAddress
	ip3 := inspect(t, d, "s3").NetworkSettings.Networks["inside"].IPAddress

	check := func(when string) {
		t.Helper()
		for _, a := range []string{"127.0.0.1", self, "::1", v6.Addr().Next().String()} {
			if got := readFrom(t, net.JoinHostPort(a, strconv.Itoa(pT))); got != "ipt" {
				t.Errorf("%s: tcp %s:%d: %q", when, a, pT, got)
			}
		}
		if got := udpAsk(t, "127.0.0.1:"+strconv.Itoa(pU)); got != "ipt" {
			t.Errorf("%s: udp 127.0.0.1:%d: %q", when, pU, got)
		}
		try := func(network, ip string) string {
			out, _ := d.Docker("run", "--rm", "--network", network, "busybox", "sh", "-c", "nc -w 2 "+ip+" 9000 </dev/null; true")
			return out
		}
		if out := try("one", ip2); strings.Contains(out, "reached") {
			t.Errorf("%s: one reached two: isolation broken", when)
		}
		if out := try("two", ip2); !strings.Contains(out, "reached") {
			t.Errorf("%s: two -> two: %q", when, out)
		}
		if out := try("one", ip3); strings.Contains(out, "reached") {
			t.Errorf("%s: one reached the internal network", when)
		}
		// Hairpin through the host's address.
		if out, _ := d.Docker("run", "--rm", "--network", "one", "busybox", "sh", "-c", "nc -w 3 "+self+" "+strconv.Itoa(pT)+" </dev/null"); !strings.Contains(out, "ipt") {
			t.Errorf("%s: hairpin via %s:%d: %q", when, self, pT, out)
		}
		out, err := osexec.Command("iptables", "-w", "-S", "FORWARD").CombinedOutput()
		if err != nil || strings.Count(string(out), "-j "+chain+"-FWD") != 1 {
			t.Errorf("%s: jump to %s-FWD not exactly once: %v\n%s", when, chain, err, out)
		}
		out, _ = osexec.Command("iptables", "-w", "-t", "nat", "-S", chain+"-DNAT").CombinedOutput()
		if strings.Count(string(out), "--dport "+strconv.Itoa(pT)+" ") != 1 {
			t.Errorf("%s: DNAT rule for %d not exactly once:\n%s", when, pT, out)
		}
	}
	check("first start")
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := d.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	check("after restart")
	d.Must(t, "rm", "-f", "ipub", "s2", "s3")
	d.Must(t, "network", "rm", "one", "two", "inside")
	if out, _ := osexec.Command("ip6tables", "-w", "-t", "nat", "-S").CombinedOutput(); strings.Contains(string(out), chain) {
		t.Errorf("ip6tables rules without IPv6 networks:\n%s", out)
	}
}

// TestFirewallBackendSwitch: a daemon stopped with a published port
// and restarted with the other backend moves its rules there: the
// nftables table goes, the iptables chains come, the port still
// answers; and back again.
func TestFirewallBackendSwitch(t *testing.T) {
	testutil.KeepXtablesTables(t)
	d, tn := startDaemon(t)
	table := network.TableName(d.DataRoot, "/var/lib/berth")
	netechoImage(t, d)
	t.Cleanup(func() { d.Docker("rm", "-f", "sw") })
	p := strconv.Itoa(freePort(t))
	d.Must(t, "run", "-d", "--name", "sw", "-p", p+":8080", "berth-netecho", "-tcp", ":8080", "-reply", "sw")
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	bip := netip.PrefixFrom(tn.Gateway(), 24).String()
	for _, backend := range []string{"iptables", "nftables"} {
		if err := d.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		nd, err := berthd.Launch(bin, d.Dir, "--bridge", tn.Bridge, "--bip", bip, "--firewall-backend="+backend)
		if err != nil {
			t.Fatalf("launch with %s: %v", backend, err)
		}
		*d = *nd
		nft, _ := firewall.Exists(table)
		if ipt := firewall.ChainsExist(table); nft != (backend == "nftables") || ipt != (backend == "iptables") {
			t.Errorf("with %s: nftables table %v, iptables chains %v", backend, nft, ipt)
		}
		if got := readFrom(t, "127.0.0.1:"+p); got != "sw" {
			t.Errorf("with %s: 127.0.0.1:%s: %q", backend, p, got)
		}
	}
}
