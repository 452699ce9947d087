package ipam

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestAllocateNeverTwice(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.9.0.0/29"), netip.Prefix{}, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Gateway != netip.MustParseAddr("10.9.0.1") {
		t.Fatalf("gateway %s", p.Gateway)
	}
	seen := map[netip.Addr]bool{}
	// /29: .0 network, .7 broadcast, .1 gateway: .2-.6 are five.
	for i := 0; i < 5; i++ {
		a, err := p.Allocate("e", netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] || a == p.Gateway || !p.usable(a) {
			t.Fatalf("allocated %s twice or unusable", a)
		}
		seen[a] = true
	}
	if _, err := p.Allocate("e", netip.Addr{}); !errdefs.IsUnavailable(err) {
		t.Fatalf("full pool: %v", err)
	}
	p.Release(netip.MustParseAddr("10.9.0.4"))
	a, err := p.Allocate("e", netip.Addr{})
	if err != nil || a != netip.MustParseAddr("10.9.0.4") {
		t.Fatalf("after release: %s %v", a, err)
	}
	if p.InUse() != 5 {
		t.Fatalf("in use %d", p.InUse())
	}
}

func TestAllocateRoundRobinAndWanted(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.9.0.0/24"), netip.MustParsePrefix("10.9.0.128/25"), netip.MustParseAddr("10.9.0.254"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Allocate("a", netip.Addr{})
	if a != netip.MustParseAddr("10.9.0.128") {
		t.Fatalf("first of range: %s", a)
	}
	p.Release(a)
	b, _ := p.Allocate("b", netip.Addr{})
	if b == a {
		t.Fatalf("freed address reused at once")
	}
	// --ip may lie outside the range, inside the subnet.
	if c, err := p.Allocate("c", netip.MustParseAddr("10.9.0.5")); err != nil || c != netip.MustParseAddr("10.9.0.5") {
		t.Fatalf("wanted: %s %v", c, err)
	}
	// libnetwork's words and category (403).
	if _, err := p.Allocate("d", netip.MustParseAddr("10.9.0.5")); !errdefs.IsPermissionDenied(err) || err.Error() != "Address already in use: permission denied" {
		t.Fatalf("taken: %v", err)
	}
	if _, err := p.Allocate("d", netip.MustParseAddr("10.9.0.254")); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("gateway: %v", err)
	}
	if _, err := p.Allocate("d", netip.MustParseAddr("10.9.1.5")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("outside: %v", err)
	}
	if _, err := p.Allocate("d", netip.MustParseAddr("10.9.0.255")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("broadcast: %v", err)
	}
	// Survives a round trip through JSON (the manager persists it).
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Pool
	if err := json.Unmarshal(js, &q); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Allocate("d", netip.MustParseAddr("10.9.0.5")); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("after reload: %v", err)
	}
	if q.Next != p.Next {
		t.Fatalf("next %s != %s", q.Next, p.Next)
	}
}

func TestNewPoolBadInput(t *testing.T) {
	for _, c := range []struct{ subnet, rng, gw string }{
		{"10.0.0.1/24", "", ""},
		{"10.0.0.0/31", "", ""},
		{"10.0.0.0/24", "10.0.1.0/25", ""},
		{"10.0.0.0/24", "10.0.0.0/16", ""},
		{"10.0.0.0/24", "", "10.0.1.1"},
		{"10.0.0.0/24", "", "10.0.0.255"},
		{"fd00::1/64", "", ""},
	} {
		var rng netip.Prefix
		var gw netip.Addr
		if c.rng != "" {
			rng = netip.MustParsePrefix(c.rng)
		}
		if c.gw != "" {
			gw = netip.MustParseAddr(c.gw)
		}
		if _, err := NewPool(netip.MustParsePrefix(c.subnet), rng, gw); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v: %v", c, err)
		}
	}
}

func TestIPv6Pool(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("fd12:3456:789a:1::/64"), netip.Prefix{}, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Gateway != netip.MustParseAddr("fd12:3456:789a:1::1") {
		t.Fatalf("gateway %s", p.Gateway)
	}
	a, err := p.Allocate("e", netip.Addr{})
	if err != nil || a != netip.MustParseAddr("fd12:3456:789a:1::2") {
		t.Fatalf("first address %s %v", a, err)
	}
	if _, err := p.Allocate("e", netip.MustParseAddr("10.0.0.2")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("IPv4 address from an IPv6 pool: %v", err)
	}
	if _, err := p.Allocate("e", netip.MustParseAddr("fd12:3456:789a:1:ffff:ffff:ffff:ffff")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("last address: %v", err)
	}
	if _, err := NewPool(netip.MustParsePrefix("fd00::/127"), netip.Prefix{}, netip.Addr{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("/127: %v", err)
	}
	if _, err := NewPool(netip.MustParsePrefix("fd00::/64"), netip.Prefix{}, netip.MustParseAddr("10.0.0.1")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("IPv4 gateway: %v", err)
	}
}
