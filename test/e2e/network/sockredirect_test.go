package network_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/network/sockredirect"
)

// redirectPrograms are the program ids (connect4 first) the daemon
// logged at its (last) start.
func redirectPrograms(t *testing.T, d *berthd.Daemon) []ebpf.ProgramID {
	t.Helper()
	m := regexp.MustCompile(`socket redirect of published ports: active \(cgroup \S+, program ids \[([0-9 ]+)\]\)`).FindStringSubmatch(d.Log())
	if m == nil {
		t.Fatalf("berthd did not log an active socket redirect:\n%s", d.Log())
	}
	var ids []ebpf.ProgramID
	for _, f := range strings.Fields(m[1]) {
		id, _ := strconv.ParseUint(f, 10, 32)
		ids = append(ids, ebpf.ProgramID(id))
	}
	if len(ids) != 6 {
		t.Fatalf("program ids %v, want connect4, getpeername4, connect6, getpeername6, sendmsg4, recvmsg4", ids)
	}
	return ids
}

// redirectAttached says whether program id is attached to the cgroup2
// root for connect4 (or connect6).
func redirectAttached(t *testing.T, id ebpf.ProgramID) bool {
	t.Helper()
	root, err := sockredirect.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	ok, err := sockredirect.Attached(root, id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// waitGone waits until programs ids are neither attached nor loaded.
func waitGone(t *testing.T, ids []ebpf.ProgramID, when string) {
	t.Helper()
	for _, id := range ids {
		waitFor(t, "program "+strconv.Itoa(int(id))+" gone "+when, func() bool {
			if redirectAttached(t, id) {
				return false
			}
			p, err := ebpf.NewProgramFromID(id)
			if err == nil {
				p.Close()
			}
			return errors.Is(err, os.ErrNotExist)
		})
	}
}

// checkEntries checks that the daemon's redirect maps hold exactly want
// ("host:port/proto->backend").
func checkEntries(t *testing.T, ids []ebpf.ProgramID, when string, want ...string) {
	t.Helper()
	got := entries(t, ids)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("redirect map entries %s: %q, want %q", when, got, want)
	}
}

// entry is a map entry as checkEntries shows it.
func entry(host netip.Addr, port uint16, proto string, backend netip.Addr, bport uint16) string {
	return netip.AddrPortFrom(host, port).String() + "/" + proto + "->" + netip.AddrPortFrom(backend, bport).String()
}

// entries are the daemon's redirect map entries as "host:port/proto->backend".
func entries(t *testing.T, ids []ebpf.ProgramID) []string {
	t.Helper()
	svcs, err := sockredirect.Entries(ids...)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range svcs {
		out = append(out, entry(s.HostIP, s.HostPort, s.Proto, s.Backend.Addr(), s.Backend.Port()))
	}
	return out
}

// packetCounter counts, in a table of the test's own, the packets
// the host sends to each of dsts as they leave the socket (output hook
// before the NAT): a connection DNATed from a published port shows
// there with the published address, a redirected one with the
// container's.
type packetCounter struct {
	table *nftables.Table
	chain *nftables.Chain
	dsts  []netip.AddrPort
}

func countPackets(t *testing.T, proto byte, dsts ...netip.AddrPort) *packetCounter {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	// One family per table: the first destination's.
	family, daddr := nftables.TableFamilyIPv4, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	if dsts[0].Addr().Is6() {
		family, daddr = nftables.TableFamilyIPv6, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	}
	pc := &packetCounter{table: &nftables.Table{Name: "bt-count-" + randomHex(4), Family: family}, dsts: dsts}
	c.AddTable(pc.table)
	accept := nftables.ChainPolicyAccept
	pc.chain = c.AddChain(&nftables.Chain{Name: "out", Table: pc.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	for _, d := range dsts {
		c.AddRule(&nftables.Rule{Table: pc.table, Chain: pc.chain, Exprs: []expr.Any{
			daddr,
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: d.Addr().AsSlice()},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(d.Port())},
			&expr.Counter{},
		}})
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("counting table: %v", err)
	}
	t.Cleanup(func() {
		c, err := nftables.New()
		if err == nil {
			c.DelTable(pc.table)
			err = c.Flush()
		}
		if err != nil {
			t.Errorf("remove counting table %s: %v", pc.table.Name, err)
		}
	})
	return pc
}

// packets is the count of dsts[i].
func (pc *packetCounter) packets(t *testing.T, i int) uint64 {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := c.GetRules(pc.table, pc.chain)
	if err != nil || len(rules) != len(pc.dsts) {
		t.Fatalf("counting rules: %d %v", len(rules), err)
	}
	for _, e := range rules[i].Exprs {
		if ctr, ok := e.(*expr.Counter); ok {
			return ctr.Packets
		}
	}
	t.Fatal("counting rule without counter")
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// containerIP is name's address on the default bridge.
func containerIP(t *testing.T, d *berthd.Daemon, name string) netip.Addr {
	t.Helper()
	for _, n := range inspect(t, d, name).NetworkSettings.Networks {
		return netip.MustParseAddr(n.IPAddress)
	}
	t.Fatalf("%s has no network", name)
	return netip.Addr{}
}

// TestSocketRedirect: with the accelerator on, the host's connections to
// published TCP ports (127.0.0.1 and the host's own address) reach the
// container without a packet to the published address (no DNAT), a
// container's own 127.0.0.1:P stays its own, UDP (connected and
// unconnected) is redirected too, hairpin keeps the NAT path, rm drops the map entry, kill -9 takes the program with the
// daemon and a restart rebuilds the map, a clean stop detaches it.
func TestSocketRedirect(t *testing.T) {
	d, _ := startDaemon(t)
	ids := redirectPrograms(t, d)
	if !redirectAttached(t, ids[0]) || !redirectAttached(t, ids[2]) {
		t.Fatalf("programs %v not attached to the cgroup2 root", ids)
	}
	self := netip.MustParseAddr(hostAddr(t))
	lo := netip.MustParseAddr("127.0.0.1")
	pLocal, pAll, pUDP := uint16(freePort(t)), uint16(freePort(t)), freePort(t)
	netechoImage(t, d)
	d.Must(t, "run", "-d", "--name", "loc", "-p", "127.0.0.1:"+strconv.Itoa(int(pLocal))+":8080", "berth-netecho", "-tcp", ":8080", "-reply", "local")
	if out, err := berth(t, d, "run", "-d", "--name", "all", "-p", strconv.Itoa(int(pAll))+":8081", "berth-netecho", "-tcp", ":8081", "-reply", "all"); err != nil {
		t.Fatalf("berth run: %v: %s", err, out)
	}
	d.Must(t, "run", "-d", "--name", "udp", "-p", strconv.Itoa(pUDP)+":9000/udp", "berth-netecho", "-udp", ":9000", "-reply", "udp-ok")
	ipLoc, ipAll := containerIP(t, d, "loc"), containerIP(t, d, "all")

	ipUDP := containerIP(t, d, "udp")
	any4 := netip.IPv4Unspecified()
	checkEntries(t, ids, "at start",
		entry(lo, pLocal, "tcp", ipLoc, 8080), entry(any4, pAll, "tcp", ipAll, 8081), entry(any4, uint16(pUDP), "udp", ipUDP, 9000))

	pc := countPackets(t, unix.IPPROTO_TCP,
		netip.AddrPortFrom(lo, pLocal), netip.AddrPortFrom(lo, pAll), netip.AddrPortFrom(self, pAll),
		netip.AddrPortFrom(ipLoc, 8080), netip.AddrPortFrom(ipAll, 8081))
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(int(pLocal))); got != "local" {
		t.Errorf("127.0.0.1:%d: %q", pLocal, got)
	}
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(int(pAll))); got != "all" {
		t.Errorf("127.0.0.1:%d: %q", pAll, got)
	}
	if got := readFrom(t, self.String()+":"+strconv.Itoa(int(pAll))); got != "all" {
		t.Errorf("%s:%d: %q", self, pAll, got)
	}
	for i, what := range []string{"127.0.0.1 (bound)", "127.0.0.1 (all)", self.String() + " (all)"} {
		if n := pc.packets(t, i); n != 0 {
			t.Errorf("%d packets left for the published port via %s: the connection was NATed, not redirected", n, what)
		}
	}
	if pc.packets(t, 3) == 0 || pc.packets(t, 4) == 0 {
		t.Errorf("no packet went straight to the containers: %d %d", pc.packets(t, 3), pc.packets(t, 4))
	}
	if c, err := hostDial(self.String() + ":" + strconv.Itoa(int(pLocal))); err == nil {
		c.SetDeadline(time.Now().Add(time.Second))
		b := make([]byte, 10)
		if n, _ := c.Read(b); strings.Contains(string(b[:n]), "local") {
			t.Errorf("port published on 127.0.0.1 answered on %s", self)
		}
		c.Close()
	}
	// getpeername shows the address dialled.
	if c, err := hostDial("127.0.0.1:" + strconv.Itoa(int(pAll))); err != nil {
		t.Error(err)
	} else {
		if got := c.RemoteAddr().String(); got != "127.0.0.1:"+strconv.Itoa(int(pAll)) {
			t.Errorf("peer of a redirected connection: %s", got)
		}
		c.Close()
	}

	// Dialled on the host's address, the container sees that address
	// as the client's, as with the DNAT.
	if c, err := hostDial(self.String() + ":" + strconv.Itoa(int(pAll))); err != nil {
		t.Error(err)
	} else {
		if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != self {
			t.Errorf("source of a redirected connection to %s: %s", self, got)
		}
		c.Close()
	}

	// In a container 127.0.0.1:P is its own loopback.
	if out := d.Must(t, "run", "--rm", "busybox", "sh", "-c",
		"echo own | nc -l -p "+strconv.Itoa(int(pLocal))+" & sleep 0.5; nc -w 3 127.0.0.1 "+strconv.Itoa(int(pLocal))+" </dev/null"); !strings.Contains(out, "own") {
		t.Errorf("container's own 127.0.0.1:%d: %q", pLocal, out)
	}
	// Hairpin from another container: the NAT path.
	if out := d.Must(t, "run", "--rm", "busybox", "sh", "-c", "nc -w 3 "+self.String()+" "+strconv.Itoa(int(pAll))+" </dev/null"); !strings.Contains(out, "all") {
		t.Errorf("hairpin via %s:%d: %q", self, pAll, out)
	}
	// UDP, connected and not: straight to the container too, the
	// answers from the address sent to.
	pu := countPackets(t, unix.IPPROTO_UDP, netip.AddrPortFrom(lo, uint16(pUDP)), netip.AddrPortFrom(self, uint16(pUDP)), netip.AddrPortFrom(ipUDP, 9000))
	for _, a := range []netip.Addr{lo, self} {
		dialled := netip.AddrPortFrom(a, uint16(pUDP))
		if got := udpAsk(t, dialled.String()); got != "udp-ok" {
			t.Errorf("udp %s: %q", dialled, got)
		}
		pconn, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		pconn.SetDeadline(time.Now().Add(3 * time.Second))
		pconn.WriteTo([]byte("ping\n"), net.UDPAddrFromAddrPort(dialled))
		b := make([]byte, 100)
		n, from, err := pconn.ReadFrom(b)
		pconn.Close()
		if err != nil || strings.TrimSpace(string(b[:n])) != "udp-ok" || from.(*net.UDPAddr).AddrPort() != dialled {
			t.Errorf("unconnected udp to %s: %q from %v, %v", dialled, b[:n], from, err)
		}
	}
	if pu.packets(t, 0) != 0 || pu.packets(t, 1) != 0 || pu.packets(t, 2) == 0 {
		t.Errorf("UDP packets to the published port %d (127.0.0.1) %d (%s), to the container %d: want all straight to the container",
			pu.packets(t, 0), pu.packets(t, 1), self, pu.packets(t, 2))
	}

	d.Must(t, "rm", "-f", "loc", "udp")
	checkEntries(t, ids, "after rm", entry(any4, pAll, "tcp", ipAll, 8081))

	// kill -9: the program goes with the process; the NAT carries the
	// port; a restart attaches a new program and refills its map.
	d.Crash()
	waitGone(t, ids, "after kill -9")
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(int(pAll))); got != "all" {
		t.Errorf("127.0.0.1:%d while berthd is away: %q", pAll, got)
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	ids = redirectPrograms(t, d)
	checkEntries(t, ids, "after restart", entry(any4, pAll, "tcp", ipAll, 8081))
	before := pc.packets(t, 1)
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(int(pAll))); got != "all" {
		t.Errorf("127.0.0.1:%d after restart: %q", pAll, got)
	}
	if n := pc.packets(t, 1); n != before {
		t.Errorf("connection after restart was NATed (%d packets to the published port)", n-before)
	}

	// A clean stop detaches it, containers running or not.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ids, "after stop")
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
}

