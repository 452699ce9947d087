package firewall

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestApplyIdempotent: applying the same networks twice gives the same
// table; the rules say what they should (nft's own listing); Remove
// leaves nothing.
func TestApplyIdempotent(t *testing.T) {
	testutil.RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	table := "berth-fwtest-" + hex.EncodeToString(b)
	t.Cleanup(func() { Remove(table) })
	bridges := []Bridge{
		{Device: "brA", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Masquerade: true},
		{Device: "brB", Subnet: netip.MustParsePrefix("10.2.0.0/24"), Masquerade: true},
		{Device: "brI", Subnet: netip.MustParsePrefix("10.3.0.0/24"), Internal: true},
	}
	maps := []Mapping{{Proto: "tcp", HostPort: 18080, ContainerIP: netip.MustParseAddr("10.1.0.2"), ContainerPort: 80, Bridge: "brA"},
		{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 15353, ContainerIP: netip.MustParseAddr("10.1.0.3"), ContainerPort: 53, Bridge: "brA"}}
	list := func() string {
		out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v %s", err, out)
		}
		return string(out)
	}
	if err := Apply(table, bridges, maps); err != nil {
		t.Fatal(err)
	}
	first := list()
	if err := Apply(table, bridges, maps); err != nil {
		t.Fatal(err)
	}
	if second := list(); second != first {
		t.Errorf("second Apply changed the table:\n%s\nvs\n%s", first, second)
	}
	for _, want := range []string{
		`iifname "brA" oifname "brB" drop`,
		`iifname "brI" drop`,
		`oifname "brI" drop`,
		`ip saddr 10.1.0.0/24 oifname != "brA" masquerade`,
		`tcp dport 18080 dnat to 10.1.0.2:80`,
		`ip daddr 127.0.0.1 udp dport 15353 dnat to 10.1.0.3:53`,
		`fib daddr type local`,
	} {
		if !strings.Contains(first, want) {
			t.Errorf("table lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(first, `ip saddr 10.3.0.0/24`) {
		t.Errorf("internal network masqueraded:\n%s", first)
	}
	if err := Remove(table); err != nil {
		t.Fatal(err)
	}
	if ok, err := Exists(table); err != nil || ok {
		t.Errorf("table after Remove: %v %v", ok, err)
	}
	if err := Remove(table); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestApplyIPv6: a bridge with an IPv6 subnet brings the ip6 table
// (isolation, masquerade, DNAT of the host's addresses but ::1); it
// goes when no bridge has IPv6 any more, and with Remove.
func TestApplyIPv6(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.KeepSysctl(t, IPv6Forwarding)
	b := make([]byte, 4)
	rand.Read(b)
	table := "berth-fwtest6-" + hex.EncodeToString(b)
	t.Cleanup(func() { Remove(table) })
	bridges := []Bridge{
		{Device: "brA", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Subnet6: netip.MustParsePrefix("fd42:1::/64"), Masquerade: true},
		{Device: "brB", Subnet: netip.MustParsePrefix("10.2.0.0/24"), Masquerade: true},
	}
	maps := []Mapping{{Proto: "tcp", HostPort: 18080, ContainerIP: netip.MustParseAddr("fd42:1::2"), ContainerPort: 80, Bridge: "brA"}}
	if err := Apply(table, bridges, maps); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nft", "list", "table", "ip6", table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v %s", err, out)
	}
	for _, want := range []string{
		`iifname "brA" oifname "brB" drop`,
		`ip6 saddr fd42:1::/64 oifname != "brA" masquerade`,
		`ip6 daddr != ::1 fib daddr type local tcp dport 18080 dnat to [fd42:1::2]:80`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ip6 table lacks %q:\n%s", want, out)
		}
	}
	if v, _ := os.ReadFile(IPv6Forwarding); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("IPv6 forwarding %q", v)
	}
	if err := Apply(table, bridges[1:], nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := Exists6(table); err != nil || ok {
		t.Errorf("ip6 table without IPv6 bridges: %v %v", ok, err)
	}
	if err := Remove(table); err != nil {
		t.Fatal(err)
	}
}

// TestApplyManyMappings: a table with hundreds of published ports (a
// -p range) goes in in one batch. Every rule of the batch is acknowledged
// before any ack is read: with 200 ports the acks overflowed the socket's
// default receive buffer (recvmsg: no buffer space available).
func TestApplyManyMappings(t *testing.T) {
	testutil.RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	table := "berth-fwtest-" + hex.EncodeToString(b)
	t.Cleanup(func() { Remove(table) })
	bridges := []Bridge{{Device: "brM", Subnet: netip.MustParsePrefix("10.4.0.0/24"), Masquerade: true}}
	var maps []Mapping
	for i := range 2000 {
		maps = append(maps, Mapping{Proto: "tcp", HostPort: uint16(30000 + i), ContainerIP: netip.MustParseAddr("10.4.0.2"), ContainerPort: uint16(30000 + i), Bridge: "brM"})
	}
	if err := Apply(table, bridges, maps); err != nil {
		t.Fatalf("apply %d mappings: %v", len(maps), err)
	}
	out, err := exec.Command("nft", "list", "chain", "ip", table, "output").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v %s", err, out)
	}
	if got := strings.Count(string(out), "dnat to"); got != len(maps) {
		t.Fatalf("output chain has %d dnat rules, want %d", got, len(maps))
	}
	if !strings.Contains(string(out), "tcp dport 31999 ") {
		t.Fatalf("last mapping missing:\n%.2000s", out)
	}
}
