package firewall

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestIPTablesBackend: the iptables backend fills its own chains
// (IPv4 and, with an IPv6 bridge, IPv6), jumps to them once however
// often it applies, and Remove leaves neither chain nor jump.
func TestIPTablesBackend(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.KeepXtablesTables(t)
	testutil.KeepSysctl(t, IPv6Forwarding)
	b := make([]byte, 4)
	rand.Read(b)
	table := "berth-ipttest-" + hex.EncodeToString(b)
	fw, err := New(IPTables, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Remove() })
	if fw.Name() != IPTables {
		t.Fatalf("backend %s", fw.Name())
	}
	bridges := []Bridge{
		{Device: "brA", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Subnet6: netip.MustParsePrefix("fd42:1::/64"), Masquerade: true},
		{Device: "brB", Subnet: netip.MustParsePrefix("10.2.0.0/24"), Masquerade: true},
		{Device: "brI", Subnet: netip.MustParsePrefix("10.3.0.0/24"), Internal: true},
	}
	maps := []Mapping{{Proto: "tcp", HostPort: 18080, ContainerIP: netip.MustParseAddr("10.1.0.2"), ContainerPort: 80, Bridge: "brA"},
		{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 15353, ContainerIP: netip.MustParseAddr("10.1.0.3"), ContainerPort: 53, Bridge: "brA"},
		{Proto: "tcp", HostPort: 18080, ContainerIP: netip.MustParseAddr("fd42:1::2"), ContainerPort: 80, Bridge: "brA"}}
	list := func() string {
		var all []string
		for _, c := range []struct{ cmd, table, chain string }{
			{"iptables", "filter", "FORWARD"}, {"iptables", "nat", "PREROUTING"}, {"iptables", "nat", "OUTPUT"}, {"iptables", "nat", "POSTROUTING"},
			{"iptables", "filter", strings.ToUpper(table) + "-FWD"}, {"iptables", "nat", strings.ToUpper(table) + "-DNAT"}, {"iptables", "nat", strings.ToUpper(table) + "-POST"},
			{"ip6tables", "nat", strings.ToUpper(table) + "-DNAT"}, {"ip6tables", "nat", "OUTPUT"}, {"ip6tables", "filter", strings.ToUpper(table) + "-FWD"},
		} {
			out, err := exec.Command(c.cmd, "-w", "-t", c.table, "-S", c.chain).CombinedOutput()
			if err != nil {
				t.Fatalf("%s -S %s: %v %s", c.cmd, c.chain, err, out)
			}
			// Only our lines: other daemons share the built-in chains.
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, strings.ToUpper(table)) {
					all = append(all, c.cmd+" "+l)
				}
			}
		}
		return strings.Join(all, "\n")
	}
	if err := fw.Apply(bridges, maps); err != nil {
		t.Fatal(err)
	}
	first := list()
	if err := fw.Apply(bridges, maps); err != nil {
		t.Fatal(err)
	}
	if second := list(); second != first {
		t.Errorf("second Apply changed the rules:\n%s\nvs\n%s", first, second)
	}
	for _, want := range []string{
		"-A FORWARD -j " + strings.ToUpper(table) + "-FWD",
		"-i brA -o brB -j DROP",
		"-i brI -j DROP",
		"-o brI -j DROP",
		"-s 10.1.0.0/24 ! -o brA -j MASQUERADE",
		"-p tcp -m tcp --dport 18080 -j DNAT --to-destination 10.1.0.2:80",
		"-d 127.0.0.1/32 -p udp -m udp --dport 15353 -j DNAT --to-destination 10.1.0.3:53",
		"ip6tables -A " + strings.ToUpper(table) + "-DNAT -p tcp -m tcp --dport 18080 -j DNAT --to-destination [fd42:1::2]:80",
		"! -d ::1/128 -m addrtype --dst-type LOCAL -j " + strings.ToUpper(table) + "-DNAT",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("rules lack %q:\n%s", want, first)
		}
	}
	if strings.Count(first, "-A FORWARD -j "+strings.ToUpper(table)+"-FWD") != 1 {
		t.Errorf("jump to the forward chain not exactly once:\n%s", first)
	}
	if err := fw.Remove(); err != nil {
		t.Fatal(err)
	}
	if ChainsExist(table) {
		t.Errorf("chains after Remove")
	}
	for _, c := range []string{"iptables", "ip6tables"} {
		for _, tb := range []string{"filter", "nat"} {
			out, _ := exec.Command(c, "-w", "-t", tb, "-S").CombinedOutput()
			if strings.Contains(string(out), strings.ToUpper(table)) {
				t.Errorf("%s %s keeps rules of ours after Remove:\n%s", c, tb, out)
			}
		}
	}
	if err := fw.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}