// TestSocketRedirectOff: --no-socket-redirect leaves the published
// ports to the DNAT rules (the connection leaves for the published
// address), and the daemon says so.
func TestSocketRedirectOff(t *testing.T) {
	d, _ := startDaemon(t, "--no-socket-redirect")
	if !strings.Contains(d.Log(), "socket redirect of published ports: off") {
		t.Errorf("berthd did not log the redirect off:\n%s", d.Log())
	}
	p := uint16(freePort(t))
	netechoImage(t, d)
	d.Must(t, "run", "-d", "--name", "loc", "-p", "127.0.0.1:"+strconv.Itoa(int(p))+":8080", "berth-netecho", "-tcp", ":8080", "-reply", "local")
	ip := containerIP(t, d, "loc")
	pc := countPackets(t, unix.IPPROTO_TCP, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p), netip.AddrPortFrom(ip, 8080))
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(int(p))); got != "local" {
		t.Errorf("127.0.0.1:%d: %q", p, got)
	}
	if pc.packets(t, 0) == 0 || pc.packets(t, 1) != 0 {
		t.Errorf("packets to the published port %d, to the container %d: want the NAT path", pc.packets(t, 0), pc.packets(t, 1))
	}
}

// TestSocketRedirectIPv6: a port published on every address of a
// container with IPv6 is redirected for the host's IPv6 connections too:
// [::1] (which the NAT cannot take: berthd's socket relays it otherwise)
// and the bridge's IPv6 gateway, with no packet to the published port.
func TestSocketRedirectIPv6(t *testing.T) {
	keepIPv6Forwarding(t)
	v6 := ula6(t)
	d, _ := startDaemon(t, "--ipv6", "--fixed-cidr-v6", v6.String())
	ids := redirectPrograms(t, d)
	netechoImage(t, d)
	p := uint16(freePort(t))
	d.Must(t, "run", "-d", "--name", "r6", "-p", strconv.Itoa(int(p))+":8080", "berth-netecho", "-tcp", ":8080", "-reply", "r6")
	ip6 := netip.MustParseAddr(inspectField(t, d, "r6", `{{.NetworkSettings.Networks.bridge.GlobalIPv6Address}}`))
	ip4 := containerIP(t, d, "r6")
	checkEntries(t, ids, "", entry(netip.IPv4Unspecified(), p, "tcp", ip4, 8080), entry(netip.IPv6Unspecified(), p, "tcp", ip6, 8080))
	gw6 := add6(v6, 1)
	pc := countPackets(t, unix.IPPROTO_TCP, netip.AddrPortFrom(netip.IPv6Loopback(), p), netip.AddrPortFrom(gw6, p), netip.AddrPortFrom(ip6, 8080))
	for _, a := range []netip.Addr{netip.IPv6Loopback(), gw6} {
		if got := readFrom(t, netip.AddrPortFrom(a, p).String()); got != "r6" {
			t.Errorf("[%s]:%d: %q", a, p, got)
		}
	}
	if pc.packets(t, 0) != 0 || pc.packets(t, 1) != 0 || pc.packets(t, 2) == 0 {
		t.Errorf("packets to [::1]:%d %d, to [%s]:%d %d, to the container %d: want all straight to the container",
			p, pc.packets(t, 0), gw6, p, pc.packets(t, 1), pc.packets(t, 2))
	}
}

// TestSocketRedirectOffConfigFile: daemon.json's no-socket-redirect is
// the flag's twin.
func TestSocketRedirectOffConfigFile(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(cfg, []byte(`{"no-socket-redirect": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := startDaemon(t, "--config-file", cfg)
	if !strings.Contains(d.Log(), "socket redirect of published ports: off") {
		t.Errorf("berthd did not log the redirect off:\n%s", d.Log())
	}
}
